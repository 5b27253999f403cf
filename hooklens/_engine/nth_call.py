"""Hooks that act at one call of a module that a block calls more than once per forward.

X-MOD's post-LN blocks call their MLP output's LayerNorm twice (on `hook_resid_post`, then on
ln2's output plus the language adapter's) and its dropout twice (on the MLP's output, then on
the adapter's), so a point on such a module must pick its call. An `NthCall` counts the
module's calls since the block's forward began (a pre-hook on the block resets the count) and
runs the point's hook only at call `n` (from 0). Each site has its own, so two points on the
same module count independently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from . import module_hooks
from .module_hooks import HookHandle

__all__ = ["NthCall", "forward_hooks", "pre_hooks"]


class NthCall:
    """Call `n` (from 0) of a module in each forward of `block`."""

    def __init__(self, block: nn.Module, n: int) -> None:
        self.block, self.n, self.count = block, n, 0

    def _reset(self, *_: Any) -> None:
        self.count = 0

    def _at_n(self) -> bool:
        hit = self.count == self.n
        self.count += 1
        return hit

    def forward_hook(
        self, module: nn.Module, hook: Callable[..., Any], *, prepend: bool = False
    ) -> list[HookHandle]:
        """`module.register_forward_hook(hook, prepend=prepend)`, acting only at call `n`."""

        def counted(mod: nn.Module, args: Any, out: Any) -> Any:
            return hook(mod, args, out) if self._at_n() else None

        reset = module_hooks.pre_hook(self.block, self._reset)
        return [reset, module_hooks.forward_hook(module, counted, prepend=prepend)]

    def pre_hook(
        self, module: nn.Module, hook: Callable[..., Any], *, prepend: bool = False
    ) -> list[HookHandle]:
        """`module.register_forward_pre_hook(hook, with_kwargs=True)`, acting only at call `n`."""

        def counted(mod: nn.Module, args: Any, kwargs: Any) -> Any:
            return hook(mod, args, kwargs) if self._at_n() else None

        reset = module_hooks.pre_hook(self.block, self._reset)
        return [reset, module_hooks.pre_hook(module, counted, with_kwargs=True, prepend=prepend)]


def forward_hooks(
    module: nn.Module, hook: Callable[..., Any], call: NthCall | None, prepend: bool = False
) -> list[HookHandle]:
    """`hook` as `module`'s forward hook, at every call, or only at `call`'s; `prepend`: before
    the module's other forward hooks."""
    if call is not None:
        return call.forward_hook(module, hook, prepend=prepend)
    return [module_hooks.forward_hook(module, hook, prepend=prepend)]


def pre_hooks(
    module: nn.Module, hook: Callable[..., Any], call: NthCall | None, prepend: bool
) -> list[HookHandle]:
    """`hook` as `module`'s forward pre-hook (with kwargs), at every call or only at `call`'s."""
    if call is not None:
        return call.pre_hook(module, hook, prepend=prepend)
    return [module_hooks.pre_hook(module, hook, with_kwargs=True, prepend=prepend)]
