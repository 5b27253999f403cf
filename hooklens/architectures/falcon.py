"""Falcon: fused q/k/v (multi-query, per-head, or grouped per key/value head in the new decoder
architecture), rotary or ALiBi positions, parallel or sequential blocks, LayerNorm; the attention
module computes attention itself.

Its forward is reimplemented below (`_forward`): q, k, v split from `query_key_value` as its code
does (keys and values keep their own heads; transformers' code broadcasts them to every query
head first, hooklens repeats them inside attention), `hook_q`/`hook_k` fired before the rotation,
and the mask the model passes (with ALiBi, the model has already added the bias to it). One
adapter per block layout, chosen by the configuration (`SPECS`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .._engine.attention import attention_forward, fire_pre_rotary
from .._engine.own_attention import additive_mask
from ._spec import ArchSpec


def _split(self: Any, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (batch, n_heads, pos, d_head), k and v (batch, n_kv_heads, pos, d_head)."""
    batch, pos, _ = fused.shape
    d, heads = self.head_dim, self.num_heads
    if self.new_decoder_architecture:  # per key/value head: its query heads, then k, then v
        groups = fused.view(batch, pos, self.num_kv_heads, -1, d)
        q, k, v = groups[..., :-2, :].flatten(2, 3), groups[..., -2, :], groups[..., -1, :]
    elif self.multi_query:  # every query head, then one k and one v
        flat = fused.view(batch, pos, heads + 2, d)
        q, k, v = flat[..., :-2, :], flat[..., -2:-1, :], flat[..., -1:, :]
    else:  # q, k, v interleaved per head
        per_head = fused.view(batch, pos, heads, 3, d)
        q, k, v = per_head[..., 0, :], per_head[..., 1, :], per_head[..., 2, :]
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: Any = None,
    layer_past: Any = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    alibi: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`FalconAttention.forward`, with attention computed by hooklens's function.

    Both of transformers' spellings: up to 5.24 the block passes `alibi` (the bias itself) and the
    attention adds it where the mask is absent; from 5.25 the model adds the bias to the mask and
    passes none. Either way the configuration says whether keys and queries rotate."""
    from transformers.models.falcon.modeling_falcon import apply_rotary_pos_emb

    query, key, value = _split(self, self.query_key_value(hidden_states))
    query, key = fire_pre_rotary(self, query, key)
    if not self.config.alibi and position_embeddings is not None:
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_idx)
    batch, _, q_len, _ = query.shape
    k_len = key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    if alibi is not None and attention_mask is None:  # otherwise the model added it to the mask
        mask = mask + alibi.view(batch, self.num_heads, 1, -1)[..., :k_len] * self.inv_norm_factor
    rate = getattr(self.attention_dropout, "p", self.attention_dropout)  # a module before 5.25
    dropout = float(rate) if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=self.inv_norm_factor, qk_read=True
    )
    return self.dense(z.reshape(batch, q_len, -1)), weights


def _kv_heads(config: Any) -> int:
    if config.new_decoder_architecture:
        return int(config.num_kv_heads)
    return 1 if config.multi_query else int(config.num_attention_heads)


_NEW = "new_decoder_architecture"
#: Falcon-7B/-RW style parallel block: one norm read by attention and the MLP
PARALLEL = ArchSpec(
    family="falcon",
    hf_classes=("FalconForCausalLM",),
    embed="transformer.word_embeddings",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="input_layernorm",
    attn="self_attention",
    attn_out="self_attention",
    ln2=None,
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp",
    o_proj="self_attention.dense",
    norm="layernorm",
    positional="rotary",
    parallel_residual=True,
    attn_forward=_forward,
    kv_heads=_kv_heads,
    edited_in_place=("hook_mlp_out",),
    config_requirements=(
        (_NEW, False, "this variant has the old decoder block"),
        ("parallel_attn", True, "this variant has a parallel block"),
        ("alibi", False, "this variant has rotary positions"),
    ),
)
SPECS = (
    PARALLEL,
    replace(PARALLEL, config_requirements=((_NEW, False, ""), ("parallel_attn", True, ""),
                                           ("alibi", True, "")), positional="alibi"),
    # sequential blocks (Falcon-RW)
    *(
        replace(PARALLEL, ln2="post_attention_layernorm", parallel_residual=False,
                positional=pos, config_requirements=((_NEW, False, ""),
                ("parallel_attn", False, ""), ("alibi", pos == "alibi", "")))
        for pos in ("rotary", "alibi")
    ),
    # new decoder architecture (Falcon-40B/180B): grouped q/k/v, two norms in parallel
    replace(PARALLEL, ln1="ln_attn", ln2="ln_mlp", config_requirements=(
        (_NEW, True, ""), ("num_ln_in_parallel_attn", 2, ""), ("alibi", False, ""))),
    replace(PARALLEL, config_requirements=(
        (_NEW, True, ""), ("num_ln_in_parallel_attn", 1, ""), ("alibi", False, ""))),
)  # fmt: skip
SPEC = PARALLEL
