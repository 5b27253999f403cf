"""A hybrid whose layers of different kinds place their norms apart (OLMo-hybrid: post-norm
attention layers, pre-norm linear-attention layers): each layer's norm points are its own."""

from __future__ import annotations

import torch

from hooklens.architectures._registry import VOCAB


def test_each_layer_has_the_norms_it_applies(registry):
    outcome, model = registry("olmo_hybrid")
    assert model is not None, outcome.reason
    hf = model.hf_model
    kinds = [lay.kind for lay in model.spec.layers]
    assert kinds == ["mixer", "attention"]
    names = model.hook_names()
    for part in ("ln1", "ln2"):  # the linear-attention layer normalizes its inputs ...
        assert f"blocks.0.{part}.hook_normalized" in names
        assert f"blocks.1.{part}.hook_normalized" not in names  # ... attention its outputs
    tokens = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = hf(tokens, use_cache=False).logits
        _, cache = model.run_with_cache(tokens)
    block = hf.get_submodule(model.spec.blocks)[0]
    resid_pre, mid = cache["blocks.0.hook_resid_pre"], cache["blocks.0.hook_resid_mid"]
    with torch.no_grad():
        ln1 = block.input_layernorm(resid_pre)
        ln2 = block.post_attention_layernorm(mid)
        mixer = block.linear_attn(ln1)  # what the layer adds, no norm on it
    torch.testing.assert_close(cache["blocks.0.ln1.hook_normalized"], ln1)
    torch.testing.assert_close(cache["blocks.0.ln2.hook_normalized"], ln2)
    torch.testing.assert_close(cache["blocks.0.hook_mixer_out"], mixer, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mid, resid_pre + mixer, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        cache["blocks.0.hook_resid_post"], mid + cache["blocks.0.hook_mlp_out"]
    )

    # an edit of the layer's own ln2 output reaches its MLP, as a raw hook on that norm does
    def double(x, hook):
        return x * 2

    handle = block.post_attention_layernorm.register_forward_hook(lambda m, a, out: out * 2)
    try:
        with torch.no_grad():
            raw = hf(tokens, use_cache=False).logits
    finally:
        handle.remove()
    with torch.no_grad():
        ours = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.ln2.hook_normalized", double)])
    assert (ours - ref).abs().max() > 1e-3
    torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)
