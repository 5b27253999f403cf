"""ZAYA: token embeddings shifted and scaled by parameters of its model before block 0, q, k and v
computed by one module of its own, the stream and each part shifted and scaled before they are
added, and a router with a class that routes to no expert. Each point holds what the model
computes where it sits, and an edit of it is the raw edit there."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

from .conftest import raw_edit_logits

TOKENS = torch.tensor([[5, 9, 17, 33, 40], [7, 7, 60, 3, 12]])


def _zaya():
    """A tiny ZAYA whose shifts and scales are not the identity they start as."""
    import transformers as tf

    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("zaya")).eval()
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if name.endswith(("_bias", "input_hidden_states_bias")) and "proj" not in name:
                param.normal_(0, 0.5)
            elif name.endswith("_scale") and "router" not in name:
                param.uniform_(0.5, 1.5)
    return hl.HookedModel(hf)


@pytest.fixture(scope="module")
def zaya():
    return _zaya()


def test_hook_embed_is_the_shifted_and_scaled_embedding(zaya):
    hf = zaya.hf_model
    with torch.no_grad():
        logits, cache = zaya.run_with_cache(TOKENS)
        ref = hf(TOKENS, use_cache=False).logits
        raw = hf.model.embed_tokens(TOKENS)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    shift, scale = hf.model.input_hidden_states_bias, hf.model.input_hidden_states_scale
    want = (raw + shift) * scale
    torch.testing.assert_close(cache["hook_embed"], want)
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], want)
    with torch.no_grad():
        torch.testing.assert_close(zaya.W_E[TOKENS], want)


def test_edit_of_hook_embed_is_what_block_0_reads(zaya):
    """Zeroing hook_embed at position 2 gives the logits of zeroing block 0's input there."""
    hf = zaya.hf_model

    def zero_pos_2(x, hook):
        x = x.clone()
        x[:, 2] = 0
        return x

    def raw(module, args, kwargs):
        x = (args[0] if args else kwargs["hidden_states"]).clone()
        x[:, 2] = 0
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    with torch.no_grad():
        ours = zaya.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", zero_pos_2)])
        handle = hf.model.layers[0].register_forward_pre_hook(raw, with_kwargs=True)
        try:
            want = hf(TOKENS, use_cache=False).logits
        finally:
            handle.remove()
    torch.testing.assert_close(ours, want, atol=1e-4, rtol=1e-4)


def test_q_k_v_are_read_where_the_model_makes_them(zaya):
    """hook_q/hook_k are the q/k norm's output (before the rotation), hook_v the values the
    convolving projection returns; an edit of each is the raw edit there. W_Q/W_K/W_V raise."""
    hf, attn = zaya.hf_model, zaya.hf_model.model.layers[1].self_attn
    with torch.no_grad():
        _, cache = zaya.run_with_cache(TOKENS)
    seen = {}

    def keep(key, index):
        def hook(module, args, out):
            seen[key] = out[index] if index is not None else out

        return hook

    norm_hook = attn.qk_norm.register_forward_hook(keep("qk", None))
    proj_hook = attn.qkv_proj.register_forward_hook(keep("v", 2))
    try:
        with torch.no_grad():
            hf(TOKENS, use_cache=False)
    finally:
        norm_hook.remove()
        proj_hook.remove()
    torch.testing.assert_close(cache["blocks.1.attn.hook_q"], seen["qk"][0])
    torch.testing.assert_close(cache["blocks.1.attn.hook_k"], seen["qk"][1])
    torch.testing.assert_close(cache["blocks.1.attn.hook_v"], seen["v"])

    def halve_head_0(x, hook):
        x = x.clone()
        x[:, :, 0] *= 0.5
        return x

    def halved(t):
        t = t.clone()
        t[:, :, 0] *= 0.5
        return t

    for letter, module, edit in (
        ("q", attn.qk_norm, lambda out: (halved(out[0]), out[1])),
        ("k", attn.qk_norm, lambda out: (out[0], halved(out[1]))),
        ("v", attn.qkv_proj, lambda out: (out[0], out[1], halved(out[2]))),
    ):
        with torch.no_grad():
            ours = zaya.run_with_hooks(
                TOKENS, fwd_hooks=[(f"blocks.1.attn.hook_{letter}", halve_head_0)]
            )
        raw = raw_edit_logits(hf, module, edit, TOKENS)
        torch.testing.assert_close(ours, raw, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="computes q, k and v in one module of its own"):
        _ = zaya.W_Q


def test_stream_and_parts_are_shifted_and_scaled_before_they_are_added(zaya):
    """resid_mid and resid_post are what the residual-scaling modules return, not the sums of
    the parts: sums of parts raise, naming the modules."""
    block = zaya.hf_model.model.layers[0]
    with torch.no_grad():
        _, cache = zaya.run_with_cache(TOKENS)
    b = "blocks.0."
    attn_scale, mlp_scale = block.post_attention_residual_scale, block.post_mlp_residual_scale
    with torch.no_grad():
        mid = attn_scale(cache[b + "hook_attn_out"], cache[b + "hook_resid_pre"])
        post = mlp_scale(cache[b + "hook_mlp_out"], cache[b + "hook_resid_mid"])
    torch.testing.assert_close(cache[b + "hook_resid_mid"], mid)
    torch.testing.assert_close(cache[b + "hook_resid_post"], post)
    summed = cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"]
    assert (summed - cache[b + "hook_resid_mid"]).abs().max() > 1e-2
    with pytest.raises(hl.InputError, match="post_attention_residual_scale"):
        cache.decompose_resid()


def test_router_has_a_class_that_routes_to_no_expert():
    """hook_router_logits holds the experts' logits and the skip class's (last); a token routed
    to it reaches no expert: the experts module receives expert 0 with weight 0, and so do
    hook_expert_indices / hook_expert_weights, and the MLP adds nothing."""
    model = _zaya()
    for layer in model.hf_model.model.layers:  # every token to the skip class
        layer.mlp.gate.balancing_biases[-1] = 10.0
    c = model.cfg
    assert c.n_router_classes == c.n_experts + 1
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    b = "blocks.0.mlp."
    assert cache[b + "hook_router_logits"].shape == (*TOKENS.shape, c.n_experts + 1)
    assert (cache[b + "hook_expert_indices"] == 0).all()
    assert (cache[b + "hook_expert_weights"] == 0).all()
    assert (cache["blocks.0.hook_mlp_out"] == 0).all()


def test_embedding_affine_follows_the_model_to_another_dtype():
    """hook_embed reads the shift and scale parameters themselves: after `model.to(bfloat16)`
    it is still block 0's input (its experts take no float64)."""
    model = _zaya()
    model.to(torch.bfloat16)
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
        ref = model.hf_model(TOKENS, use_cache=False).logits
    assert cache["hook_embed"].dtype == torch.bfloat16
    # block 0 reads it in float32 (ZAYA keeps its stream in float32)
    torch.testing.assert_close(cache["hook_embed"].float(), cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(logits, ref, atol=2e-2, rtol=2e-2)  # bfloat16 rounding
