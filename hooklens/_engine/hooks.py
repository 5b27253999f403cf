"""Hook points, their dispatch, and the reference-counted installation of torch hooks.

A `HookPoint` holds the user functions attached to one name. It belongs to a `Site`: one place in
the Hugging Face model (a torch module hook, or the attention function) that serves one or more
points. A site installs its torch hook when the first of its points gains a function and removes
it when the last one loses its function, so a point nobody listens to costs nothing. Functions
are only ever attached through `HookContext`, whose `__exit__` removes them (also on error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from .._errors import MSG_HOOK_BAD_RETURN, MSG_HOOK_RAISED, HookError
from .ownership import Ownership

HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]


class _Handle(Protocol):
    def remove(self) -> None: ...


class Site:
    """A place in the HF model that serves hook points; installs its torch hooks on demand.

    `install` returns the handles to remove later. `base` is a site this one needs while active
    (the per-forward frame recorder).
    """

    __slots__ = ("_base", "_handles", "_install", "count")

    def __init__(self, install: Callable[[], list[_Handle]], base: Site | None = None) -> None:
        self._install = install
        self._base = base
        self._handles: list[_Handle] = []
        self.count = 0

    def acquire(self) -> None:
        if self.count == 0:
            if self._base is not None:
                self._base.acquire()
            self._handles = self._install()
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            handles, self._handles = self._handles, []
            for handle in handles:
                handle.remove()
            if self._base is not None:
                self._base.release()


def _fn_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"`{name}`"


class HookPoint:
    """One named hook point, e.g. `blocks.0.attn.hook_pattern`.

    Hook functions are called as `fn(activation, hook)`; `hook.name` is this point's name and
    `hook.layer()` its block index (None outside blocks). Returning a tensor replaces the
    activation; returning None keeps it (in-place edits are fine).
    """

    __slots__ = ("_layer", "_site", "fns", "name")

    def __init__(self, name: str, layer: int | None, site: Site) -> None:
        self.name = name
        self._layer = layer
        self._site = site
        self.fns: list[HookFn] = []

    def layer(self) -> int | None:
        """The block index of this point, or None for model-level points."""
        return self._layer

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r}, {len(self.fns)} fn(s))"

    def add(self, fn: HookFn, *, prepend: bool = False) -> None:
        if not self.fns:
            self._site.acquire()
        if prepend:
            self.fns.insert(0, fn)
        else:
            self.fns.append(fn)

    def remove(self, fn: HookFn) -> None:
        self.fns.remove(fn)
        if not self.fns:
            self._site.release()

    def fire(self, x: torch.Tensor) -> torch.Tensor:
        """Run the attached functions in order; return the (possibly replaced) activation."""
        for fn in tuple(self.fns):
            try:
                out = fn(x, self)
            except HookError:
                raise
            except Exception as exc:
                raise HookError(
                    MSG_HOOK_RAISED.format(
                        fn=_fn_name(fn), name=self.name, exc_type=type(exc).__name__, exc=exc
                    ),
                    self.name,
                ) from exc
            if out is not None and out is not x:
                _check_replacement(self.name, fn, x, out)
                x = out
        return x


def _check_replacement(name: str, fn: HookFn, x: torch.Tensor, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        what = f"a {type(out).__name__}"
    elif out.shape != x.shape:
        what = f"a tensor of shape {tuple(out.shape)}"
    elif out.dtype != x.dtype:
        what = f"a tensor of dtype {out.dtype}"
    elif out.device != x.device:
        what = f"a tensor on {out.device} (the activation is on {x.device})"
    else:
        return
    raise HookError(
        MSG_HOOK_BAD_RETURN.format(
            fn=_fn_name(fn), name=name, what=what, shape=tuple(x.shape), dtype=x.dtype
        ),
        name,
    )


class HookContext:
    """Attaches (point, fn) pairs on enter and detaches them on exit, whatever happened.

    With an `owner`, the model is held from before the first function is attached until after
    the last is removed, so no other thread's call runs while these hooks are on the model.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[HookPoint, HookFn]],
        *,
        prepend: bool = False,
        owner: Ownership | None = None,
    ):
        self._pairs = list(pairs)
        self._prepend = prepend
        self._owner = owner
        self._added: list[tuple[HookPoint, HookFn]] = []

    def __enter__(self) -> HookContext:
        if self._owner is not None:
            self._owner.acquire()
        try:
            for point, fn in self._pairs:
                point.add(fn, prepend=self._prepend)
                self._added.append((point, fn))
        except BaseException:
            self._detach()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._detach()

    def _detach(self) -> None:
        added, self._added = self._added, []
        try:
            for point, fn in reversed(added):
                point.remove(fn)
        finally:
            if self._owner is not None:
                self._owner.release()
