"""q/k norms after the rotary embedding (Hunyuan V1): hook_q/hook_k are the projections'
outputs, hook_rot_q/hook_rot_k what the scores read (rotated, then normed)."""

from __future__ import annotations

import torch

from hooklens.architectures._registry import VOCAB

TOKENS = torch.randint(4, VOCAB, (1, 6), generator=torch.Generator().manual_seed(4))


def test_norms_after_rotary_keep_transformerlens_meanings(registry):
    _, model = registry("hunyuan_v1_dense")
    assert model is not None
    assert model.spec.qk_norms_after_rotary == ("self_attn.query_layernorm",
                                                "self_attn.key_layernorm")  # fmt: skip
    attn = model.hf_model.get_submodule(model.spec.blocks)[0].self_attn
    _, cache = model.run_with_cache(TOKENS, names_filter=lambda n: n.startswith("blocks.0."))
    x = cache["blocks.0.ln1.hook_normalized"]
    q, rot_q = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_rot_q"]
    torch.testing.assert_close(q, attn.q_proj(x).view(q.shape))  # after the projection
    # rotated (the identity at position 0) then normed, and read by the scores
    torch.testing.assert_close(rot_q[:, 0], attn.query_layernorm(q[:, 0]))
    assert (rot_q[:, 1:] - attn.query_layernorm(q[:, 1:])).abs().max() > 1e-3
    rot_k = cache["blocks.0.attn.hook_rot_k"]
    rot_k = rot_k.repeat_interleave(q.shape[2] // rot_k.shape[2], dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", rot_q, rot_k) * attn.scaling
    masked = torch.ones(6, 6, dtype=torch.bool).triu(1)
    got = cache["blocks.0.attn.hook_attn_scores"]
    torch.testing.assert_close(got[..., ~masked], scores[..., ~masked], atol=1e-4, rtol=1e-4)


def test_norms_before_rotary_are_read_as_pre_rotary_q(registry):
    _, model = registry("qwen3")
    assert model is not None and model.spec.qk_norms_after_rotary is None
    assert model.spec.q_source is not None and model.spec.q_source.module.endswith("q_norm")
