"""Attribution patching: every cell of every point estimated from two forward passes and one
backward pass.

Patching a cell replaces the base run's activation ``a`` there by the source run's ``a'``. To
first order the metric then moves by ``(a' - a) . dm/da``, the gradient taken at the base run.
So one forward of the source prompt (its activations), one forward of the base prompt with a
zero ``delta`` added at every patched point (``a + delta``: ``dm/d delta = dm/da``), and one
backward of the metric give every cell of every point at once::

    estimate(cell) = metric(base) + sum over the cell's slice of (a' - a) * dm/da

(the slice: one position's ``d_model`` values, or one head's values at every position).
Direction and normalisation mean what they mean for the exact sweep, so the two results can be
compared cell by cell. The estimate is exact for a metric linear in the activation and drifts
as patches move the run further from where the gradient was taken (e.g. the residual stream at
the positions where the prompts differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._engine.points import head_axis_of
from .._engine.tokens import token_strings
from ..metrics import Metric
from ._inputs import aligned_tokens, check_metric_value, resolve_cells
from ._types import POINTS, PatchingResult, base_and_source, normalizer

_NOT_DIFFERENTIABLE = (
    "attribution patching needs the metric's gradient, but {why}. Use a metric computed with "
    "torch from the logits (e.g. hl.metrics.logit_diff, or `lambda logits: logits[:, -1, a] - "
    "logits[:, -1, b]`), or method='exact'."
)


def attribution_sweeps(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Metric,
    points: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    normalize: bool = True,
    direction: str = "denoise",
) -> dict[str, PatchingResult]:
    """Attribution estimates of every cell of ``points`` (see the module doc), point -> result
    with ``values`` (layers, positions) or (layers, heads) and ``method == "attribution"``."""
    for point in points:
        if point not in POINTS:
            raise ValueError(f"unknown point {point!r}; choose one of {', '.join(POINTS)}")
    clean_tokens, corrupted_tokens = aligned_tokens(model, clean, corrupted)
    base_tokens, source_tokens = base_and_source(direction, clean_tokens, corrupted_tokens)
    seq_len = int(base_tokens.shape[1])
    cells = {}
    for p in points:
        by_pos = POINTS[p][1] == "pos"
        cells[p] = resolve_cells(model, p, seq_len, layers, positions if by_pos else None,
                                 None if by_pos else heads)  # fmt: skip
    names = [POINTS[p][0].format(layer=layer) for p in points for layer in cells[p][0]]
    with torch.no_grad():
        source_logits, source = model.run_with_cache(source_tokens, names_filter=names)
    base_acts: dict[str, torch.Tensor] = {}
    deltas: dict[str, torch.Tensor] = {}

    def add_delta(act: torch.Tensor, hook: Any) -> torch.Tensor:
        delta = torch.zeros_like(act, requires_grad=True)
        base_acts[hook.name], deltas[hook.name] = act.detach(), delta
        return act + delta

    with model.owner.hold(), torch.enable_grad():
        with model.hooks([(name, add_delta) for name in names]):
            base_logits = model(base_tokens)
        value = torch.as_tensor(metric(base_logits))
        if not value.requires_grad:
            raise ValueError(_NOT_DIFFERENTIABLE.format(why="its value carries no gradient"))
        grads = torch.autograd.grad(value.sum(), [deltas[n] for n in names], allow_unused=True)
    if all(g is None or not bool(g.any()) for g in grads):
        raise ValueError(_NOT_DIFFERENTIABLE.format(why="its gradient is zero everywhere"))
    base_value = float(check_metric_value(metric, base_logits.detach())[0])
    source_value = float(check_metric_value(metric, source_logits)[0])
    clean_value, corrupted_value = base_and_source(direction, base_value, source_value)
    shown = normalizer(clean_value, corrupted_value, normalize)
    grad_of = dict(zip(names, grads, strict=True))
    strings = token_strings(model, base_tokens)
    results = {}
    for point in points:
        rows, columns = cells[point]
        raw = torch.empty(len(rows), len(columns))
        for i, layer in enumerate(rows):
            name = POINTS[point][0].format(layer=layer)
            grad = grad_of[name]
            shift = (source[name] - base_acts[name]) * (0 if grad is None else grad)
            per_column = _per_column(shift[0].double(), head_axis_of(name))
            raw[i] = (base_value + per_column[columns]).float()
        values = shown(raw)
        axis = POINTS[point][1]
        labels = [strings[c] for c in columns] if axis == "pos" else [f"H{c}" for c in columns]
        results[point] = PatchingResult(values, point, list(rows), list(columns), labels,
                                        clean_value, corrupted_value, normalize, raw,
                                        method="attribution")  # fmt: skip
    return results


def _per_column(shift: torch.Tensor, head_axis: int | None) -> torch.Tensor:
    """(a' - a) * grad of one layer, without batch, summed to one value per sweep column:
    per position (pos, ...) -> (pos,), or per head (the head axis kept) -> (heads,)."""
    if head_axis is None:
        return shift.flatten(1).sum(1)
    return shift.movedim(head_axis - 1, 0).flatten(1).sum(1)
