"""The on-demand points: attn.hook_result, hook_attn_in / hook_{q,k,v}_input, hook_mlp_in."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.conftest import with_random_biases

FAMILIES = [
    "gpt2", "gpt_neox", "gpt_neox_seq", "gptj", "opt", "llama", "qwen2", "qwen3", "gemma2",
    "gemma3", "phi3",
]  # fmt: skip


def _close(a, b):
    torch.testing.assert_close(a, b, atol=3e-4, rtol=3e-4)


def _tokens():
    torch.manual_seed(5)
    return torch.randint(4, 128, (2, 6))


def _delta(model):
    return torch.randn(2, 6, model.cfg.d_model, generator=torch.Generator().manual_seed(6))


@pytest.mark.parametrize("family", FAMILIES)
def test_head_results_are_per_head_outputs_and_edits_reach_attention(family):
    model = with_random_biases(family)
    tokens = _tokens()
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        assert "blocks.0.attn.hook_result" not in cache  # on demand only
        _, extra = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_result"))
    result = extra["blocks.1.attn.hook_result"]
    assert result.shape == (2, 6, model.cfg.n_heads, model.cfg.d_model)
    w = model.weights.layer(1)
    _close(result, torch.einsum("bphe,hed->bphd", cache["blocks.1.attn.hook_z"], w.W_O))
    if model.spec.attn_out == model.spec.attn:  # no post-attention norm
        _close(result.sum(-2) + w.b_O, cache["blocks.1.hook_attn_out"])

    def zero_head(x, hook):
        x[:, :, 2] = 0

    with torch.no_grad():
        via_result = model.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.attn.hook_result", zero_head)]
        )
        via_z = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
    _close(via_result, via_z)
    assert not torch.allclose(via_result, logits)


@pytest.mark.parametrize("family", FAMILIES)
def test_split_inputs_match_an_edit_of_the_attention_input(family):
    model = with_random_biases(family)
    tokens, delta = _tokens(), _delta(model)
    names = ["blocks.0.hook_q_input", "blocks.0.hook_k_input", "blocks.0.hook_v_input"]
    with torch.no_grad():
        plain, cache = model.run_with_cache(
            tokens, names_filter=["blocks.0.hook_resid_pre", *names]
        )
        keep = model.run_with_hooks(tokens, fwd_hooks=[(n, lambda x, h: None) for n in names])
    resid = cache["blocks.0.hook_resid_pre"]
    _close(cache[names[0]], resid[:, :, None].expand(-1, -1, model.cfg.n_heads, -1))
    _close(cache[names[1]], resid[:, :, None].expand(-1, -1, model.cfg.n_kv_heads, -1))
    _close(keep, plain)  # recomputing q/k/v from the copies changes nothing

    def add(x, hook):
        return x + delta[:, :, None]

    with torch.no_grad():
        edited = model.run_with_hooks(tokens, fwd_hooks=[(n, add) for n in names])
        if "blocks.0.hook_attn_in" in model.hook_dict:
            via_attn_in = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_attn_in", add)])
            _close(via_attn_in, edited)
        else:
            assert model.cfg.n_kv_heads < model.cfg.n_heads
            with pytest.raises(KeyError, match="grouped-query"):
                model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_attn_in", add)])
    if model.spec.ln2 is not None:  # ln1 feeds attention only: edit its input with raw torch
        ln1 = model.hf_model.get_submodule(f"{model.spec.blocks}.0.{model.spec.ln1}")
        handle = ln1.register_forward_pre_hook(lambda m, a: (a[0] + delta, *a[1:]))
        try:
            with torch.no_grad():
                raw = model(tokens)
        finally:
            handle.remove()
        _close(edited, raw)

    # one query head's input: only that head's z changes
    def one_head(x, hook):
        x[:, :, 1] += delta

    with torch.no_grad():
        _, z_cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_z")
        with model.hooks([("blocks.0.hook_q_input", one_head)]):
            _, z_edit = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_z")
    z0, z1 = z_cache["blocks.0.attn.hook_z"], z_edit["blocks.0.attn.hook_z"]
    # the edit recomputes q from the weights (another summation order): other heads' z agree
    # to float rounding, the edited head's changes by order 1
    changed = [
        h
        for h in range(model.cfg.n_heads)
        if not torch.allclose(z0[:, 1:, h], z1[:, 1:, h], atol=1e-5, rtol=1e-4)
    ]
    assert changed == [1]


@pytest.mark.parametrize(
    "family", ["gpt2", "gpt_neox", "gpt_neox_seq", "opt", "llama", "gemma2", "phi3"]
)
def test_mlp_in_edits_reach_the_mlp_only(family):
    model = with_random_biases(family)
    tokens, delta = _tokens(), _delta(model)
    stream = "hook_resid_pre" if model.cfg.parallel_residual else "hook_resid_mid"
    keep = [
        "blocks.0.hook_mlp_in",
        f"blocks.0.{stream}",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_attn_out",
    ]
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names_filter=keep)
        with model.hooks([("blocks.0.hook_mlp_in", lambda x, h: x + delta)]):
            _, edited = model.run_with_cache(tokens, names_filter=keep[1:])
    _close(clean["blocks.0.hook_mlp_in"], clean[f"blocks.0.{stream}"])
    _close(edited[f"blocks.0.{stream}"], clean[f"blocks.0.{stream}"])  # the residual is untouched
    assert not torch.allclose(edited["blocks.0.hook_mlp_out"], clean["blocks.0.hook_mlp_out"])
    ln2 = model.hf_model.get_submodule(f"{model.spec.blocks}.0.{model.spec.ln2}")
    with torch.no_grad():
        mlp_x = ln2(clean[f"blocks.0.{stream}"] + delta)
    w = model.weights.layer(0)
    pre_name = "mlp.hook_pre_linear" if model.cfg.gated_mlp else "mlp.hook_pre"
    with torch.no_grad(), model.hooks([("blocks.0.hook_mlp_in", lambda x, h: x + delta)]):
        _, inner = model.run_with_cache(tokens, names_filter=f"blocks.0.{pre_name}")
    _close(inner[f"blocks.0.{pre_name}"], mlp_x @ w.W_in + w.b_in)


def test_gptj_has_no_mlp_in():
    model = with_random_biases("gptj")
    with pytest.raises(KeyError, match="one norm shared"):
        model.run_with_cache(_tokens(), names_filter="blocks.0.hook_mlp_in")
