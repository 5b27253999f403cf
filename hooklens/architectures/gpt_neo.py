"""GPT-Neo: learned positions, LayerNorm, unscaled attention, alternating global and local
(sliding-window) layers; the attention module (`attn.attention`) computes attention itself.

Its forward is reimplemented below (`_forward`): q, k, v from its own projections and, as the
mask, its own causal or sliding-window mask (the `bias` buffer) with the model's mask added, as
its code does. hooklens's attention function then serves q/k/v, scores, pattern and z.
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
    attention_mask: torch.Tensor | None = None,
    layer_past: Any = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`GPTNeoSelfAttention.forward`, with attention computed by hooklens's function."""
    n_heads = self.num_heads
    query = split_heads(self.q_proj(hidden_states), n_heads)
    key = split_heads(self.k_proj(hidden_states), n_heads)
    value = split_heads(self.v_proj(hidden_states), n_heads)
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_id)
    q_len, k_len = query.shape[2], key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    own = self.bias[:, :, k_len - q_len : k_len, :k_len]  # causal, or the sliding window
    mask = mask + additive_mask(own, q_len, k_len, query.dtype, query.device)
    dropout = self.attn_dropout.p if self.training else 0.0
    z, weights = attention_forward(self, query, key, value, mask, dropout=dropout, scaling=1.0)
    out = self.resid_dropout(self.out_proj(z.reshape(*z.shape[:2], -1)))
    return out, weights


SPEC = ArchSpec(
    family="gpt_neo",
    hf_classes=("GPTNeoForCausalLM",),
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    attn="attn.attention",
    attn_out="attn.attention",
    ln2="ln_2",
    mlp_in="mlp.c_fc",
    mlp_down="mlp.c_proj",
    mlp_out="mlp",
    qkv=("attn.attention.q_proj", "attn.attention.k_proj", "attn.attention.v_proj"),
    o_proj="attn.attention.out_proj",
    norm="layernorm",
    positional="learned",
    attn_forward=_forward,
)
