"""Attribution-patching estimates that PatchingView opens with (before any exact sweep).

Every point's estimate comes from the same two forward passes and one backward pass
(``hooklens.patching.sweep_all(method="attribution")``); a view shows them, marked as
estimates, in the cells an exact sweep has not reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..patching import sweep_all
from ..patching._types import Direction
from ._cells import Layout


def attribution_estimates(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Any,
    layouts: dict[str, Layout],
    *,
    normalize: bool,
    direction: Direction,
    points: Sequence[str] | None = None,
) -> tuple[dict[str, torch.Tensor], str]:
    """Point -> estimated float32 ``(rows, cols)`` of its heatmap, and ``""``; or ``{}`` and the
    reason when attribution patching cannot run with this metric (e.g. not differentiable)."""
    chosen = list(points if points is not None else layouts)
    try:
        results = sweep_all(model, clean, corrupted, metric, chosen, method="attribution",
                            normalize=normalize, direction=direction, progress=False)  # fmt: skip
    except Exception as error:  # the exact path still works; the view says why
        return {}, f"{type(error).__name__}: {error}"
    out: dict[str, torch.Tensor] = {}
    for point, result in results.items():
        layout = layouts[point]
        values = result.values.detach().to("cpu", torch.float32)
        if tuple(values.shape) == (len(layout.rows), len(layout.columns)):
            out[point] = values
    return out, ""
