"""Layers a text-only forward skips (Mllama's cross-attention layers): they keep their number,
their input is their output, their stream points fire where the stream goes next, and every
other point of theirs raises saying why."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import hooklens as hl
from hooklens.architectures._registry import tiny_config

TOKENS = torch.tensor([[5, 9, 17, 33, 8]])


def _mllama(cross: list[int], n_layers: int = 3) -> hl.HookedModel:
    config = tiny_config("mllama")
    config.text_config.num_hidden_layers = n_layers
    config.text_config.cross_attention_layers = cross
    torch.manual_seed(0)
    return hl.HookedModel(tf.AutoModelForCausalLM.from_config(config).eval())


def test_registry_mllama_has_a_skipped_cross_attention_layer(registry):
    outcome, model = registry("mllama")
    assert model is not None, outcome
    kinds = [lay.kind for lay in model.spec.layers]
    assert kinds == ["attention", "skipped", "attention"]
    assert type(model.hf_model.model.layers[1]).__name__ == "MllamaCrossAttentionDecoderLayer"


@pytest.mark.parametrize("cross", [[1], [2], [1, 2]])
def test_a_skipped_layer_passes_the_stream_on(cross):
    model = _mllama(cross)
    n = model.cfg.n_layers
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
        ref = model.hf_model(TOKENS, use_cache=False).logits
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    for layer in cross:
        b = f"blocks.{layer}."
        pre, post = cache[b + "hook_resid_pre"], cache[b + "hook_resid_post"]
        torch.testing.assert_close(pre, post)
        if layer > 0:
            torch.testing.assert_close(pre, cache[f"blocks.{layer - 1}.hook_resid_post"])
        if layer + 1 < n:
            torch.testing.assert_close(post, cache[f"blocks.{layer + 1}.hook_resid_pre"])
    torch.testing.assert_close(
        model.unembed_resid(cache[f"blocks.{n - 1}.hook_resid_post"]), ref, atol=1e-4, rtol=1e-4
    )
    # the attending layers' points are all there
    attending = [i for i in range(n) if i not in cross]
    assert model.spec.attention_layers(n) == attending
    for layer in attending:
        assert cache[f"blocks.{layer}.attn.hook_pattern"].sum(-1).allclose(torch.ones(1))


@pytest.mark.parametrize("cross", [[1], [2]])
def test_an_edit_of_a_skipped_layers_output_is_the_next_modules_input(cross):
    """Adding a vector at blocks.{l}.hook_resid_post of a skipped layer equals adding it, with a
    raw torch hook, to what the model computes next (the next block that runs, or the final
    norm)."""
    model = _mllama(cross)
    layer = cross[0]
    shift = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))

    def add(x, hook):
        return x + shift

    with torch.no_grad():
        got = model.run_with_hooks(TOKENS, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add)])
    text = model.hf_model.model
    ahead = text.layers[layer + 1] if layer + 1 < len(text.layers) else text.norm

    def raw(module, args, kwargs):
        return (args[0] + shift, *args[1:]), kwargs

    handle = ahead.register_forward_pre_hook(raw, with_kwargs=True)
    try:
        with torch.no_grad():
            want = model.hf_model(TOKENS, use_cache=False).logits
    finally:
        handle.remove()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, model(TOKENS))


def test_a_skipped_layers_other_points_and_weights_say_why():
    model = _mllama([1])
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter="blocks.1.attn.hook_pattern")
    assert "text-only forward skips it" in str(info.value)
    assert "cross_attention_layers" in str(info.value)
    with pytest.raises(ValueError, match="does not run here"):
        model.blocks[1].attn.W_Q  # noqa: B018
    assert model.blocks[2].attn.W_Q.shape[0] == model.cfg.n_heads
    _, cache = model.run_with_cache(TOKENS)
    stack, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    assert labels[:5] == ["0_pre", "0_mid", "1_pre", "1_mid", "2_pre"]
    torch.testing.assert_close(stack[3], stack[2])  # a skipped layer's middle is its input
    parts, names = cache.decompose_resid(return_labels=True)
    assert names == ["embed", "0_attn_out", "0_mlp_out", "2_attn_out", "2_mlp_out"]
    torch.testing.assert_close(parts.sum(0), cache["blocks.2.hook_resid_post"], atol=1e-5, rtol=0)
