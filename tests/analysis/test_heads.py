"""Per-head and per-neuron decompositions sum to the residual stream, on every family."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.conftest import with_random_biases

DIRECT = ["gpt2", "gpt_neox", "gpt_neox_seq", "gptj", "opt", "llama", "qwen2", "qwen3", "phi3"]


def _close(a, b):
    torch.testing.assert_close(a, b, atol=3e-4, rtol=3e-4)


def _run(family, remove_batch_dim=False):
    model = with_random_biases(family)
    torch.manual_seed(4)
    tokens = torch.randint(4, 128, (1 if remove_batch_dim else 2, 6))
    logits, cache = model.run_with_cache(tokens, remove_batch_dim=remove_batch_dim)
    return model, logits, cache


@pytest.mark.parametrize("family", DIRECT)
def test_full_decomposition_sums_to_the_stream(family):
    model, _logits, cache = _run(family)
    n, H, m = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_mlp
    stack, labels = cache.get_full_resid_decomposition(return_labels=True)
    learned = model.cfg.positional == "learned"
    assert len(labels) == stack.shape[0] == n * H + n * m + 2 + learned
    assert labels[0] == "L0H0" and labels[n * H] == "L0N0" and labels[-1] == "bias"
    _close(stack.sum(0), cache[f"blocks.{n - 1}.hook_resid_post"])
    for layer in range(n):
        part = cache.get_full_resid_decomposition(layer, expand_neurons=False)
        assert part.shape[0] == layer * H + layer + 2 + learned
        _close(part.sum(0), cache[f"blocks.{layer}.hook_resid_pre"])
        if not model.cfg.parallel_residual:
            mid = cache.get_full_resid_decomposition(layer, mlp_input=True, pos_slice=-1)
            _close(mid.sum(0), cache[f"blocks.{layer}.hook_resid_mid"][:, -1])
    # negative layers count stream boundaries from the end: -1 is the final stream
    _close(cache.get_full_resid_decomposition(-2).sum(0), cache[f"blocks.{n - 1}.hook_resid_pre"])
    with pytest.raises(IndexError, match="out of range"):
        cache.get_full_resid_decomposition(n + 1)


@pytest.mark.parametrize("family", DIRECT)
def test_head_and_neuron_results(family):
    model, _, cache = _run(family)
    n, H = model.cfg.n_layers, model.cfg.n_heads
    heads, labels = cache.stack_head_results(return_labels=True)
    assert heads.shape == (n * H, 2, 6, model.cfg.d_model) and labels[H] == "L1H0"
    for layer in range(n):
        layer_heads = heads[layer * H : (layer + 1) * H]
        _close(layer_heads.sum(0) + model.b_O[layer], cache[f"blocks.{layer}.hook_attn_out"])
    neurons = cache.stack_neuron_results(1)
    _close(neurons.sum(0) + model.b_out[0], cache["blocks.0.hook_mlp_out"])
    some, n_labels = cache.stack_neuron_results(2, neuron_slice=slice(3, 5), return_labels=True)
    assert some.shape[0] == 4 and n_labels == ["L0N3", "L0N4", "L1N3", "L1N4"]
    with_rest, r_labels = cache.stack_head_results(1, incl_remainder=True, return_labels=True)
    assert r_labels[-1] == "remainder"
    _close(with_rest.sum(0), cache["blocks.1.hook_resid_pre"])
    empty = cache.stack_head_results(0, pos_slice=-1)
    assert empty.shape == (0, 2, model.cfg.d_model)
    normed = cache.stack_head_results(pos_slice=-1, apply_ln=True)
    _close(normed, cache.apply_ln_to_stack(heads[:, :, -1], None, pos_slice=-1))
    cache.compute_head_results()
    _close(cache["blocks.1.attn.hook_result"], heads[H:].movedim(0, -2))


def test_post_norm_families_refuse_a_decomposition_that_would_not_add_up():
    _, _, cache = _run("gemma2")
    assert cache.stack_head_results().shape[0] == 8  # per-head results still exist
    with pytest.raises(ValueError, match="post-attention norm"):
        cache.get_full_resid_decomposition()
    with pytest.raises(ValueError, match="parallel residual"):
        _run("gpt_neox")[2].get_full_resid_decomposition(0, mlp_input=True)


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt"])
def test_logit_attrs_applies_the_final_norm(family):
    model, logits, cache = _run(family)
    stack = cache.get_full_resid_decomposition(expand_neurons=False)
    tok, wrong = torch.tensor([5, 9]), torch.tensor([7, 8])
    attrs = cache.logit_attrs(stack, tok[:, None].expand(2, 6))
    # LayerNorm's bias and b_U are left out; every position's attributions sum to its logit
    final_b = model.weights.ln_final_b()
    offset = torch.zeros(2) if final_b is None else final_b @ model.W_U[:, tok]
    picked = logits.gather(-1, tok[:, None, None].expand(2, 6, 1))[..., 0]
    _close(attrs.sum(0) + offset[:, None], picked - model.b_U[tok][:, None])
    diff = cache.logit_attrs(stack[:, :, -1], tok, incorrect_tokens=wrong, pos_slice=-1)
    assert diff.shape == (stack.shape[0], 2)
    expected = (logits[:, -1].gather(-1, tok[:, None]) - logits[:, -1].gather(-1, wrong[:, None]))[
        :, 0
    ]
    bias = model.b_U[tok] - model.b_U[wrong]
    if final_b is not None:
        bias = bias + final_b @ (model.W_U[:, tok] - model.W_U[:, wrong])
    _close(diff.sum(0) + bias, expected)
    with pytest.raises(ValueError, match="same shape"):
        cache.logit_attrs(stack, tok, incorrect_tokens=7)


def test_without_batch_dim():
    _model, _logits, cache = _run("gpt2", remove_batch_dim=True)
    stack = cache.get_full_resid_decomposition(pos_slice=slice(2, None))
    _close(stack.sum(0), cache["blocks.1.hook_resid_post"][2:])
    assert cache.stack_head_results(apply_ln=True).shape == (8, 6, 32)
