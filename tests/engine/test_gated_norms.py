"""Gated norms (AXK2's `AXK2GatedRMSNorm`: norm(x) * sigmoid(mlp(norm(x)))) on a tiny model of
the installed transformers' registry: the ln points are the inner norm's, with a norm's meaning,
edits of them reach the gate as the model computes it, and fold_ln refuses. Its latent
attention's q projection also holds the output gate's input (`LatentKV.q_gate`)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import VOCAB

from .conftest import _tokenizer


@pytest.fixture
def axk2(registry):
    outcome, model = registry("axk2")
    assert model is not None, outcome.reason
    return model


def _tokens() -> torch.Tensor:
    return torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))


def _raw(model, path, hook):
    """The logits with a raw forward hook on block path `path` of block 1 (whose norms are
    both gated)."""
    module = model.hf_model.get_submodule(f"{model.spec.blocks}.1.{path}")
    handle = module.register_forward_hook(hook)
    try:
        return model.hf_model(_tokens(), use_cache=False).logits
    finally:
        handle.remove()


def test_gated_norm_points_are_the_inner_norms(axk2):
    model, tokens = axk2, _tokens()
    blocks = model.hf_model.get_submodule(model.spec.blocks)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    eps = blocks[0].input_layernorm.norm.variance_epsilon
    # layer 1's norms are both gated; layer 0's ln2 (before a dense MLP) is a plain RMSNorm
    assert type(blocks[1].post_attention_layernorm).__name__ == "AXK2GatedRMSNorm"
    assert type(blocks[0].post_attention_layernorm).__name__ == "AXK2RMSNorm"
    for layer in (0, 1):
        for which, stream, norm in (
            ("ln1", "hook_resid_pre", blocks[layer].input_layernorm.norm),
            (
                "ln2",
                "hook_resid_mid",
                model.spec.norm_module(blocks[layer], "post_attention_layernorm"),
            ),
        ):
            x = cache[f"blocks.{layer}.{stream}"]
            scale = cache[f"blocks.{layer}.{which}.hook_scale"]
            torch.testing.assert_close(scale, (x.pow(2).mean(-1, keepdim=True) + eps).sqrt())
            torch.testing.assert_close(
                cache[f"blocks.{layer}.{which}.hook_normalized"], x / scale * norm.weight
            )
    # what attention reads is the normalized stream times the gate computed from it
    gate_mlp = blocks[1].input_layernorm.mlp
    normed = cache["blocks.1.ln1.hook_normalized"]
    seen = {}
    q_a = blocks[1].self_attn.q_a_proj
    handle = q_a.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    try:
        with torch.no_grad():
            model.hf_model(tokens, use_cache=False)
    finally:
        handle.remove()
    with torch.no_grad():
        gated = normed * torch.sigmoid(gate_mlp(normed))
    torch.testing.assert_close(seen["x"], gated)
    assert (seen["x"] - normed).abs().max() > 1e-3  # the gate is no identity here
    # the per-head inputs would recompute attention's input without the gate: not offered
    assert "blocks.1.hook_q_input" not in model.hook_names()


def test_edits_of_gated_norm_points_equal_raw_hooks_on_the_inner_norm(axk2):
    model, tokens = axk2, _tokens()
    noise = torch.randn(
        *tokens.shape, model.cfg.d_model, generator=torch.Generator().manual_seed(2)
    )

    def raw_add(mod, args, out):
        return out + noise

    def raw_half(mod, args, out):
        return out * 0.5

    with torch.no_grad():
        base = model.hf_model(tokens, use_cache=False).logits
        for which, path in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm")):
            name = f"blocks.1.{which}."
            ours = model.run_with_hooks(
                tokens, fwd_hooks=[(name + "hook_normalized", lambda x, h: x + noise)]
            )
            want = _raw(model, f"{path}.norm", raw_add)  # before the gate: it reads the edit
            assert (ours - base).abs().max() > 1e-3
            torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)
            # not the same as editing the gated output
            assert (ours - _raw(model, path, raw_add)).abs().max() > 1e-4
            # doubling the divisor halves the norm's output, as on any norm
            ours = model.run_with_hooks(
                tokens, fwd_hooks=[(name + "hook_scale", lambda s, h: s * 2)]
            )
            torch.testing.assert_close(
                ours, _raw(model, f"{path}.norm", raw_half), atol=1e-5, rtol=1e-4
            )


def test_fold_ln_refuses_gated_norms(axk2, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)blocks\.\*\.ln1, blocks\.\*\.ln2 of axk2.*gate"):
        axk2.processed_weights(fold_ln=True)
    axk2.hf_model.save_pretrained(tmp_path)
    with pytest.raises(
        hl.ArgumentError, match=r"(?s)blocks\.\*\.ln1, blocks\.\*\.ln2.*not a plain"
    ):
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer(), fold_ln=True)


def test_q_of_a_projection_that_also_holds_the_gate(axk2):
    """hook_q is each head's queries in q_gate_proj's output (not its gate's input), and an
    edit of it equals the same edit of those rows with a raw hook."""
    model, tokens, c = axk2, _tokens(), axk2.cfg
    latent = model.spec.latent_kv
    width = latent.nope + latent.rope
    assert latent.q_gate == c.d_head  # per head: the queries, then one gate per feature of z
    head = 1

    def ours_edit(q, hook):
        q[:, :, head, : latent.nope] += 1.0

    def raw_edit(mod, args, out):
        out = out.clone()
        start = head * (width + latent.q_gate)
        out[..., start : start + latent.nope] += 1.0
        return out

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_q"])
        assert cache["blocks.1.attn.hook_q"].shape == (*tokens.shape, c.n_heads, width)
        base = model.hf_model(tokens, use_cache=False).logits
        ours = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_q", ours_edit)])
        want = _raw(model, "self_attn.q_gate_proj", raw_edit)
    assert (ours - base).abs().max() > 1e-4
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)


class _Wrapped(torch.nn.Module):
    """A norm and a projection of its output, under the given child names."""

    def __init__(self, norm: torch.nn.Module, names: tuple[str, str], width: int):
        super().__init__()
        self.names = names
        setattr(self, names[0], norm)
        setattr(self, names[1], torch.nn.Linear(width, width, bias=False))

    def forward(self, x):
        y = getattr(self, self.names[0])(x)
        return y * torch.sigmoid(getattr(self, self.names[1])(y))


@pytest.mark.parametrize("names", [("norm", "mlp"), ("inner", "proj")])
def test_only_the_known_gated_norm_is_derived(names):
    """A norm's place holding the gated norm `_names.GATED_NORM` describes is derived; one
    holding a projection under other names is refused, naming it."""
    import transformers as tf

    from hooklens.architectures._derive import derive

    from .conftest import family_config

    model = tf.LlamaForCausalLM(family_config("llama")).eval()
    block = model.model.layers[1]
    block.input_layernorm = _Wrapped(block.input_layernorm, names, model.config.hidden_size)
    if names == ("norm", "mlp"):
        spec = derive(model)
        assert spec.gated_norm == names and spec.ln1 == "input_layernorm"
        assert spec.norm_module(block, "input_layernorm") is block.input_layernorm.norm
        first = model.model.layers[0]
        assert spec.norm_module(first, "input_layernorm") is first.input_layernorm
        return
    with pytest.raises(
        hl.UnsupportedModelError,
        match=r"layer 1's input_layernorm \(_Wrapped\) holds a projection \(input_layernorm\.proj",
    ):
        derive(model)
