"""MPT: ALiBi, LayerNorm without bias, fused `Wqkv` (q then k then v); the attention module
computes attention itself, and the MLP adds the residual to its own output.

Its forward is reimplemented below (`_forward`): q, k, v from `Wqkv` (clipped as configured) and,
as the mask, the ALiBi bias plus the model's mask (MPT's boolean masks are True where a key is
masked). The model builds that mask for its own implementation, so hooklens keeps the
implementation name (`own_masks`). The MLP's contribution is read at `down_proj`, before MPT
adds the residual inside the MLP.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask
from ._spec import ArchSpec


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    position_bias: torch.Tensor | None,
    cache: Any = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`MptAttention.forward`, with attention computed by hooklens's function."""
    batch, q_len = hidden_states.shape[:2]
    qkv = self.Wqkv(hidden_states)
    if self.clip_qkv:
        qkv = qkv.clamp(min=-self.clip_qkv, max=self.clip_qkv)
    query, key, value = (
        t.reshape(batch, q_len, self.n_heads, self.head_dim).transpose(1, 2)
        for t in qkv.chunk(3, dim=2)
    )
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
    k_len = key.shape[2]
    allowed = None if attention_mask is None else ~attention_mask
    mask = additive_mask(allowed, q_len, k_len, query.dtype, query.device)
    if position_bias is not None:  # (n_heads, 1, max_seq_len): the last k_len positions
        mask = mask + position_bias[:, -1:, position_bias.shape[2] - k_len :]
    dropout = self.attn_dropout_p if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=self.softmax_scale
    )
    return self.out_proj(z.reshape(batch, q_len, -1)), weights


SPEC = ArchSpec(
    family="mpt",
    hf_classes=("MptForCausalLM",),
    embed="transformer.wte",
    blocks="transformer.blocks",
    final_norm="transformer.norm_f",
    unembed="lm_head",
    ln1="norm_1",
    attn="attn",
    attn_out="attn",
    ln2="norm_2",
    mlp_in="ffn.up_proj",
    mlp_down="ffn.down_proj",
    mlp_out="ffn.down_proj",
    qkv=("attn.Wqkv",) * 3,
    qkv_layout="concat_qkv",
    o_proj="attn.out_proj",
    norm="layernorm",
    positional="alibi",
    attn_forward=_forward,
    own_masks=True,
)
