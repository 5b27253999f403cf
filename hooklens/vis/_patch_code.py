"""The Python a ``PatchingView`` shows beside a patched result: it reproduces that result."""

from __future__ import annotations

from typing import Any

import torch

from ..metrics import Metric, TokenMetric
from ..patching import Patch
from ..patching._types import base_and_source


def patch_code(
    clean: Any, corrupted: Any, direction: str, metric: Metric, patches: list[Patch], value: float
) -> str:
    """Python that reproduces the patched logits of ``patches`` and their metric ``value``.

    ``clean``/``corrupted``: the prompts as the view got them (text or ids); ``direction``:
    ``"denoise"`` (clean activations into the corrupted run) or ``"noise"``.
    """
    base, source = base_and_source(direction, "clean", "corrupted")
    shown = repr(metric) if isinstance(metric, TokenMetric) else None
    listed = ", ".join(p.to_python() for p in patches)
    lines = [
        f"clean = {_prompt_literal(clean)}",
        f"corrupted = {_prompt_literal(corrupted)}",
        f"_, {source}_cache = model.run_with_cache({source})",
        f"logits = hl.patching.patch(model, {base}, {source}_cache, patches=[{listed}])",
        f"metric = {shown}" if shown else "metric = ...  # the metric given to PatchingView",
        f"metric(logits)  # {value:.6g}",
    ]
    return "\n".join(lines)


def _prompt_literal(prompt: Any) -> str:
    if isinstance(prompt, str):
        return repr(prompt)
    ids = torch.as_tensor(prompt).reshape(1, -1).tolist()
    return f"torch.tensor({ids})"
