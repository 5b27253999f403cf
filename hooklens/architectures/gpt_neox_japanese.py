"""GPT-NeoX-Japanese: GPT-NeoX's fused q/k/v (interleaved per head) and partial rotary, with a
sequential block; its attention computes scores itself (`_attn`), and the last layer's
attention returns a bias beside its output (`dense_bias`) that the block adds.

Its forward is reimplemented below (`_forward`): q, k, v split from `query_key_value` as the
module does, rotated, and handed with the model's mask to hooklens's attention function. The
returned bias is `ArchSpec.o_bias`: `hook_attn_out` and b_O include it (on the layer that has
it), so that `resid_pre + attn_out + mlp_out = resid_post` holds there too.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask
from ._spec import ArchSpec, Proj


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: Any = None,
    layer_past: Any = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """`GPTNeoXJapaneseAttention.forward`, with attention computed by hooklens's function."""
    from transformers.models.gpt_neox_japanese.modeling_gpt_neox_japanese import (
        apply_rotary_pos_emb,
    )

    d_head, dims = self.head_size, self.rotary_ndims
    qkv = self.query_key_value(hidden_states)
    qkv = qkv.view(*qkv.shape[:-1], self.num_attention_heads, 3 * d_head).transpose(1, 2)
    query, key, value = qkv.split(d_head, dim=-1)  # (batch, heads, pos, d_head) each
    assert position_embeddings is not None
    cos, sin = position_embeddings
    q_rot, k_rot = apply_rotary_pos_emb(query[..., :dims], key[..., :dims], cos, sin)
    query = torch.cat((q_rot, query[..., dims:]), dim=-1)
    key = torch.cat((k_rot, key[..., dims:]), dim=-1)
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_idx)
    q_len, k_len = query.shape[2], key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    dropout = self.attention_dropout.p if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=1.0 / self.norm_factor
    )
    out = self.dense(z.reshape(*z.shape[:2], -1))
    return out, weights, self.dense_bias


_QKV = Proj("attention.query_key_value", "per_head_qkv")

SPEC = ArchSpec(
    family="gpt_neox_japanese",
    hf_classes=("GPTNeoXJapaneseForCausalLM",),
    embed="gpt_neox_japanese.embed_in",
    blocks="gpt_neox_japanese.layers",
    final_norm="gpt_neox_japanese.final_layer_norm",
    unembed="embed_out",
    ln1="input_layernorm",
    attn="attention",
    attn_out="attention",
    ln2="post_attention_layernorm",
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp",
    q_source=_QKV,
    k_source=_QKV,
    qkv=(_QKV.module,) * 3,
    qkv_layout="per_head_qkv",
    o_proj="attention.dense",
    o_bias="attention.dense_bias",
    norm="layernorm",
    attn_forward=_forward,
)
