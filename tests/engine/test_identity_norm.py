"""A layer with no norm before attention where the others have one (ModernBERT's decoder's layer
0 holds an identity there: the embedding's LayerNorm was the stream's last norm)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

TOKENS = torch.tensor([[5, 9, 17, 33, 40, 41, 50]])


def test_layer_without_ln1_reads_the_stream(registry):
    _, model = registry("modernbert-decoder")
    assert model is not None and model.spec.no_ln1_layers == (0,)
    names = model.hook_names()
    assert "blocks.0.ln1.hook_normalized" not in names
    assert "blocks.1.ln1.hook_normalized" in names
    with pytest.raises(hl.HookNameError, match="no norm before attention"):
        model.run_with_cache(TOKENS, names_filter="blocks.0.ln1.hook_scale")
    hf = model.hf_model
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
        norm = hf.get_submodule(model.spec.embed_sum_norm)
        torch.testing.assert_close(norm(cache["hook_embed"]), cache["blocks.0.hook_resid_pre"])
        w = model.weights.layer(0)
        q = torch.einsum("bpd,hde->bphe", cache["blocks.0.hook_resid_pre"], w.W_Q) + w.b_Q
        torch.testing.assert_close(q, cache["blocks.0.attn.hook_q"])
        # the sliding-window layer's pattern is zero beyond its window
        pattern = cache["blocks.1.attn.hook_pattern"]
        window = hf.config.sliding_window
        far = torch.ones(7, 7, dtype=torch.bool).tril(-window)
        assert far.any() and pattern[..., far].abs().max() == 0
