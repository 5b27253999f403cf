"""Attention that rounds its keys and values after computing them and before attending
(Kolibri 1.1's sparse layers: NVFP4, with a straight-through gradient).

The rounding function is found as data (`KV_ROUNDING`): a function of the attention class's
module that its forward calls. Such a model's attention points are refused (`MSG_ROUNDED`):
on the layers that round, `hook_v` cannot be both `ln1.hook_normalized @ W_V` (before the
rounding) and what `hook_z` is made of (after it), and which layers round is decided inside the
forward. The derivation then keeps its blocks whole (the residual stream's points).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable

import torch
from torch import nn

from ._names import KV_ROUNDING

__all__ = ["MSG_ROUNDED", "kv_rounding"]

MSG_ROUNDED = (
    "its attention {cls} rounds the keys and values ({fn}) after computing them and before "
    "attending, on the layers its forward chooses: there hook_v could not be both "
    "ln1.hook_normalized @ W_V (before the rounding) and what hook_z is made of (after it), "
    "nor hook_k what hook_rot_k is at position 0"
)


def kv_rounding(attn_mod: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The function `attn_mod`'s forward rounds keys and values with, or None."""
    cls = type(attn_mod)
    module = sys.modules.get(cls.__module__)
    # the source is read only where the class's module defines such a function (rarely)
    found = [(n, f) for n in KV_ROUNDING if callable(f := getattr(module, n, None))]
    if not found:
        return None
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):  # no source to read (a compiled or generated forward)
        return None
    return next((f for n, f in found if f"{n}(" in source), None)
