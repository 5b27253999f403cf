"""Hook points, their dispatch, and the reference-counted installation of module hooks.

A `HookPoint` holds the user functions attached to one name. It belongs to a `Site`: one place in
the Hugging Face model (a module hook of `module_hooks.py`, or the attention function) that
serves one or more points. A site installs its hook when the first of its points gains a
function and removes it when the last one loses its function, so a point nobody listens to costs
nothing. Functions are attached through `HookContext`, whose `__exit__` removes them (also on
error), or with `add_hook` (kept until `reset_hooks`; `is_permanent=True` survives it too).

Backward functions (`dir="bwd"`) are forward-time taps: when the point fires with gradients on,
its final activation is passed on as a copy carrying a tensor hook, so the function sees
the gradient of whatever reads the activation (`fn(grad, hook)`; returning a tensor replaces
the gradient). The tap is bound to that forward's graph: it fires in that graph's backward even
after the hooks were removed, and never in another forward's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

import torch

from .._errors import MSG_HOOK_BAD_RETURN, MSG_HOOK_RAISED, HookError
from . import module_hooks
from .ownership import Ownership

HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]
Direction = Literal["fwd", "bwd"]
F = TypeVar("F", bound=Callable[..., Any])


class _Handle(Protocol):
    def remove(self) -> None: ...


class Site:
    """A place in the HF model that serves hook points; installs its hooks on demand.

    `install` returns the handles to remove later. `base` is a site this one needs while active
    (the per-forward frame recorder). A site whose handles are all module hooks puts the same
    hooks back at its next use (`module_hooks.restore_all`) instead of making new ones: a site
    is installed and removed on every call that uses it.
    """

    __slots__ = ("_base", "_handles", "_install", "_removed", "count")

    def __init__(self, install: Callable[[], list[_Handle]], base: Site | None = None) -> None:
        self._install = install
        self._base = base
        self._handles: list[_Handle] = []
        self._removed: list[_Handle] = []  # the handles of the last use, to restore
        self.count = 0

    def acquire(self) -> None:
        if self.count == 0:
            base = self._base
            if base is not None:  # the base is usually held already: a count, not a call
                if base.count:
                    base.count += 1
                else:
                    base.acquire()
            removed, self._removed = self._removed, []
            restored = bool(removed) and module_hooks.restore_all(removed)
            self._handles = removed if restored else self._install()
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            handles, self._handles = self._handles, []
            for handle in handles:
                handle.remove()
            self._removed = handles
            base = self._base
            if base is not None:
                if base.count > 1:
                    base.count -= 1
                else:
                    base.release()


def _fn_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"`{name}`"


READS_ONLY = "hooklens_reads_only"


def reads_only(fn: F) -> F:
    """Mark `fn` as a function that never edits or replaces the activation it is given (a
    cache's): `HookPoint.may_edit` does not count it."""
    setattr(fn, READS_ONLY, True)
    return fn


class HookPoint:
    """One named hook point, e.g. `blocks.0.attn.hook_pattern`.

    Hook functions are called as `fn(activation, hook)`; `hook.name` is this point's name and
    `hook.layer()` its block index (None outside blocks). Returning a tensor replaces the
    activation; returning None keeps it (in-place edits are fine). `hook.ctx` is a dict the
    functions may keep things in, e.g. from a forward function for a backward one; it lasts
    until `reset_hooks()` (whose `clear_contexts=True` is the default), `hooks(...,
    clear_contexts=True)` leaving its block, or `hook.clear_context()`, as in TransformerLens.
    """

    __slots__ = ("_editing", "_layer", "_permanent", "_site", "bwd_fns", "ctx", "fns", "name")

    def __init__(self, name: str, layer: int | None, site: Site) -> None:
        self.name = name
        self._layer = layer
        self._site = site
        self.fns: list[HookFn] = []
        self.bwd_fns: list[HookFn] = []
        self._permanent: list[HookFn] = []
        self._editing = 0  # forward functions not marked `reads_only` (read per point and call)
        self.ctx: dict[Any, Any] = {}

    def clear_context(self) -> None:
        """Empty `ctx` (a new dict: one a function kept a reference to is left as it was)."""
        self.ctx = {}

    @property
    def may_edit(self) -> bool:
        """Whether a forward function is attached that may edit or replace the activation (one
        not marked `reads_only`). Where a site writes the result into the model's own tensor,
        the functions then run on a copy: a tensor a function keeps changes with later in-place
        edits, never with a replacement returned (as in TransformerLens, where that tensor is
        the model's and a returned one is passed on)."""
        return self._editing > 0

    @property
    def active(self) -> bool:
        """Whether the point must fire (some forward or backward function is attached)."""
        return bool(self.fns or self.bwd_fns)

    def layer(self) -> int | None:
        """The block index of this point, or None for model-level points."""
        return self._layer

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r}, {len(self.fns)} fn(s))"

    def add(self, fn: HookFn, prepend: bool = False, dir: Direction = "fwd") -> None:
        fns = self.bwd_fns if dir == "bwd" else self.fns
        if not (self.fns or self.bwd_fns):  # `active`, inline: this runs per point and call
            self._site.acquire()
        if prepend:
            fns.insert(0, fn)
        else:
            fns.append(fn)
        if dir != "bwd" and not getattr(fn, READS_ONLY, False):
            self._editing += 1

    def remove(self, fn: HookFn, dir: Direction = "fwd") -> None:
        """Detach `fn` (a no-op when `reset_hooks` already detached it)."""
        try:
            (self.bwd_fns if dir == "bwd" else self.fns).remove(fn)
        except ValueError:
            return
        if dir != "bwd" and not getattr(fn, READS_ONLY, False):
            self._editing -= 1
        if self._permanent and fn in self._permanent and fn not in self.fns + self.bwd_fns:
            self._permanent.remove(fn)
        if not (self.fns or self.bwd_fns):
            self._site.release()

    # -- TransformerLens's HookPoint API ------------------------------------------------------
    def add_hook(
        self,
        hook: HookFn,
        dir: Direction = "fwd",
        is_permanent: bool = False,
        prepend: bool = False,
    ) -> None:
        """Attach `hook` until `model.reset_hooks()` (or for good with `is_permanent=True`,
        until `reset_hooks(including_permanent=True)`)."""
        if dir not in ("fwd", "bwd"):
            raise ValueError(f'dir must be "fwd" or "bwd", got {dir!r}')
        self.add(hook, prepend=prepend, dir=dir)
        if is_permanent:
            self._permanent.append(hook)

    def add_perma_hook(self, hook: HookFn, dir: Direction = "fwd") -> None:
        self.add_hook(hook, dir=dir, is_permanent=True)

    def remove_hooks(
        self, dir: Literal["fwd", "bwd", "both"] = "both", including_permanent: bool = False
    ) -> None:
        """Detach this point's functions in direction `dir` (permanent ones only if asked)."""
        if dir not in ("fwd", "bwd", "both"):
            raise ValueError(f'dir must be "fwd", "bwd" or "both", got {dir!r}')
        for d, fns in (("fwd", self.fns), ("bwd", self.bwd_fns)):
            if dir in (d, "both"):
                for fn in list(fns):
                    if including_permanent or fn not in self._permanent:
                        self.remove(fn, d)  # type: ignore[arg-type]

    def fire_computed(self, x: torch.Tensor) -> torch.Tensor | None:
        """`fire` on a tensor computed for this point, which the model never sees (an edit in
        place reaches the model only through what the site makes of it): the activation to
        use, or None where nothing was returned and nothing written into a copy of `x` (`x`
        itself is left as it was)."""
        new = self.fire(x, shared=True)
        return None if new is x else new

    def fire(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Run the attached functions in order; return the (possibly replaced) activation.

        Functions that may edit (`may_edit`) run on a copy where `x` is `shared` (the site
        writes the result into the model's tensor, or reads `x` after), and where gradients
        are on (autograd may keep the model's tensor for its backward: a softmax's output, an
        attention kernel's, chosen experts' ids); a copy nothing replaced or wrote into gives
        `x` back, so where a copy was made, a result that `is x` means "not edited"."""
        fns = self.fns
        given, copy, version = x, None, None
        # `_editing` first: 0 for a cache's functions, the usual call
        if self._editing and (
            shared or (torch.is_grad_enabled() and (x.requires_grad or not x.is_floating_point()))
        ):
            x = copy = x.clone()
            # inference tensors keep no version counter: their values are compared instead
            version = None if copy.is_inference() else copy._version
        if len(fns) == 1:  # the usual case, without the loop or `_call`: per point and call
            fn = fns[0]
            try:
                out = fn(x, self)
            except HookError:
                raise
            except Exception as exc:
                raise _raised(self, fn, exc) from exc
            if out is not None and out is not x:
                _check_replacement(self.name, fn, x, out)
                x = out
        elif fns:
            x = _run(self, fns, x)
        if x is copy and (copy._version == version if version is not None else x.equal(given)):
            x = given  # the copy, neither replaced nor written into: the model's tensor goes on
        if self.bwd_fns and torch.is_grad_enabled() and x.requires_grad:
            # A copy, not a view: the site passes it on (in place for resid_mid, where a view of
            # the stream it is copied into would lose its history), so its gradient is ours.
            x = x.clone()
            x.register_hook(_BackwardTap(self, tuple(self.bwd_fns)))
        return x


class _BackwardTap:
    """The tensor hook that runs a point's backward functions on the activation's gradient."""

    __slots__ = ("fns", "point")

    def __init__(self, point: HookPoint, fns: tuple[HookFn, ...]) -> None:
        self.point = point
        self.fns = fns

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        return _run(self.point, self.fns, grad)


def _run(point: HookPoint, fns: Sequence[HookFn], x: torch.Tensor) -> torch.Tensor:
    """Call each of `fns` as fn(x, point), in order; a returned tensor replaces x (checked).
    They are called from a snapshot of the list (a function may add or remove functions)."""
    for fn in (fns[0],) if len(fns) == 1 else tuple(fns):
        out = _call(point, fn, x)
        if out is not None and out is not x:
            _check_replacement(point.name, fn, x, out)
            x = out
    return x


def _call(point: HookPoint, fn: HookFn, x: torch.Tensor) -> Any:
    """fn(x, point), with an error naming the function and the point when it raises."""
    try:
        return fn(x, point)
    except HookError:
        raise
    except Exception as exc:
        raise _raised(point, fn, exc) from exc


def _raised(point: HookPoint, fn: HookFn, exc: Exception) -> HookError:
    """The error for `fn` raising `exc` at `point`: names both."""
    return HookError(
        MSG_HOOK_RAISED.format(
            fn=_fn_name(fn), name=point.name, exc_type=type(exc).__name__, exc=exc
        ),
        point.name,
    )


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
        bwd_pairs: Sequence[tuple[HookPoint, HookFn]] = (),
        owner: Ownership | None = None,
    ):
        self._pairs: list[tuple[HookPoint, HookFn, Direction]] = [(p, fn, "fwd") for p, fn in pairs]
        self._pairs += [(p, fn, "bwd") for p, fn in bwd_pairs]
        self._prepend = prepend
        self._owner = owner
        self._added = 0  # how many of `_pairs` are attached (the first ones)

    def __enter__(self) -> HookContext:
        if self._owner is not None:
            self._owner.acquire()
        prepend = self._prepend
        try:
            for point, fn, dir in self._pairs:  # a count, not a list: this runs per point
                point.add(fn, prepend, dir)
                self._added += 1
        except BaseException:
            self._detach()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._detach()

    def _detach(self) -> None:
        added, self._added = self._added, 0
        try:
            for point, fn, dir in reversed(self._pairs[:added]):
                point.remove(fn, dir)
        finally:
            if self._owner is not None:
                self._owner.release()


class Frame:
    """Batch size of the forward pass in flight (OPT flattens (batch, pos) inside its MLP)."""

    __slots__ = ("batch", "seen")

    def __init__(self) -> None:
        self.batch = 1
        # the modules a `skip_first` norm site saw called since the model's forward began
        # (None: no forward began since it was installed, e.g. a partial forward's blocks)
        self.seen: set[int] | None = None
