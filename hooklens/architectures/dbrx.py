"""DBRX: q, k and v fused in `Wqkv` (q then k then v) and clipped to +-`clip_qkv`; the block
nests its first norm, attention and second norm in `norm_attn_norm`; LayerNorms without bias;
a mixture of experts (`ffn.router`, `ffn.experts`) as the MLP.

Its attention forward is reimplemented below (`_forward`) so that `hook_q`/`hook_k` see q and
k as attention uses them (split from `Wqkv` after the clipping) before their rotation; the rest
is its own computation. `hook_resid_mid` is the input of `norm_2` (the block keeps that tensor
as its residual, so an edit reaches both).
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward, fire_pre_rotary
from ._spec import ArchSpec


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    cache: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`DbrxAttention.forward`, with q and k hooked before their rotation."""
    from transformers.models.dbrx.modeling_dbrx import apply_rotary_pos_emb

    lead = hidden_states.shape[:-1]
    qkv = self.Wqkv(hidden_states)
    if self.clip_qkv is not None:
        qkv = qkv.clamp(min=-self.clip_qkv, max=self.clip_qkv)
    kv_width = self.num_key_value_heads * self.head_dim
    query, key, value = (
        t.reshape(*lead, -1, self.head_dim).transpose(1, 2)
        for t in qkv.split([self.hidden_size, kv_width, kv_width], dim=2)
    )
    query, key = fire_pre_rotary(self, query, key)
    assert position_embeddings is not None
    cos, sin = position_embeddings
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
    dropout = self.attention_dropout if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling,
        qk_read=True,
    )  # fmt: skip
    return self.out_proj(z.reshape(*lead, -1).contiguous()), weights


def _kv_heads(config: Any) -> int:
    """The key/value heads, from the attention's sub-config (all heads without one)."""
    kv = getattr(getattr(config, "attn_config", None), "kv_n_heads", None)
    kv = kv or getattr(config, "num_attention_heads", None)
    return int(kv) if isinstance(kv, int) else 0


SPEC = ArchSpec(
    family="dbrx",
    hf_classes=("DbrxForCausalLM",),
    embed="transformer.wte",
    blocks="transformer.blocks",
    final_norm="transformer.norm_f",
    unembed="lm_head",
    ln1="norm_attn_norm.norm_1",
    attn="norm_attn_norm.attn",
    attn_out="norm_attn_norm.attn",
    ln2="norm_attn_norm.norm_2",
    mlp_in="",
    mlp_down="",
    mlp_out="ffn",
    moe_router="ffn.router",
    moe_experts="ffn.experts",
    qkv=("norm_attn_norm.attn.Wqkv",) * 3,
    qkv_layout="concat_qkv",
    o_proj="norm_attn_norm.attn.out_proj",
    norm="layernorm",
    attn_forward=_forward,
    kv_heads=_kv_heads,
)
