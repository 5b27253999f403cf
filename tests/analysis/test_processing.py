"""Processed weights are a copy, and give the outputs TransformerLens says they keep."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.conftest import with_random_biases

LN = ["gpt2", "gpt_neox", "gptj", "opt"]
RMS = ["llama", "qwen2", "gemma2", "phi3"]


def _close(a, b):
    torch.testing.assert_close(a, b, atol=3e-4, rtol=3e-4)


def _run(family):
    model = with_random_biases(family)
    torch.manual_seed(3)
    tokens = torch.randint(4, 128, (2, 6))
    logits, cache = model.run_with_cache(tokens)
    return model, tokens, logits, cache


def _pre(model, x, scale):
    """What a norm computes before its weight and bias: LNPre / RMSPre."""
    if model.cfg.norm == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    return x / scale


def _capped(model, logits):
    cap = getattr(model.hf_model.config, model.spec.final_logit_softcap or "", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@pytest.mark.parametrize("family", LN + RMS)
def test_fold_ln_gives_the_same_activations(family):
    model, _, logits, cache = _run(family)
    before = model.W_Q.clone()
    p = model.processed_weights(fold_ln=True)
    assert p.normalization_type == ("LNPre" if family in LN else "RMSPre")
    assert p.ln1_w is None and p.ln_final_w is None and p.applied == ("fold_ln",)
    torch.testing.assert_close(model.W_Q, before, rtol=0, atol=0)  # the model is untouched
    rep = model.cfg.n_heads // model.cfg.n_kv_heads
    for layer in range(model.cfg.n_layers):
        b = f"blocks.{layer}."
        x = _pre(model, cache[b + "hook_resid_pre"], cache[b + "ln1.hook_scale"])
        q = torch.einsum("bpd,hde->bphe", x, p.W_Q[layer]) + p.b_Q[layer]
        _close(q, cache[b + "attn.hook_q"])
        v = torch.einsum("bpd,hde->bphe", x, p.W_V[layer][::rep]) + p.b_V[layer][::rep]
        _close(v, cache[b + "attn.hook_v"])
        if model.spec.ln2 is None:  # GPT-J: the MLP reads ln1
            mlp_x = x
        else:
            mid = b + "hook_resid_mid"
            stream = mid if mid in cache else b + "hook_resid_pre"
            mlp_x = _pre(model, cache[stream], cache[b + "ln2.hook_scale"])
        if model.cfg.gated_mlp:
            _close(mlp_x @ p.W_gate[layer], cache[b + "mlp.hook_pre"])
            _close(mlp_x @ p.W_in[layer] + p.b_in[layer], cache[b + "mlp.hook_pre_linear"])
        else:
            _close(mlp_x @ p.W_in[layer] + p.b_in[layer], cache[b + "mlp.hook_pre"])
    n = model.cfg.n_layers
    final = _pre(model, cache[f"blocks.{n - 1}.hook_resid_post"], cache["ln_final.hook_scale"])
    _close(_capped(model, final @ p.W_U + p.b_U), logits)


@pytest.mark.parametrize("family", LN)
def test_center_writing_weights_keeps_what_every_norm_reads(family):
    model, tokens, _logits, cache = _run(family)
    p = model.processed_weights(fold_ln=True, center_writing_weights=True)

    def centred(t):
        return t - t.mean(-1, keepdim=True)

    _close(p.W_E[tokens], centred(cache["hook_embed"]))
    if p.W_pos is not None:
        _close(p.W_pos[: tokens.shape[1]], centred(cache["hook_pos_embed"][0]))
    for layer in range(model.cfg.n_layers):
        b = f"blocks.{layer}."
        z = cache[b + "attn.hook_z"]
        _close(
            torch.einsum("bphe,hed->bpd", z, p.W_O[layer]) + p.b_O[layer],
            centred(cache[b + "hook_attn_out"]),
        )
        post = cache[b + "mlp.hook_post"]
        _close(post @ p.W_out[layer] + p.b_out[layer], centred(cache[b + "hook_mlp_out"]))
    # a centred stream is normalized the same: the logits do not change
    n = model.cfg.n_layers
    resid = cache[f"blocks.{n - 1}.hook_resid_post"]
    ln_final = model.hf_model.get_submodule(model.spec.final_norm)
    _close(ln_final(centred(resid)), cache["ln_final.hook_normalized"])


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_center_writing_weights_refuses_rmsnorm(family):
    model = with_random_biases(family)
    with pytest.raises(ValueError, match="RMSNorm"):
        model.processed_weights(center_writing_weights=True)


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt"])
def test_center_unembed_keeps_log_probs(family):
    model, _, logits, cache = _run(family)
    p = model.processed_weights(center_unembed=True)
    new = cache["ln_final.hook_normalized"] @ p.W_U + p.b_U
    _close(new.log_softmax(-1), logits.log_softmax(-1))
    _close(p.W_U.mean(-1), torch.zeros(model.cfg.d_model))


def test_center_unembed_refuses_a_soft_cap():
    with pytest.raises(ValueError, match="soft-cap"):
        with_random_biases("gemma2").processed_weights(center_unembed=True)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "qwen2"])
def test_fold_value_biases_keeps_attention_output(family):
    model, _, _, cache = _run(family)
    p = model.processed_weights(fold_value_biases=True)
    assert bool(model.b_V.abs().sum() > 0) and bool(p.b_V.abs().sum() == 0)
    for layer in range(model.cfg.n_layers):
        b = f"blocks.{layer}."
        x = cache[b + "ln1.hook_normalized"]
        v = torch.einsum("bpd,hde->bphe", x, p.W_V[layer]) + p.b_V[layer]
        z = torch.einsum("bhqk,bkhe->bqhe", cache[b + "attn.hook_pattern"], v)
        out = torch.einsum("bphe,hed->bpd", z, p.W_O[layer]) + p.b_O[layer]
        _close(out, cache[b + "hook_attn_out"])
