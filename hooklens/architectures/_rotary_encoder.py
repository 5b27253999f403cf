"""BERT's eager self-attention on hooklens's attention function, and rotary positions inside it
(RoFormer).

`self_attention` is the forward of the BERT self-attentions that compute attention themselves
(`EAGER_BERT_ATTENTION`); RoFormer's is the same with q and k rotated before the scores.

RoFormer's blocks are BERT's (post-LN), but its embeddings have no position embedding: the
encoder computes one sinusoidal table per position, as wide as a head (the sines in the first
half, the cosines in the second), and each self-attention rotates q and k by it, pairs of
adjacent features (0, 1), (2, 3), ... by the angles of the table's features 0, 1, ... before
the scores. `rotary_forward` reimplements that attention's forward for hooklens: `hook_q` and
`hook_k` are the projections' outputs, before the rotation, and `hook_rot_q`/`hook_rot_k` the
rotated ones the scores read, as on every rotary family.

A model whose attention also rotates the values (`rotary_value=True`) is refused: its `hook_v`
would not be the value projection's output, so `ln1.hook_normalized @ W_V + b_V` would not be
`hook_v`, which is what TransformerLens's `hook_v` means (`rotary_value_refusal`).
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward, fire_pre_rotary
from .._engine.own_attention import additive_mask, split_heads
from ._names import ROTARY_VALUE

MSG_ROTARY_VALUE = (
    "its attention rotates the values by their positions too ({cls}.{attr} is True), so the "
    "values the pattern mixes are not the value projection's output, which hook_v and W_V "
    "mean. Load it with {attr}=False to study the same weights without rotated values, or use "
    "the model without hooklens."
)


def rotary_value_refusal(attn: Any) -> str | None:
    """Why an attention module of rotary BERT blocks cannot be wrapped (None: it can)."""
    attr = next((a for a in ROTARY_VALUE if getattr(attn, a, False) is True), None)
    if attr is None:
        return None
    return MSG_ROTARY_VALUE.format(cls=type(attn).__name__, attr=attr)


def rotate_pairs(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """`x` (.., pos, d_head) rotated pairwise by `table` (.., pos, d_head): sines then cosines
    of one angle per pair of adjacent features."""
    sin, cos = table.chunk(2, dim=-1)
    sin, cos = sin.repeat_interleave(2, -1), cos.repeat_interleave(2, -1)
    turned = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape_as(x)
    return x * cos + turned * sin


def self_attention(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    cache: Any = None,
    output_attentions: bool = False,
    *,
    sinusoidal_pos: torch.Tensor | None = None,
    rotary: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """BERT's eager self-attention with attention computed by hooklens's function: q, k, v from
    `query`/`key`/`value`, scores scaled by 1/sqrt(d_head), the model's mask added. `rotary`
    (RoFormer): q and k are hooked, then rotated by `sinusoidal_pos`."""
    if encoder_hidden_states is not None:
        raise NotImplementedError("hooklens serves self-attention only, not cross-attention")
    n_heads = self.num_attention_heads
    query = split_heads(self.query(hidden_states), n_heads)
    key = split_heads(self.key(hidden_states), n_heads)
    value = split_heads(self.value(hidden_states), n_heads)
    if rotary:
        query, key = fire_pre_rotary(self, query, key)
        if sinusoidal_pos is not None:
            query, key = rotate_pairs(query, sinusoidal_pos), rotate_pairs(key, sinusoidal_pos)
    if cache is not None:
        own = getattr(cache, "self_attention_cache", cache)  # an encoder-decoder cache's own
        key, value = own.update(key, value, self.layer_idx)
    q_len, k_len = query.shape[2], key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    dropout = self.dropout.p if self.training else 0.0
    scaling = self.attention_head_size**-0.5
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=scaling, qk_read=rotary
    )
    return z.reshape(*z.shape[:2], -1), weights


def rotary_forward(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sinusoidal_pos: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    cache: Any = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RoFormer's self-attention (its parameter order): `self_attention` with q and k rotated
    by `sinusoidal_pos` after `hook_q`/`hook_k`."""
    return self_attention(
        self, hidden_states, attention_mask, encoder_hidden_states, cache,
        sinusoidal_pos=sinusoidal_pos, rotary=True, **kwargs,
    )  # fmt: skip


__all__ = ["rotary_forward", "rotary_value_refusal", "rotate_pairs", "self_attention"]
