"""Whether an MLP's input projection holds its gate and up projections side by side.

Phi-3 names it `gate_up_proj`; Moshi's gating MLP calls it `fc1` like a plain MLP's input, and
only its width tells: it is twice as wide as what the output projection reads, and the MLP
splits it in halves (gate first, then up). Read from the modules, not from the name.
"""

from __future__ import annotations

from torch import nn

__all__ = ["halves_gate_up"]


def _width(module: nn.Module, attr: str) -> int | None:
    value = getattr(module, attr, None)
    return value if isinstance(value, int) else None


def halves_gate_up(mlp: nn.Module, inp: str, down: str) -> bool:
    """Whether `mlp.<inp>` (an nn.Linear) writes twice the width `mlp.<down>` reads."""
    wide = _width(mlp.get_submodule(inp), "out_features")
    narrow = _width(mlp.get_submodule(down), "in_features")
    return wide is not None and narrow is not None and wide == 2 * narrow
