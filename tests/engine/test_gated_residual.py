"""Ergo: each block mixes what attention and the MLP add into the stream with learned
per-channel gates (`sigmoid(w) * part + g(w) * x`), its q/k/v come from one fused projection and
are normalized per head after the split, and its full-context layers scale q and k
(`global_attention_scale`). The points read the parts and the gates' outputs; sums of parts
raise."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import VOCAB, build, load

from .conftest import _tokenizer

TOKENS = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def ergo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ergo") / "ergo"
    assert build("ergo", folder) is None
    outcome, model = load("ergo", folder, _tokenizer())
    assert model is not None, outcome.reason
    with torch.no_grad():  # gates away from their initial zeros: both terms of the mix act
        for block in model.hf_model.model.layers:
            for gate in (block.attention_residual_gate, block.feedforward_residual_gate):
                gate.weight.normal_(0, 1, generator=torch.Generator().manual_seed(7))
    return model


def _seen(model, paths):
    """Outputs (and inputs, as `path<`) of HF modules in one plain HF forward."""
    seen, handles = {}, []
    for path in paths:
        module = model.hf_model.get_submodule(path)

        def hook(m, args, out, path=path):
            seen[path] = out[0] if isinstance(out, tuple) else out
            seen[path + "<"] = args

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = model.hf_model(TOKENS).logits
    finally:
        for h in handles:
            h.remove()
    return logits, seen


def test_points_are_the_parts_and_the_gated_stream(ergo):
    spec = ergo.spec
    assert spec.unsummed is not None and "attention_residual_gate" in spec.unsummed
    b = "model.layers.1."
    paths = [b + p for p in ("self_attn.q_norm", "post_attention_layernorm",
                             "attention_residual_gate", "feedforward_residual_gate")]  # fmt: skip
    ref, seen = _seen(ergo, paths)
    logits, cache = ergo.run_with_cache(TOKENS)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    c = "blocks.1."
    # q read after its per-head norm, not from the fused projection
    torch.testing.assert_close(cache[c + "attn.hook_q"], seen[b + "self_attn.q_norm"])
    # a full-context layer without positions: rot_q is q times the attention's qk_scale
    scale = float(ergo.hf_model.model.layers[1].self_attn.qk_scale)
    assert scale != 1
    torch.testing.assert_close(cache[c + "attn.hook_rot_q"], cache[c + "attn.hook_q"] * scale)
    # attn_out is what the gate mixes in; resid_mid is the gate's output
    torch.testing.assert_close(cache[c + "hook_attn_out"], seen[b + "post_attention_layernorm"])
    torch.testing.assert_close(cache[c + "hook_resid_mid"], seen[b + "attention_residual_gate"])
    torch.testing.assert_close(cache[c + "hook_resid_post"], seen[b + "feedforward_residual_gate"])
    gate = ergo.hf_model.model.layers[1].attention_residual_gate
    with torch.no_grad():
        mixed = gate(cache[c + "hook_attn_out"], cache[c + "hook_resid_pre"])
    torch.testing.assert_close(cache[c + "hook_resid_mid"], mixed)
    summed = cache[c + "hook_resid_pre"] + cache[c + "hook_attn_out"]
    assert (summed - cache[c + "hook_resid_mid"]).abs().max() > 1e-2  # not a sum


def test_sums_of_parts_raise_naming_the_gates(ergo):
    _, cache = ergo.run_with_cache(TOKENS)
    with pytest.raises(hl.InputError, match="attention_residual_gate"):
        cache.decompose_resid()


def test_attn_out_edit_is_a_raw_edit_of_what_the_gate_mixes_in(ergo):
    delta = torch.randn(2, 7, ergo.cfg.d_model, generator=torch.Generator().manual_seed(4))
    norm = ergo.hf_model.model.layers[0].post_attention_layernorm
    handle = norm.register_forward_hook(lambda m, a, out: out + delta)
    try:
        with torch.no_grad():
            raw = ergo.hf_model(TOKENS).logits
    finally:
        handle.remove()
    ours = ergo.run_with_hooks(
        TOKENS, fwd_hooks=[("blocks.0.hook_attn_out", lambda t, hook: t + delta)]
    )
    torch.testing.assert_close(ours, raw, atol=1e-4, rtol=0)
