"""Recurrent-only models (RWKV) and RecurrentGemma: the residual stream on every layer, a mixer
point where attention would be, and the embedding's own treatment (a norm inside block 0, a
factor held by the model)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import tiny_config

TOKENS = torch.tensor([[5, 9, 17, 33, 40]])


def test_rwkv_block_0_reads_the_normalized_embedding(registry):
    """RWKV's block 0 normalizes the embedding (`pre_ln`) before its parts: its hook_resid_pre
    is that norm's output, the stream the block's parts add to, and the decomposition starts
    from it."""
    _, model = registry("rwkv")
    assert model is not None
    pre_ln = model.hf_model.get_submodule(model.spec.embed_sum_norm)
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
        torch.testing.assert_close(pre_ln(cache["hook_embed"]), cache["blocks.0.hook_resid_pre"])
    b = "blocks.0."
    added = cache[b + "hook_mixer_out"] + cache[b + "hook_mlp_out"]
    torch.testing.assert_close(cache[b + "hook_resid_pre"] + added, cache[b + "hook_resid_post"])
    parts, labels = cache.decompose_resid(layer=-1, return_labels=True)
    assert labels[0] == "embed_normalized" and "0_mixer_out" in labels and "1_mlp_out" in labels
    torch.testing.assert_close(parts.sum(0), cache["blocks.1.hook_resid_post"])


def test_rwkv_edit_of_block_0_input_reaches_the_model(registry):
    """An edit of block 0's hook_resid_pre is an edit of pre_ln's output, by hand."""
    _, model = registry("rwkv")
    assert model is not None
    hf = model.hf_model
    pre_ln = hf.get_submodule(model.spec.embed_sum_norm)
    with torch.no_grad():
        base = hf(TOKENS).logits
        ours = model.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, h: x * 2)]
        )
        handle = pre_ln.register_forward_hook(lambda m, a, o: o * 2)
        try:
            want = hf(TOKENS).logits
        finally:
            handle.remove()
    assert (ours - base).abs().max() > 1e-3
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)


def test_rwkv_halving_the_stream_is_refused_naming_the_setting(tmp_path):
    """RWKV halves the stream every `rescale_every` layers at inference: refused, saying how
    to load it so that it does not; loaded that way, it is wrapped."""
    from transformers import AutoModelForCausalLM

    from .conftest import _tokenizer

    config = tiny_config("rwkv")
    config.rescale_every = 1
    hf = AutoModelForCausalLM.from_config(config).eval()
    with pytest.raises(hl.UnsupportedModelError, match="rescale_every=0") as info:
        hl.HookedModel(hf)
    assert "halves the residual stream between blocks every 1 layers" in str(info.value)
    hf.save_pretrained(tmp_path)
    model = hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer(), rescale_every=0)
    assert model.hf_model.config.rescale_every == 0
    with torch.no_grad():
        ours = model(TOKENS)
        torch.testing.assert_close(ours, model.hf_model(TOKENS).logits, atol=1e-4, rtol=1e-4)
        # the halving changes only rounding and the norms' eps: nearly the same logits
        torch.testing.assert_close(ours, hf(TOKENS).logits, atol=2e-3, rtol=1e-3)


def test_recurrent_gemma_embedding_is_scaled_by_the_model(registry):
    """RecurrentGemma multiplies the token embedding by its `normalizer` (sqrt(d_model), in
    bfloat16) outside the embedding module: hook_embed includes it, and W_E too."""
    _, model = registry("recurrent_gemma")
    assert model is not None
    hf = model.hf_model
    factor = float(hf.model.normalizer)
    assert factor == pytest.approx(model.cfg.d_model**0.5, rel=1e-2)
    with torch.no_grad():
        _, cache = model.run_with_cache(
            TOKENS, names_filter=["hook_embed", "blocks.0.hook_resid_pre"]
        )
    raw = hf.model.embed_tokens(TOKENS)
    torch.testing.assert_close(cache["hook_embed"], raw * factor)
    torch.testing.assert_close(cache["hook_embed"], cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(model.W_E[TOKENS[0]], (raw * factor)[0])


@pytest.mark.parametrize("model_type", ["rwkv", "falcon_h1"])
def test_lens_view_decomposes_a_mixer_model(registry, model_type):
    """The residual view's lens reads what mixers add: its contributions are the embedding,
    each mixer's (beside attention's, on Falcon-H1) and each MLP's, summing to the final
    stream along its own direction."""
    import numpy as np

    from hooklens.vis._lens import compute_lens

    _, model = registry(model_type)
    assert model is not None
    lens = compute_lens(model, TOKENS)
    assert "0_mixer_out" in lens.contrib_labels and "1_mlp_out" in lens.contrib_labels
    assert ("0_attn_out" in lens.contrib_labels) == (model_type == "falcon_h1")
    np.testing.assert_allclose(lens.contrib.sum(0), lens.norms[-1], rtol=1e-4, atol=1e-4)
