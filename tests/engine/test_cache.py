"""ActivationCache: mapping behaviour and residual-stream analyses."""

from __future__ import annotations

import pytest
import torch

from hooklens._engine.caching import drop_unused_storage
from hooklens._engine.points import is_on_demand


def test_mapping_is_read_only(run):
    model, _, cache = run("gpt2")
    cached_by_default = [n for n in model.hook_names() if not is_on_demand(n)]
    assert "blocks.0.attn.hook_pattern" in cache and len(cache) == len(cached_by_default)
    assert cache["pattern", 1] is cache["blocks.1.attn.hook_pattern"]
    assert cache["resid_pre", 0] is cache["blocks.0.hook_resid_pre"]
    with pytest.raises(TypeError):
        cache["x"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(KeyError, match="hook_pattern"):
        cache["blocks.0.attn.hook_patern"]
    small = cache.to("cpu")
    assert small["hook_embed"].shape == (2, 8, 32)
    assert dict(cache.items()).keys() == set(cache.keys())


def test_cache_keeps_only_what_was_asked(tiny, tokens):
    """GPT-2's q, k and v are slices of one fused projection: cached together they share it
    (no copy); a lone slice is copied so the cache does not keep the whole projection alive."""
    model = tiny("gpt2")
    qkv = [f"blocks.0.attn.hook_{x}" for x in "qkv"]
    with torch.no_grad():
        _, together = model.run_with_cache(tokens, names_filter=qkv)
        _, alone = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_q")
    storages = {together[n].untyped_storage().data_ptr() for n in qkv}
    assert len(storages) == 1
    assert together[qkv[0]].untyped_storage().nbytes() == 3 * together[qkv[0]].nbytes
    q = alone[qkv[0]]
    assert q.untyped_storage().nbytes() == q.nbytes
    torch.testing.assert_close(q, together[qkv[0]])


def test_cache_is_in_the_models_order_gradients_last(tiny, tokens):
    """Whatever order the filter names points in, the cache holds them in the model's order,
    then their gradients in the same order (as TransformerLens's cache)."""
    model = tiny("gpt2")
    names = ["blocks.1.hook_resid_post", "hook_embed", "blocks.0.attn.hook_pattern"]
    _, cache = model.run_with_cache(tokens, names_filter=names, return_type="loss", incl_bwd=True)
    in_order = [n for n in model.hook_names() if n in names]
    assert list(cache) == in_order + [n + "_grad" for n in in_order]
    model.hf_model.zero_grad(set_to_none=True)


def test_drop_unused_storage_weighs_each_storage_once() -> None:
    """A tensor of its own and slices covering their storage stay as they are; a lone slice is
    copied, also when the same slice is cached under two names; a slice of a tensor that is
    cached whole stays a view. The bytes returned count each kept storage once."""
    fused = torch.randn(4, 12)
    own = torch.randn(4, 8)
    whole = torch.randn(4, 6)
    lone = torch.randn(4, 16)[:, :4]
    store = {
        "q": fused[:, :4], "k": fused[:, 4:8], "v": fused[:, 8:],
        "own": own, "own_again": own,
        "whole": whole, "part_of_whole": whole[:, :2],
        "lone": lone, "lone_again": lone,
    }  # fmt: skip
    kept = drop_unused_storage(store)
    assert store["q"].untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()
    assert store["own"] is own and store["own_again"] is own
    assert store["part_of_whole"].untyped_storage().data_ptr() == whole.data_ptr()
    assert store["lone"].untyped_storage().nbytes() == lone.nbytes
    assert store["lone_again"].untyped_storage().nbytes() == lone.nbytes
    torch.testing.assert_close(store["lone"], lone)
    assert kept == fused.nbytes + own.nbytes + whole.nbytes + 2 * lone.nbytes


def test_remove_batch_dim_and_device(tiny):
    model = tiny("llama")
    toks = torch.tensor([[1, 5, 6, 7]])
    _, cache = model.run_with_cache(toks, device="cpu")
    assert cache.remove_batch_dim()["blocks.0.attn.hook_pattern"].shape == (4, 4, 4)
    _, cache2 = model.run_with_cache(toks, remove_batch_dim=True)
    torch.testing.assert_close(cache2["hook_embed"], cache["hook_embed"][0])


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox", "gemma2", "opt"])
def test_decomposition_sums_to_stream(run, family):
    model, logits, cache = run(family)
    n = model.cfg.n_layers
    parts, labels = cache.decompose_resid(return_labels=True)
    assert labels[0] == "embed" and labels[-1] == f"{n - 1}_mlp_out"
    final = cache[f"blocks.{n - 1}.hook_resid_post"]
    torch.testing.assert_close(parts.sum(0), final, atol=1e-4, rtol=1e-4)
    acc, acc_labels = cache.accumulated_resid(return_labels=True)
    assert acc.shape == (n + 1, 2, 8, 32) and acc_labels[-1] == "final_post"
    torch.testing.assert_close(acc[-1], final)
    # apply_ln_to_stack is linear: the components' logit attributions sum to the logits minus
    # a constant (the final norm's bias and the unembedding's bias)
    # logit_attrs applies the final norm itself, as TransformerLens does
    tok = 7
    attrs = cache.logit_attrs(parts, tok)
    assert attrs.shape == (len(labels), 2, 8)
    diff = attrs.sum(0) - logits[..., tok]
    if model.spec.final_logit_softcap is None:
        torch.testing.assert_close(
            diff, torch.full_like(diff, diff.flatten()[0].item()), atol=1e-3, rtol=0
        )
    # the last accumulated stream, normed, gives the logits up to the same constant
    last = cache.apply_ln_to_stack(acc[-1:])
    assert last.shape == (1, 2, 8, 32)


def test_incl_mid_and_stack_activation(run):
    _, _, cache = run("llama")
    acc, labels = cache.accumulated_resid(layer=1, incl_mid=True, pos_slice=-1, return_labels=True)
    assert acc.shape == (3, 2, 32) and labels == ["0_pre", "0_mid", "1_pre"]
    assert cache.stack_activation("attn.hook_pattern").shape == (2, 2, 4, 8, 8)
    assert cache.stack_activation("hook_resid_post").shape == (2, 2, 8, 32)
    stack = cache.decompose_resid(pos_slice=-1)
    per_tok = cache.logit_attrs(
        stack, torch.tensor([3, 4]), incorrect_tokens=torch.tensor([5, 6]), pos_slice=-1
    )
    assert per_tok.shape == (5, 2)
    _, _, neox_cache = run("gpt_neox")
    with pytest.raises(ValueError, match="parallel residual"):
        neox_cache.accumulated_resid(incl_mid=True)


def test_cached_activations_are_out_of_the_graph_with_or_without_gradients(tiny, tokens):
    """With gradients on, each cached tensor is detached from the forward's graph; with them
    off it is stored as it is (no graph to leave). The values are the same either way."""
    model = tiny("gpt2")
    names = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern", "ln_final.hook_normalized"]
    logits, with_grad = model.run_with_cache(tokens, names_filter=names)
    assert logits.requires_grad
    with torch.no_grad():
        _, without = model.run_with_cache(tokens, names_filter=names)
    for name in names:
        assert not with_grad[name].requires_grad and with_grad[name].grad_fn is None
        torch.testing.assert_close(with_grad[name], without[name])
