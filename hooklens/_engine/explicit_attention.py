"""Attention computed explicitly, its scores and pattern materialized (and hookable).

`attention.py`'s function computes attention this way when someone asks for the scores or the
pattern, or when sdpa cannot compute it (soft-capped scores, learned sinks, a score bias
transformers' sdpa would drop). It runs per layer and call, so it makes no cast to a dtype a
tensor already has and no causal mask a layer before it already made: in a short forward the
time is the kernels' launches.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .._errors import MSG_SINK_READ_ONLY, HookError
from .hooks import HookPoint


class AttnPoints(Protocol):
    """The points explicit attention fires (`attention.AttnSite` has them)."""

    scores: HookPoint
    pattern: HookPoint
    sink: HookPoint | None


__all__ = ["additive_mask", "causal_mask", "explicit_attention", "forget_masks"]

#: the additive mask last made: (what it was made for, the mask, the boolean mask it was made
#: from or None). Every layer of a forward asks for the same one, and making it is two or three
#: kernel launches, which is what a short forward's time (and a GPU's at any length) is made
#: of. The attention switch drops it when attention is no longer hooked (`forget_masks`): at
#: the end of a call, or of `reset_hooks` after `add_hook`.
_kept: tuple[tuple[Any, ...], torch.Tensor, torch.Tensor | None] | None = None


def causal_mask(
    q_len: int, k_len: int, dtype: torch.dtype, device: torch.device, lowest: float | None = None
) -> torch.Tensor:
    """(q_len, k_len): 0 where query i (the last q_len of k_len positions) may attend key j,
    `lowest` (default: the dtype's lowest value) where it may not. Read-only: shared by the
    calls that ask."""
    global _kept
    lowest = torch.finfo(dtype).min if lowest is None else lowest
    key = ("causal", q_len, k_len, dtype, device, lowest)
    kept = _kept
    if kept is not None and kept[0] == key:
        return kept[1]
    mask = torch.full((q_len, k_len), lowest, dtype=dtype, device=device).triu_(k_len - q_len + 1)
    _kept = (key, mask, None)
    return mask


def additive_mask(
    allowed: torch.Tensor, k_len: int, dtype: torch.dtype, lowest: float
) -> torch.Tensor:
    """The boolean mask `allowed` (True = attend; its first `k_len` keys) as an additive one:
    0 where allowed, `lowest` elsewhere, in `dtype`. Read-only: shared by the layers handed the
    same mask object (held while kept, so no other tensor can take its id)."""
    global _kept
    key = ("boolean", id(allowed), k_len, dtype, lowest)
    kept = _kept
    if kept is not None and kept[0] == key and kept[2] is allowed:
        return kept[1]
    part = allowed[..., :k_len]
    mask = torch.zeros(part.shape, dtype=dtype, device=part.device).masked_fill_(~part, lowest)
    _kept = (key, mask, allowed)
    return mask


def forget_masks() -> None:
    """Drop the kept mask (the end of a call that hooked attention)."""
    global _kept
    _kept = None


def explicit_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
    dropout: float,
    softcap: float | None,
    site: AttnPoints | None,
    sinks: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with scores and pattern materialized (and hookable).

    q (batch, n_heads, q, d_head); k, v (batch, n_kv_heads, k, d_head); the mask is None (causal
    when q > 1, following sdpa's `is_causal`), boolean (True = attend) or additive float.
    `sinks` (n_heads,): learned sink logits (transformers' `s_aux`), joined to each row of
    scores for the softmax (in float32) and dropped after it, so a row of the pattern sums to
    1 minus the sink's share (`hook_sink`). `bias` (batch or 1, n_heads or 1, q, k): added to
    the scaled scores before the mask (transformers' `position_bias`), so `hook_attn_scores`
    includes it. Where the points show them, masked scores are -inf and a query with no key
    to attend has a pattern row of 0, as in TransformerLens.
    Returns z (batch, q, n_heads, d_head) and the pattern (batch, n_heads, q, k).
    """
    dtype = query.dtype
    low = dtype in (torch.float16, torch.bfloat16)
    if low:  # scores and softmax in float32, like sdpa
        query, key = query.float(), key.float()
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    q_len, k_len = query.shape[2], key.shape[2]
    if attention_mask is None and q_len > 1 and k_len > q_len:
        # sdpa's is_causal is top-left aligned; transformers crops keys the same way
        key, value, k_len = key[:, :, :q_len], value[:, :, :q_len], q_len
        bias = bias[..., :q_len] if bias is not None else None
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    # Fresh tensors are edited in place: at long sequences each (batch, heads, q, k) allocation
    # costs as much as the arithmetic (the kernel zero-fills its pages). Autograd allows it:
    # matmul, mul and add keep no output for their backward. Masks are added, not
    # masked_fill'ed: a broadcast masked_fill is ~8x slower than an add on CPU.
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if bias is not None:
        scores = scores + bias[..., :k_len].to(scores.dtype)
    # As TransformerLens shows them (its IGNORE): masked cells -inf in the scores, and a query
    # with no key to attend (a left pad's own row, all -inf) a pattern row of zeros, not the
    # softmax's NaN. Where neither point is hooked, or only the pattern and every row attends
    # to a key (a causal mask alone), masked cells hold the lowest value of the activation's
    # dtype (which float32 scores also hold), as the model's own masks: nothing differs there.
    shown = site is not None and (
        site.scores.active or (site.pattern.active and attention_mask is not None)
    )
    lowest = torch.finfo(dtype).min
    masked = float("-inf") if shown else lowest
    if attention_mask is None:
        if q_len > 1:
            scores.add_(causal_mask(q_len, k_len, scores.dtype, scores.device, masked))
    elif attention_mask.dtype == torch.bool:
        scores.add_(additive_mask(attention_mask, k_len, scores.dtype, masked))
    else:  # the model's own additive mask: its lowest (or lower) values are the masked cells
        scores.add_(attention_mask[..., :k_len].to(scores.dtype))
        if shown:  # in place: `scores` is this function's own tensor
            scores.masked_fill_(scores <= lowest, float("-inf"))
    # A hooked point sees (and may edit) its activation in `dtype`, and the computation goes on
    # from what it saw, read as it is (no float32 copy of a (batch, heads, q, k) tensor: at
    # long sequences the copies cost more than the arithmetic): the softmax upcasts inside,
    # and z multiplies a hooked pattern with v in `dtype` (accumulating in float32). Casts
    # are made only where the dtypes differ: even a cast to the same dtype is a dispatch.
    # a row with no key to attend: only where a mask can leave one, or an edit of the scores
    empty_rows = shown and attention_mask is not None
    if site is not None and site.scores.active:
        seen = _as(scores, dtype)
        version = None if seen.is_inference() else seen._version
        scores = site.scores.fire(seen)
        # edited: returned in its place, or written into (inference tensors keep no version)
        empty_rows = empty_rows or scores is not seen or version is None or version != seen._version
    if sinks is not None:
        pattern = _with_sink(scores.float() if low else scores, sinks, site, dtype)
    else:
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32 if low else None)
    if empty_rows:  # (the softmax keeps its output for its backward: out of place with grads)
        pattern = _zero_nan(pattern)
    if dropout:
        pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    if site is not None and site.pattern.active:
        pattern = site.pattern.fire(_as(pattern, dtype))
    if value.dtype != pattern.dtype:
        value = value.to(pattern.dtype)
    z = torch.matmul(pattern, value).transpose(1, 2)
    # (batch, q, heads, d_head), contiguous: in half precision cast and laid out in one copy
    z = z.to(dtype, memory_format=torch.contiguous_format) if z.dtype != dtype else z.contiguous()
    return z, _as(pattern, dtype)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def _zero_nan(pattern: torch.Tensor) -> torch.Tensor:
    """`pattern` with NaN (rows whose every key was masked) set to 0, in place where no
    gradient needs it."""
    if torch.is_grad_enabled() and pattern.requires_grad:
        return torch.nan_to_num(pattern, nan=0.0)
    return pattern.nan_to_num_(nan=0.0)


def _with_sink(
    scores: torch.Tensor, sinks: torch.Tensor, site: AttnPoints | None, dtype: torch.dtype
) -> torch.Tensor:
    """The keys' shares of a softmax over each row of `scores` and its head's sink logit.
    The sink's share fires `hook_sink` (batch, n_heads, q) in `dtype`, read-only: it adds
    nothing to z, so an edit (returned or in place) raises instead of being ignored."""
    column = sinks.to(scores.dtype).reshape(1, -1, 1, 1).expand(*scores.shape[:-1], 1)
    probs = torch.softmax(torch.cat([scores, column], dim=-1), dim=-1)
    point = site.sink if site is not None else None
    if point is not None and point.active:
        kept = probs[..., -1].to(dtype, copy=True)
        share = kept.clone()
        seen = point.fire(share)  # a backward tap hands on a copy: compare values
        if not (torch.equal(seen, kept) and torch.equal(share, kept)):
            name = point.name
            raise HookError(MSG_SINK_READ_ONLY.format(name=name, layer=point.layer()), name)
    return probs[..., :-1]
