"""GPT-1 (`openai-gpt`): learned positions, post-LN blocks with no final norm, a fused Conv1D
`c_attn`; the attention module computes attention itself.

Its block is post-LN (`ln_1` normalizes the stream plus attention's output, `ln_2` the MLP's
input plus its output), with the points of TransformerLens's BertBlock, and the last block's
output (`hook_normalized_resid_post`) is the unembedding's input: there is no final norm and
no `ln_final` point. Its attention forward is reimplemented below (`_forward`): q, k, v split
from `c_attn`, the causal mask from its `bias` buffer plus the model's mask, scores scaled by
1/sqrt(d_head) (`scale`), as its code does; hooklens's attention function then serves q/k/v,
scores, pattern and z.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask, split_heads
from ._spec import ArchSpec


def _forward(
    self: Any,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> list[torch.Tensor | None]:
    """GPT-1's `Attention.forward`, with attention computed by hooklens's function."""
    query, key, value = self.c_attn(x).split(self.split_size, dim=2)
    query, key, value = (split_heads(t, self.n_head) for t in (query, key, value))
    q_len, k_len = query.shape[2], key.shape[2]
    own = self.bias[:, :, k_len - q_len : k_len, :k_len].bool()  # causal
    mask = additive_mask(own, q_len, k_len, query.dtype, query.device)
    if attention_mask is not None:  # the model's, already additive
        mask = mask + additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    dropout = self.attn_dropout.p if self.training else 0.0
    scaling = query.shape[-1] ** -0.5 if self.scale else 1.0
    z, weights = attention_forward(self, query, key, value, mask, dropout=dropout, scaling=scaling)
    out = self.resid_dropout(self.c_proj(z.reshape(*z.shape[:2], -1)))
    return [out, weights] if output_attentions else [out]


SPEC = ArchSpec(
    family="openai-gpt",
    hf_classes=("OpenAIGPTLMHeadModel",),
    embed="transformer.tokens_embed",
    pos_embed="transformer.positions_embed",
    blocks="transformer.h",
    final_norm=None,
    unembed="lm_head",
    ln1="ln_1",
    attn="attn",
    attn_out="attn.c_proj",
    ln2="ln_2",
    mlp_in="mlp.c_fc",
    mlp_down="mlp.c_proj",
    mlp_out="mlp",
    resid_mid_at="ln_1",
    qkv=("attn.c_attn",) * 3,
    qkv_layout="concat_qkv",
    o_proj="attn.c_proj",
    norm="layernorm",
    positional="learned",
    post_ln=True,
    attn_forward=_forward,
)
