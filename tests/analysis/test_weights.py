"""Weights in TransformerLens's shapes reproduce the model's own activations on every family."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.conftest import with_random_biases

#: every family the adapters describe the weights of
FAMILIES = [
    "gpt2", "gpt_neox", "gpt_neox_seq", "gptj", "opt", "llama", "mistral", "qwen2", "qwen3",
    "gemma2", "gemma3", "phi3", "gpt_neo", "bloom", "gpt_bigcode",
]  # fmt: skip
#: families whose hook_q / hook_k are read after a q/k norm (not the projection's output)
QK_NORM = {"qwen3", "gemma3"}


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=2e-4, rtol=2e-4)


def _cached(tiny, tiny_dir, family: str):
    model = with_random_biases(family)
    torch.manual_seed(1)
    tokens = torch.randint(4, 128, (2, 7))
    logits, cache = model.run_with_cache(tokens)
    return model, tokens, logits, cache


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_reproduce_activations(tiny, tiny_dir, family):
    model, tokens, logits, cache = _cached(tiny, tiny_dir, family)
    cfg = model.cfg
    L, H, D, dh, m = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_mlp
    assert model.W_Q.shape == model.W_K.shape == model.W_V.shape == (L, H, D, dh)
    assert model.W_O.shape == (L, H, dh, D)
    assert model.b_Q.shape == model.b_K.shape == model.b_V.shape == (L, H, dh)
    assert model.b_O.shape == model.b_out.shape == (L, D)
    assert model.W_in.shape == (L, D, m) and model.W_out.shape == (L, m, D)
    assert model.b_in.shape == (L, m)
    assert model.W_E.shape == (cfg.d_vocab, D) and model.W_U.shape == (D, cfg.d_vocab)
    if model.spec.embed_norm is None:  # BLOOM's hook_embed is after its embedding norm (as in TL)
        _close(model.W_E[tokens], cache["hook_embed"])
    if cfg.positional == "learned":
        pos = torch.arange(tokens.shape[1])
        _close(model.W_pos[pos].expand_as(cache["hook_pos_embed"]), cache["hook_pos_embed"])
    else:
        with pytest.raises(AttributeError, match="no learned position"):
            _ = model.W_pos
    rep = H // cfg.n_kv_heads
    for layer in range(L):
        w = model.weights.layer(layer)
        x = cache[f"blocks.{layer}.ln1.hook_normalized"]
        q = torch.einsum("bpd,hde->bphe", x, w.W_Q) + w.b_Q
        k = torch.einsum("bpd,hde->bphe", x, w._W_K) + w._b_K
        v = torch.einsum("bpd,hde->bphe", x, w._W_V) + w._b_V
        if family not in QK_NORM:
            _close(q, cache[f"blocks.{layer}.attn.hook_q"])
            _close(k, cache[f"blocks.{layer}.attn.hook_k"])
        _close(v, cache[f"blocks.{layer}.attn.hook_v"])
        # the expanded W_K / W_V give query head h its key/value head h // rep
        _close(w.W_K, w._W_K.repeat_interleave(rep, 0))
        _close(w.W_V[H - 1], w._W_V[(H - 1) // rep])
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        v_full = torch.einsum("bpd,hde->bphe", x, w.W_V) + w.b_V
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v_full)
        _close(z, cache[f"blocks.{layer}.attn.hook_z"])
        out = torch.einsum("bphe,hed->bpd", z, w.W_O) + w.b_O
        if model.spec.attn_out not in (model.spec.attn, model.spec.o_proj):  # a norm (Gemma)
            blocks = model.hf_model.get_submodule(model.spec.blocks)
            out = blocks[layer].get_submodule(model.spec.attn_out)(out)
        _close(out, cache[f"blocks.{layer}.hook_attn_out"])
        mlp_x = cache[f"blocks.{layer}.{'ln2' if model.spec.ln2 else 'ln1'}.hook_normalized"]
        if cfg.gated_mlp:
            _close(mlp_x @ w.W_gate, cache[f"blocks.{layer}.mlp.hook_pre"])
            _close(mlp_x @ w.W_in + w.b_in, cache[f"blocks.{layer}.mlp.hook_pre_linear"])
        else:
            _close(mlp_x @ w.W_in + w.b_in, cache[f"blocks.{layer}.mlp.hook_pre"])
            with pytest.raises(AttributeError, match="not gated"):
                _ = w.W_gate
        mlp = cache[f"blocks.{layer}.mlp.hook_post"] @ w.W_out + w.b_out
        if model.spec.mlp_out not in ("mlp", model.spec.mlp_down):  # a post-MLP norm (Gemma)
            blocks = model.hf_model.get_submodule(model.spec.blocks)
            mlp = blocks[layer].get_submodule(model.spec.mlp_out)(mlp)
        _close(mlp, cache[f"blocks.{layer}.hook_mlp_out"])
    final = cache["ln_final.hook_normalized"] @ model.W_U + model.b_U
    cap = getattr(model.hf_model.config, model.spec.final_logit_softcap or "", None)
    if cap:
        final = torch.tanh(final / cap) * cap
    _close(final, logits)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "phi3"])
def test_per_layer_weights_are_views(tiny, family):
    model = tiny(family)
    params = {p.untyped_storage().data_ptr() for p in model.hf_model.parameters()}
    w = model.weights.layer(0)
    for name in ("W_Q", "_W_K", "_W_V", "W_O", "W_in", "W_out"):
        assert getattr(w, name).untyped_storage().data_ptr() in params, name
    assert model.W_U.untyped_storage().data_ptr() in params
    assert model.W_E.untyped_storage().data_ptr() in params
    # an in-place edit of a view is an edit of the model (and is undone here)
    with torch.no_grad():
        before = model(torch.tensor([[5, 6, 7]]))
        w.W_Q.mul_(2.0)
        after = model(torch.tensor([[5, 6, 7]]))
        w.W_Q.div_(2.0)
    assert not torch.allclose(before, after)


def test_gqa_expansion_is_a_copy_and_negative_layers():
    model = with_random_biases("qwen2")  # 4 query heads, 2 key/value heads, q/k/v biases
    w = model.weights.layer(-1)
    assert w.layer == model.cfg.n_layers - 1
    assert w._W_K.shape == (2, 32, 8) and w.W_K.shape == (4, 32, 8)
    assert w.b_K.shape == (4, 8) and bool(w._b_K.abs().sum() > 0)
    with pytest.raises(IndexError, match="out of range"):
        model.weights.layer(2)


@pytest.mark.parametrize("model_type", ["mixtral", "qwen2_moe"])
def test_a_mixture_of_experts_has_no_one_mlp_weight_and_says_so(model_type):
    """W_in/W_gate/W_out of a layer whose MLP is a mixture of experts raise, naming the experts'
    module and the point with each expert's output (before: a TypeError about the block)."""
    import transformers as tf

    import hooklens as hl
    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    model = hl.HookedModel(tf.AutoModelForCausalLM.from_config(tiny_config(model_type)).eval())
    for name in ("W_in", "W_gate", "W_out", "b_out"):
        with pytest.raises(ValueError, match="layer 1's MLP is a mixture of experts") as info:
            getattr(model.blocks[1].mlp, name)
        assert model.spec.moe_experts in str(info.value)
        assert "blocks.1.mlp.hook_expert_out" in str(info.value)
    with pytest.raises(ValueError, match="mixture of experts"):
        model.W_in  # noqa: B018
