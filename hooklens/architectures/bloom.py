"""BLOOM: ALiBi, LayerNorm (also on the embedding), fused q/k/v interleaved per head; the
attention module computes attention itself and adds the residual to its output.

Its forward is reimplemented below (`_forward`): q, k, v from `query_key_value` and, as the mask,
the ALiBi bias the model passes plus its causal mask. hooklens's attention function then serves
q/k/v, scores (ALiBi included, as in TransformerLens), pattern and z. Attention's and the MLP's
contributions are read at their output projections (`dense`, `dense_4h_to_h`), before BLOOM adds
the residual inside those modules.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask
from ._spec import ArchSpec


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    residual: torch.Tensor,
    alibi: torch.Tensor,
    attention_mask: torch.Tensor | None,
    layer_past: Any = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`BloomAttention.forward`, with attention computed by hooklens's function."""
    batch, q_len, _ = hidden_states.shape
    fused = self.query_key_value(hidden_states).view(batch, q_len, self.num_heads, 3, -1)
    query, key, value = (fused[..., i, :].transpose(1, 2) for i in range(3))
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_idx)
    k_len = key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    mask = mask + self.beta * alibi.view(batch, self.num_heads, 1, -1)[..., :k_len]
    dropout = self.attention_dropout.p if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=self.inv_norm_factor
    )
    out = self.dense(z.reshape(batch, q_len, -1))
    return F.dropout(out, self.hidden_dropout, self.training) + residual, weights


_QKV = "self_attention.query_key_value"

SPEC = ArchSpec(
    family="bloom",
    hf_classes=("BloomForCausalLM",),
    embed="transformer.word_embeddings",
    embed_norm="transformer.word_embeddings_layernorm",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="input_layernorm",
    attn="self_attention",
    attn_out="self_attention.dense",
    ln2="post_attention_layernorm",
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp.dense_4h_to_h",
    qkv=(_QKV,) * 3,
    qkv_layout="per_head_qkv",
    o_proj="self_attention.dense",
    norm="layernorm",
    positional="alibi",
    attn_forward=_forward,
    config_requirements=(
        (
            "apply_residual_connection_post_layernorm",
            False,
            "the residual stream must be the blocks' input, not their norms' output",
        ),
        ("slow_but_exact", False, "the output projections must run as modules"),
    ),
)
