"""XGLM: sinusoidal positions (a fixed table, `hook_pos_embed`), scaled token embeddings,
LayerNorm, the MLP's projections in the block (OPT-style); the attention module computes
attention itself and adds the model's mask to its scores.

Its forward is reimplemented below (`_forward`), so that attention internals are served by
hooklens's attention function. Without it, switching the implementation name changes the masks
the model builds (boolean instead of additive), which XGLM's own code would add to its scores.
`hook_q` is q before XGLM scales it (as on OPT); the scale is applied to the scores.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask, split_heads
from ._spec import ArchSpec


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    key_value_states: torch.Tensor | None = None,
    cache: Any = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`XGLMAttention.forward` (self-attention), with attention computed by hooklens's function."""
    if key_value_states is not None:
        raise NotImplementedError("hooklens wraps XGLM as a decoder without cross-attention")
    batch, q_len, _ = hidden_states.shape
    query = split_heads(self.q_proj(hidden_states), self.num_heads)
    key = split_heads(self.k_proj(hidden_states), self.num_heads)
    value = split_heads(self.v_proj(hidden_states), self.num_heads)
    if cache is not None:
        own = getattr(cache, "self_attention_cache", cache)  # an encoder-decoder cache's own part
        key, value = own.update(key, value, self.layer_idx, kwargs=kwargs)
    mask = additive_mask(attention_mask, q_len, key.shape[2], query.dtype, query.device)
    dropout = self.dropout if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=self.scaling
    )
    return self.out_proj(z.reshape(batch, q_len, self.embed_dim)), weights


SPEC = ArchSpec(
    family="xglm",
    hf_classes=("XGLMForCausalLM",),
    embed="model.embed_tokens",
    pos_embed="model.embed_positions",
    blocks="model.layers",
    final_norm="model.layer_norm",
    unembed="lm_head",
    ln1="self_attn_layer_norm",
    attn="self_attn",
    attn_out="self_attn",
    ln2="final_layer_norm",
    mlp_in="fc1",
    mlp_down="fc2",
    mlp_out="fc2",
    qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    o_proj="self_attn.out_proj",
    norm="layernorm",
    positional="learned",
    attn_forward=_forward,
    config_requirements=(
        ("add_cross_attention", False, "a decoder-only model has no cross-attention"),
    ),
)
