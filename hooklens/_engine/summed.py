"""A point that is the sum of two modules' outputs: an MLP and one beside it.

Some blocks add two modules' outputs to the residual stream in one step (GraniteMoeShared's and
GraniteMoeHybrid's mixture of experts plus a shared MLP, `moe(x) + shared_mlp(x)`). No module
outputs that sum, so `hook_mlp_out` is served by hooks on both: the first of them to run keeps
its output, the second fires the point with the sum (times the block's residual multiplier,
like `output_site`) and returns what makes the block's sum the point's (possibly edited) value:
`new / scale - kept`. Gradients reach both modules as they do in the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import module_hooks

if TYPE_CHECKING:
    from .sites import Builder

__all__ = ["summed_output_site"]


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def summed_output_site(
    b: Builder, mods: tuple[nn.Module, nn.Module], suffix: str, layer: int, scale: float
) -> None:
    """`suffix` of `layer` is the sum of the outputs of `mods` (in either order), times `scale`."""
    # the output of whichever module ran first in this block, by module: a forward stopped
    # between the two leaves one behind, which the same module's next output replaces
    kept: dict[int, torch.Tensor] = {}

    def install() -> list[Any]:
        kept.clear()
        return [module_hooks.forward_hook(mod, hook) for mod in mods]

    site = b._site(install)
    point = b._new(suffix, layer, site)
    if point is None:
        return
    bpd = b._bpd

    def hook(mod: nn.Module, args: Any, out: Any) -> Any:
        t = _first(out)
        other = next((v for k, v in kept.items() if k != id(mod)), None)
        kept.clear()
        if other is None:
            kept[id(mod)] = t
            return None
        new = point.fire_computed(bpd((other.reshape(t.shape) + t) * scale))
        if new is None:
            return None
        mine = new.reshape(t.shape) / scale - other.reshape(t.shape)
        return (mine, *out[1:]) if isinstance(out, tuple) else mine
