"""Blocks the derived template cannot describe although block 0 fits it.

`derive` reads the template from one block; these checks look at every block for what would
make the adapter wrong on some layer, and say why in words the refusal shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ._names import STREAM_SCALE


def has_module(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
    except AttributeError:
        return False
    return True


def unlike_layers(blocks: list[nn.Module], attending: Iterable[int], sources: Any) -> str | None:
    """Why the template does not fit every block (None when it does): an attending layer
    without the q/k modules of block 0 (it reuses an earlier layer's keys and values, Gemma 4's
    KV sharing), or blocks that multiply the whole stream after adding their parts (Gemma 4's
    `layer_scalar`, where a checkpoint sets it)."""
    for i in attending:
        for source in sources:
            if source is not None and not has_module(blocks[i], source.module):
                return (
                    f"layer {i}'s attention has no {source.module} (it reuses the keys and "
                    "values an earlier layer computed), and hooklens's attention points read "
                    "them there"
                )
    for name in STREAM_SCALE:
        scales = [getattr(b, name, None) for b in blocks]
        values = [float(s.flatten()[0]) for s in scales if isinstance(s, torch.Tensor)]
        if any(v != 1 for v in values):
            shown = ", ".join(f"{v:.3g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
            return (
                f"its blocks multiply the whole residual stream by {name} ({shown}) after "
                "adding their parts, so hook_resid_post would not be hook_resid_pre plus what "
                "the block adds"
            )
    return None
