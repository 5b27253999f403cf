"""Llama 4, as derived: what its points hold where they differ from other families (a router
that scores the experts' inputs, an L2 q/k norm after the rotation, NoPE layers with
temperature-tuned queries, chunked attention). The registry test checks the common guarantees."""

from __future__ import annotations

import math

import pytest
import torch

TOKENS = torch.tensor([[5, 9, 17, 33, 41, 60, 7]])


@pytest.fixture(scope="module")
def llama4(registry):
    _, model = registry("llama4_text")
    assert model is not None and model.spec.derived
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    return model, cache


def test_structure_is_read_as_data(llama4):
    model, _ = llama4
    spec = model.spec
    assert spec.moe_weights_at == "inputs"
    assert spec.moe_layers == (1,)  # layer 0 is dense (the registry's config)
    assert spec.qk_norms_after_rotary == ("self_attn.qk_norm", "self_attn.qk_norm")
    names = model.hook_names()
    assert "blocks.0.mlp.hook_post" in names and "blocks.0.mlp.hook_router_logits" not in names
    assert "blocks.1.mlp.hook_expert_out" in names and "blocks.1.mlp.hook_post" not in names


def test_expert_weights_are_the_sigmoid_of_the_chosen_logits(llama4):
    model, cache = llama4
    logits = cache["blocks.1.mlp.hook_router_logits"]
    top = logits.topk(model.cfg.top_k, dim=-1)
    torch.testing.assert_close(cache["blocks.1.mlp.hook_expert_indices"], top.indices)
    torch.testing.assert_close(cache["blocks.1.mlp.hook_expert_weights"], top.values.sigmoid())


def test_experts_outputs_and_shared_expert_make_mlp_out(llama4):
    """mlp_out is the shared expert's output plus the chosen experts' outputs, summed unweighted
    (their scores already scaled their inputs)."""
    model, cache = llama4
    block = model.hf_model.model.layers[1]
    with torch.no_grad():
        shared = block.feed_forward.shared_expert(cache["blocks.1.ln2.hook_normalized"])
    total = shared + cache["blocks.1.mlp.hook_expert_out"].sum(-2)
    torch.testing.assert_close(total, cache["blocks.1.hook_mlp_out"], atol=1e-5, rtol=1e-4)


def test_rotary_layer_reads_l2_normed_rotated_queries(llama4):
    """Layer 0 rotates q and k, then divides each head by its root mean square: hook_rot_q is
    what the scores read, hook_q the projection's output."""
    _, cache = llama4
    rot_q = cache["blocks.0.attn.hook_rot_q"]
    rms = rot_q.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=1e-3)
    assert not torch.allclose(rot_q[:, 1:], cache["blocks.0.attn.hook_q"][:, 1:], atol=1e-3)


def test_nope_layer_scales_queries_by_its_temperature(llama4):
    """Layer 1 has no rotation and no q/k norm; its queries are multiplied by the temperature
    log(1 + floor((p + 1) / floor_scale)) * attn_scale + 1 at position p: hook_rot_q is that
    product, hook_q the projection's output (equal at position 0, where the factor is 1)."""
    model, cache = llama4
    text = model.hf_model.config
    q, rot_q = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_rot_q"]
    scale = torch.tensor(
        [
            math.log1p(math.floor((p + 1) / text.floor_scale)) * text.attn_scale + 1
            for p in range(q.shape[1])
        ]
    )
    assert scale[-1] > 1  # the registry's config makes it act on a few tokens
    torch.testing.assert_close(rot_q, q * scale[None, :, None, None], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cache["blocks.1.attn.hook_k"], cache["blocks.1.attn.hook_rot_k"])


def test_chunked_layer_attends_within_its_chunk(llama4):
    """Layer 0 attends in chunks of attention_chunk_size (3 here); layer 1 to every earlier
    position."""
    model, cache = llama4
    size = model.hf_model.config.attention_chunk_size
    chunk = torch.arange(TOKENS.shape[1]) // size
    same = chunk[:, None] == chunk[None, :]
    causal = torch.ones(TOKENS.shape[1], TOKENS.shape[1]).tril().bool()
    p0, p1 = cache["blocks.0.attn.hook_pattern"], cache["blocks.1.attn.hook_pattern"]
    assert (p0[..., ~(same & causal)] == 0).all() and (p0[..., same & causal] > 0).all()
    assert (p1[..., ~causal] == 0).all() and (p1[..., causal] > 0).all()


def test_choosing_an_expert_twice_is_refused(llama4):
    """Each expert gets one scored copy of the tokens: a second choice of it has no input."""
    import hooklens as hl

    model, _ = llama4

    def twice(index, hook):
        index[..., 1] = index[..., 0]

    with pytest.raises(hl.HookError, match="cannot choose one expert twice"):
        model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.1.mlp.hook_expert_indices", twice)])


def test_rerouting_equals_the_raw_scores(llama4):
    """Moving each token's first choice to another expert, with its score, equals the same
    change made to the router's scores by a raw torch hook."""
    model, cache = llama4
    index = cache["blocks.1.mlp.hook_expert_indices"].flatten(0, 1)
    n = model.cfg.n_experts  # 4: the next expert along, or the one after when that is the
    moved = (index[:, 0] + 1) % n  # token's second choice (one copy per expert)
    moved = torch.where(moved == index[:, 1], (index[:, 0] + 2) % n, moved)

    def reroute(ix, hook):
        ix[..., 0] = moved.view(ix.shape[:-1])

    def raw(mod, args, out):
        scores = out[0].clone()
        t = torch.arange(scores.shape[0])
        first = scores[t, index[:, 0]].clone()
        scores[t, index[:, 0]] = 0
        scores[t, moved] = first
        return (scores, *out[1:])

    block = model.hf_model.model.layers[1]
    with torch.no_grad():
        ours = model.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.1.mlp.hook_expert_indices", reroute)]
        )
        handle = block.feed_forward.router.register_forward_hook(raw)
        try:
            want = model.hf_model(TOKENS, use_cache=False).logits
        finally:
            handle.remove()
        base = model(TOKENS)
    assert (ours - base).abs().max() > 1e-4
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)
