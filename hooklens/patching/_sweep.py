"""`sweep`: every cell of one point, batched."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from .._engine.tokens import token_strings
from ..metrics import Metric, TokenMetric
from ._inputs import aligned_tokens, check_metric_value, resolve_cells
from ._plan import _Cell, _plan
from ._run import _BaseRun, _run_tile, _unembed_only
from ._types import POINTS, Patch, PatchingResult, Point

# Work budget of one batched forward pass in (batch element x position) rows, when
# batch_size="auto": big enough that matrix products are efficient, small enough that the
# activations of a pass stay far below the weights' size for models that fit on one device.
_AUTO_ROWS = 2048


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
    direction: Literal["denoise", "noise"] = "denoise",
    on_batch: Callable[[PatchingResult, int, int], None] | None = None,
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
    """
    if point not in POINTS:
        raise ValueError(f"unknown point {point!r}; choose one of {', '.join(POINTS)}")
    clean_tokens, corrupted_tokens = aligned_tokens(model, clean, corrupted)
    base_tokens, source_tokens = (
        (corrupted_tokens, clean_tokens)
        if direction == "denoise"
        else (clean_tokens, corrupted_tokens)
    )
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    template, axis = POINTS[point]
    seq_len = base_tokens.shape[1]
    rows, columns = resolve_cells(model, point, template, axis, seq_len, layers, positions, heads)
    names = sorted({template.format(layer=layer) for layer in rows})
    source_logits, source = model.run_with_cache(source_tokens, names_filter=names)
    base = _BaseRun(model, base_tokens)
    with torch.no_grad():
        clean_logits, corrupted_logits = (
            (source_logits, base.logits) if direction == "denoise" else (base.logits, source_logits)
        )
        clean_value = float(check_metric_value(metric, clean_logits)[0])
        corrupted_value = float(check_metric_value(metric, corrupted_logits)[0])
    cells = [
        _Cell(
            (i, j),
            layer,
            Patch(template.format(layer=layer), pos=col)
            if axis == "pos"
            else Patch(template.format(layer=layer), head=col),
            col if axis == "pos" else 0,
        )
        for i, layer in enumerate(rows)
        for j, col in enumerate(columns)
    ]
    if batch_size == "auto":
        budget = _AUTO_ROWS
    else:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        budget = int(batch_size) * seq_len
    only_last = isinstance(metric, TokenMetric) and metric.pos == -1
    # A logit difference needs two logits, not the whole vocabulary: unembed only those.
    two_logits = only_last and isinstance(metric, TokenMetric) and metric.kind == "logit_diff"
    tile_metric: Metric = TokenMetric("logit_diff", 0, 1) if two_logits else metric
    unembed_width = 2 if two_logits else model.cfg.d_vocab
    tiles = _plan(cells, model.cfg.n_layers, seq_len, model.cfg.d_model, max(budget, seq_len),
                  unembed_width)  # fmt: skip
    raw = torch.full((len(rows), len(columns)), math.nan)
    shown = token_strings(model, base_tokens) if axis == "pos" else []
    labels = [shown[c] for c in columns] if axis == "pos" else [f"H{c}" for c in columns]
    denominator = clean_value - corrupted_value

    def result() -> PatchingResult:
        values = (raw - corrupted_value) / denominator if normalize else raw.clone()
        return PatchingResult(values, point, list(rows), list(columns), labels, clean_value,
                              corrupted_value, normalize, raw.clone())  # fmt: skip

    if normalize and abs(denominator) < 1e-12:
        raise ValueError(
            f"the metric is the same on the clean and corrupted prompts ({clean_value:.6g}), so "
            "normalising by their difference is undefined; pass normalize=False or a metric "
            "that tells the prompts apart."
        )
    bar = _progress(progress, len(cells), point)
    done = 0
    narrow: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if two_logits:
        assert isinstance(metric, TokenMetric) and metric.wrong_id is not None
        narrow = _unembed_only(model, [metric.answer_id, metric.wrong_id])
    try:
        with torch.no_grad(), narrow:
            for tile in tiles:
                values = _run_tile(model, tile, base, source, tile_metric, only_last)
                for cell, value in zip(tile, values.tolist(), strict=True):
                    raw[cell.index] = value
                done += len(tile)
                if bar is not None:
                    bar.update(len(tile))
                if on_batch is not None:
                    on_batch(result(), done, len(cells))
    finally:
        if bar is not None:
            bar.close()
    return result()


def _progress(enabled: bool, total: int, point: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"patching {point}", unit="patch")
