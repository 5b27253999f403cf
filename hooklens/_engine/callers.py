"""Which layer is calling: for an attention module that several layers' blocks call.

A model may hand one attention module object to several layers (a transformer block shared by
the layers of a hybrid, as older transformers built Zamba's). A hook on that module
fires at every layer's call, so each layer's points there are served only while that layer's
block runs: `Caller` tracks it with a pre-hook and a forward hook on the block, installed only
while one of the layer's points on the shared module has a function.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from torch import nn

from . import module_hooks


class Caller:
    """Whether one layer's block is running (`running`), while `acquire`d."""

    __slots__ = ("_block", "_handles", "_users", "depth")

    def __init__(self, block: nn.Module) -> None:
        self._block = block
        self._handles: list[Any] = []
        self._users = 0
        self.depth = 0  # calls of the block in progress

    @property
    def running(self) -> bool:
        return self.depth > 0

    def acquire(self) -> _Release:
        """Track the block's calls until the returned handle is removed."""
        if self._users == 0:
            self.depth = 0

            def enter(module: nn.Module, args: Any) -> None:
                self.depth += 1

            def leave(module: nn.Module, args: Any, out: Any) -> None:
                self.depth = max(self.depth - 1, 0)

            self._handles = [
                module_hooks.pre_hook(self._block, enter),
                # also after an exception: the next forward starts outside the block
                module_hooks.forward_hook(self._block, leave, always_call=True),
            ]
        self._users += 1
        return _Release(self)

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0:
            for handle in self._handles:
                handle.remove()
            self._handles = []
            self.depth = 0


class _Release:
    """The handle `Caller.acquire` returns (removed with the site's other hooks)."""

    __slots__ = ("_caller",)

    def __init__(self, caller: Caller) -> None:
        self._caller: Caller | None = caller

    def remove(self) -> None:
        if self._caller is not None:  # removing twice releases once
            self._caller._release()
            self._caller = None


def shared_callers(blocks: list[nn.Module], attns: dict[int, nn.Module]) -> dict[int, Caller]:
    """A `Caller` for each layer whose attention module (`attns`: layer -> module) other layers
    call too (the same object); none where each layer has its own."""
    counts = Counter(id(m) for m in attns.values())
    return {i: Caller(blocks[i]) for i, m in attns.items() if counts[id(m)] > 1}
