"""`sweep`: every cell of one point, batched; `sweep_cells` does the work for a prepared pair."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, cast

import torch

from .._engine.kwargs import checked
from ..metrics import Metric
from ._attribution import attribution_sweeps
from ._evaluate import CellMetric
from ._inputs import aligned_tokens, check_metric_value, check_prompt_pair, resolve_cells
from ._plan import _Cell, _plan
from ._run import Patcher
from ._types import (
    POINTS,
    Direction,
    PatchingResult,
    Point,
    base_and_source,
    cell_patch,
    normalizer,
)

# Work budget of one batched forward pass in (batch element x position) rows, when
# batch_size="auto": big enough that matrix products are efficient, small enough that the
# activations of a pass stay far below the weights' size for models that fit on one device.
_AUTO_ROWS = 2048

OnBatch = Callable[[PatchingResult, int, int], None]
Method = Literal["exact", "attribution"]


@checked()
def sweep(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Metric,
    point: Point = "resid_pre",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    batch_size: int | Literal["auto"] = "auto",
    normalize: bool = True,
    progress: bool = True,
    direction: Direction = "denoise",
    on_batch: OnBatch | None = None,
    method: Method = "exact",
) -> PatchingResult:
    """Patch ``point`` one cell at a time and measure ``metric`` after each patch.

    ``clean``/``corrupted``: text or ids (1, pos); they must have the same number of tokens.
    ``metric(logits (batch, pos, d_vocab)) -> (batch,)``, e.g. ``hl.metrics.logit_diff``.
    ``direction="denoise"`` patches clean activations into the corrupted run; ``"noise"``
    corrupted activations into the clean run. Cells are (layer, position) for ``resid_pre``,
    ``resid_mid``, ``attn_out``, ``mlp_out`` and (layer, head) for ``z``, ``pattern``, ``q``,
    ``k``, ``v`` (k and v heads are key/value heads). ``batch_size``: cells per forward pass,
    or "auto" for a budget of rows. ``on_batch(partial_result, done, total)`` is called after
    each batch (a view fills cells as they arrive; raising from it stops the sweep cleanly).
    Returns a ``PatchingResult`` whose ``values`` are (layers, positions) or (layers, heads).

    ``method="attribution"`` estimates every cell instead, from one forward pass of each
    prompt and one backward pass (see ``_attribution.py``; ``result.method`` says which);
    it has no batches, so ``batch_size`` and ``progress`` change nothing there and
    ``on_batch`` is called once, with every cell.

    The model is held one batch at a time: calls from other threads run between batches and
    see the model as loaded.
    """
    check_prompt_pair(clean, corrupted, metric)
    if method == "attribution":
        result = attribution_sweeps(
            model, clean, corrupted, metric, [point], layers=layers, positions=positions,
            heads=heads, normalize=normalize, direction=direction,
        )[point]  # fmt: skip
        if on_batch is not None:
            on_batch(result, result.values.numel(), result.values.numel())
        return result
    if method != "exact":
        raise ValueError(f"method must be 'exact' or 'attribution', got {method!r}")
    if point not in POINTS:
        raise ValueError(f"unknown point {point!r}; choose one of {', '.join(POINTS)}")
    clean_tokens, corrupted_tokens = aligned_tokens(model, clean, corrupted)
    base_tokens, source_tokens = base_and_source(direction, clean_tokens, corrupted_tokens)
    template, _ = POINTS[point]
    rows, _ = resolve_cells(model, point, int(base_tokens.shape[1]), layers, None, None)
    names = sorted({template.format(layer=layer) for layer in rows})
    with torch.no_grad():
        source_logits, source = model.run_with_cache(source_tokens, names_filter=names)
    patcher = Patcher(model, base_tokens, source)
    clean_logits, corrupted_logits = base_and_source(direction, patcher.base.logits, source_logits)
    return sweep_cells(
        patcher,
        metric,
        point,
        layers=layers,
        positions=positions,
        heads=heads,
        clean_value=float(check_metric_value(metric, clean_logits)[0]),
        corrupted_value=float(check_metric_value(metric, corrupted_logits)[0]),
        batch_size=batch_size,
        normalize=normalize,
        progress=progress,
        on_batch=on_batch,
    )


@checked()
def sweep_all(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Metric,
    points: Sequence[str] | None = None,
    *,
    method: Method = "attribution",
    normalize: bool = True,
    direction: Direction = "denoise",
    batch_size: int | Literal["auto"] = "auto",
    progress: bool = True,
) -> dict[str, PatchingResult]:
    """Every cell of every point (default: each point this model has, in ``POINTS`` order):
    point -> ``PatchingResult``. With ``method="attribution"`` (the default) all of them come
    from the same two forward passes and one backward pass; ``"exact"`` sweeps each point."""
    check_prompt_pair(clean, corrupted, metric)
    chosen = list(points) if points is not None else [
        p for p, (template, _) in POINTS.items() if template.format(layer=0) in model.hook_dict
    ]  # fmt: skip
    if method == "attribution":
        return attribution_sweeps(model, clean, corrupted, metric, chosen, normalize=normalize,
                                  direction=direction)  # fmt: skip
    return {
        p: sweep(model, clean, corrupted, metric, cast(Point, p), batch_size=batch_size,
                 normalize=normalize, progress=progress, direction=direction, method=method)
        for p in chosen
    }  # fmt: skip


def sweep_cells(
    patcher: Patcher,
    metric: Metric,
    point: str,
    *,
    clean_value: float,
    corrupted_value: float,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    batch_size: int | Literal["auto"] = "auto",
    normalize: bool = True,
    progress: bool = False,
    on_batch: OnBatch | None = None,
    on_wait: Callable[[], None] | None = None,
) -> PatchingResult:
    """`sweep` on a prepared pair: ``patcher`` holds the base run and the source cache (with
    every patched point), the metric values of both prompts are known. ``on_wait()`` is called
    when a batch waits for another call on the model to finish."""
    model = patcher.model
    seq_len = patcher.base.seq_len
    axis = POINTS[point][1]
    rows, columns = resolve_cells(model, point, seq_len, layers, positions, heads)
    shown = normalizer(clean_value, corrupted_value, normalize)
    cells = [
        _Cell((i, j), layer, cell_patch(point, layer, col), col if axis == "pos" else 0)
        for i, layer in enumerate(rows)
        for j, col in enumerate(columns)
    ]
    raw = torch.full((len(rows), len(columns)), math.nan)
    strings = patcher.base_strings if axis == "pos" else []  # decoded once, not per column
    labels = [strings[c] for c in columns] if axis == "pos" else [f"H{c}" for c in columns]

    def result() -> PatchingResult:
        values = shown(raw)
        return PatchingResult(values, point, list(rows), list(columns), labels, clean_value,
                              corrupted_value, normalize, raw.clone())  # fmt: skip

    def after(done: int, total: int) -> None:
        if on_batch is not None:
            on_batch(result(), done, total)

    bar = _progress(progress, len(cells), point)
    try:
        run_cells(patcher, cells, CellMetric(patcher, metric, per_batch=False), raw,
                  batch_size=batch_size, bar=bar, after=after, on_wait=on_wait)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return result()


def run_cells(
    patcher: Patcher,
    cells: list[_Cell],
    metric: CellMetric,
    raw: torch.Tensor,
    *,
    batch_size: int | Literal["auto"] = "auto",
    bar: Any = None,
    after: Callable[[int, int], None] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Fill ``raw[cell.index]`` with the metric after each cell's patch, batch by batch.

    The model is held for one batch at a time; ``after(done, total)`` runs between batches
    (not holding it), ``on_wait()`` when a batch waits for another call on the model.
    """
    model, base = patcher.model, patcher.base
    if batch_size == "auto":
        budget = _AUTO_ROWS
    else:
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        budget = int(batch_size) * base.seq_len * base.batch
    # A cell whose source values equal the base run's is the base run: its value is the
    # base prompt's metric, with no pass.
    # A cell that changes values only from some position on starts there.
    firsts = patcher.first_changes([c.patch for c in cells], on_wait)
    unchanged = [first is None for first in firsts]
    if any(unchanged):
        with model.owner.hold(on_wait), torch.no_grad():
            base_value = metric(patcher.run([[]], metric.token_ids, metric.last_only), 1)[0]
        for cell in (c for c, same in zip(cells, unchanged, strict=True) if same):
            raw[cell.index] = base_value
    cells = [
        replace(c, start_pos=max(c.start_pos, first))
        for c, first in zip(cells, firsts, strict=True)
        if first is not None
    ]
    total, done = len(cells) + sum(unchanged), sum(unchanged)
    width = metric.width or model.cfg.d_vocab
    rows_per_pass = max(budget // base.batch, base.seq_len)
    tiles = _plan(cells, model.cfg.n_layers, base.seq_len, model.cfg.d_model, rows_per_pass,
                  width) if cells else []  # fmt: skip
    if done and bar is not None:
        bar.update(done)
    for tile in tiles:
        with model.owner.hold(on_wait), torch.no_grad():
            logits = patcher.run([[c.patch] for c in tile], metric.token_ids, metric.last_only)
            values = metric(logits, len(tile))
        for cell, value in zip(tile, values.tolist(), strict=True):
            raw[cell.index] = value
        done += len(tile)
        if bar is not None:
            bar.update(len(tile))
        if after is not None:
            after(done, total)
    if not tiles and after is not None:
        after(done, total)


def _progress(enabled: bool, total: int, point: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"patching {point}", unit="patch")
