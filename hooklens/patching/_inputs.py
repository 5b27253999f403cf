"""Validation for patching: prompts, cells and metric values, with errors that say how to fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._engine.tokens import one_prompt, token_strings
from ._types import POINTS

_LENGTH_MISMATCH = (
    "clean and corrupted prompts must have the same number of tokens, but clean has {n_clean} "
    "and corrupted has {n_corrupted}:\n{table}\n"
    "Reword one prompt so that the tokens line up (e.g. swap names that are one token each), "
    "or pass token ids of equal length."
)
_BAD_METRIC = (
    "the metric must return one number per prompt: logits of shape {logits} gave a value of "
    "shape {value}. Reduce it to a scalar, e.g. `lambda logits: logits[0, -1, answer_id]`, or "
    "use hl.metrics.logit_diff / prob / logprob / rank."
)


_TL_ORDER = (
    "sweep(model, clean, corrupted, metric) takes the two prompts (text or ids (1, pos)), but "
    "`{arg}` is an {kind}. That is TransformerLens's order (model, corrupted_tokens, "
    "clean_cache, metric): pass the clean prompt instead of its cache, e.g. "
    "hl.patching.sweep(model, clean_tokens, corrupted_tokens, metric); hooklens caches what "
    "it patches from."
)


def check_prompt_pair(clean: Any, corrupted: Any, metric: Any) -> None:
    """A clear error when a sweep gets caches (TransformerLens's argument order) or no metric."""
    for arg, value in (("clean", clean), ("corrupted", corrupted), ("metric", metric)):
        kind = type(value).__name__
        if kind == "ActivationCache":
            raise TypeError(_TL_ORDER.format(arg=arg, kind=kind))
    if not callable(metric):
        raise TypeError(
            f"metric must be a callable logits (batch, pos, d_vocab) -> (batch,), got "
            f"{type(metric).__name__}"
        )


def prompt_batch(model: Any, prompts: Any) -> torch.Tensor:
    """Token ids (batch, pos) of text, a list of texts or ids; a batch of texts must tokenize
    to one length (patching lines positions up across prompts)."""
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], str):
        rows = [model.to_tokens(p) for p in prompts]
        lengths = sorted({int(r.shape[1]) for r in rows})
        if len(lengths) > 1:
            raise ValueError(
                f"the prompts tokenize to different lengths {lengths}: patching lines positions "
                "up across prompts, so reword them to one length or pass ids of equal length"
            )
        return torch.cat(rows)
    # The checks of a forward pass: shape, empty, too long, ids out of range.
    tokens: torch.Tensor = model._prepare_tokens(
        prompts if isinstance(prompts, str) else torch.as_tensor(prompts), None
    )
    return tokens


def aligned_tokens(model: Any, clean: Any, corrupted: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (1, pos) of both prompts; an error showing both token lists if lengths differ."""
    clean_ids, corrupted_ids = one_prompt(model, clean), one_prompt(model, corrupted)
    if clean_ids.shape[1] != corrupted_ids.shape[1]:
        clean_str = token_strings(model, clean_ids)
        corrupted_str = token_strings(model, corrupted_ids)
        rows = []
        for i in range(max(len(clean_str), len(corrupted_str))):
            a = repr(clean_str[i]) if i < len(clean_str) else "-"
            b = repr(corrupted_str[i]) if i < len(corrupted_str) else "-"
            mark = "" if a == b else "   <-"
            rows.append(f"  {i:>3}  {a:<20} {b:<20}{mark}")
        table = f"  pos  {'clean':<20} {'corrupted':<20}\n" + "\n".join(rows)
        raise ValueError(
            _LENGTH_MISMATCH.format(
                n_clean=len(clean_str), n_corrupted=len(corrupted_str), table=table
            )
        )
    return clean_ids, corrupted_ids


def _check_range(what: str, values: Sequence[int], size: int) -> list[int]:
    out = []
    for value in values:
        index = int(value)
        if not -size <= index < size:
            raise IndexError(f"{what} {value} is out of range: this run has {what}s 0..{size - 1}")
        out.append(index % size)
    return out


def resolve_cells(model: Any, point: str, seq_len: int, layers: Sequence[int] | None,
                  positions: Sequence[int] | None,
                  heads: Sequence[int] | None) -> tuple[list[int], list[int]]:  # fmt: skip
    """(row layers, column positions or heads) of a sweep, checked against the model."""
    template, axis = POINTS[point]
    n_layers = model.cfg.n_layers
    rows = _check_range("layer", range(n_layers) if layers is None else layers, n_layers)
    missing = template.format(layer=rows[0]) if rows else None
    if missing is not None and missing not in model.hook_dict:
        # Let the engine explain why this family has no such point (e.g. resid_mid on a
        # parallel-residual model).
        model.hooks([(missing, lambda x, hook: None)])
    if axis == "pos":
        if heads is not None:
            raise ValueError(f"point {point!r} is per position; pass positions=, not heads=")
        columns = _check_range(
            "position", range(seq_len) if positions is None else positions, seq_len
        )
    else:
        if positions is not None:
            raise ValueError(f"point {point!r} is per head; pass heads=, not positions=")
        n_heads = model.cfg.n_kv_heads if point in ("k", "v") else model.cfg.n_heads
        columns = _check_range("head", range(n_heads) if heads is None else heads, n_heads)
    return rows, columns


def check_metric_value(metric: Any, logits: torch.Tensor) -> torch.Tensor:
    """``metric(logits)`` as (batch,) float; a metric that returns one scalar for the whole
    batch is called per element instead; anything else is a clear error."""
    batch = logits.shape[0]
    value = torch.as_tensor(metric(logits))
    if value.shape == (batch,) or (batch == 1 and value.numel() == 1):
        return value.reshape(batch).detach().float().cpu()
    if value.numel() == 1 and batch > 1:
        per_element = [check_metric_value(metric, logits[i : i + 1]) for i in range(batch)]
        return torch.cat(per_element)
    raise ValueError(_BAD_METRIC.format(logits=tuple(logits.shape), value=tuple(value.shape)))
