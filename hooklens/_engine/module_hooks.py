"""hooklens's module hooks: torch's calling conventions, without torch's hook machinery.

A torch hook costs every call it is on twice over: registering and removing it builds a
`RemovableHandle` (weak references to the hook dicts), and a module with any torch hook leaves
`nn.Module.__call__`'s fast path for the slow one, which walks every hook dict. hooklens adds
and removes its hooks on every call (a job leaves the model as it was), so where a forward is
bound by Python (a GPU's, launching small kernels) that cost shows in full.

Here a module's hooks live in a function put in the module's own `__dict__` as `forward`, which
`__call__` runs on its fast path instead of the class's `forward`: the pre-hooks, the module's
forward, the forward hooks, in the order they were added (or prepended), called as torch calls
them (`hook(module, args)` / `hook(module, args, kwargs)` before, `hook(module, args, out)` /
`hook(module, args, kwargs, out)` after; a returned value replaces the arguments or the
output). When the module's last hook is removed, its `__dict__` is as it was: no `forward` of
ours, or the instance forward someone else had put there (accelerate's device hooks), which the
hooks call in between. Torch's own hooks on the module (the user's, transformers' output
recorders) still run around these: torch's pre-hooks before them, its forward hooks after.
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

__all__ = [
    "HookHandle",
    "forward_hook",
    "has_hooks",
    "own_forward",
    "pre_hook",
    "restore_all",
    "swap_forward",
]

PreHook = tuple[Callable[..., Any], bool]  # (hook, with_kwargs)
ForwardHook = tuple[Callable[..., Any], bool, bool]  # (hook, with_kwargs, always_call)


class _ModuleHooks:
    """The hooks of one module, and `forward`: what its `__dict__` holds while it has any."""

    __slots__ = ("always", "forward", "inner", "module", "own", "post", "pre", "swap")

    def __init__(self, module: nn.Module, own: Callable[..., Any] | None) -> None:
        self.module = module
        self.own = own  # an instance forward someone else had put there (accelerate's)
        #: what runs between the pre-hooks and the forward hooks: the module's own forward, or
        #: a swapped-in one (`swap_forward`)
        self.inner = self._own_forward()
        self.swap: tuple[Callable[..., Any]] | None = None
        # tuples, replaced on change: a forward in flight goes on with the hooks it started with
        self.pre: tuple[PreHook, ...] = ()
        self.post: tuple[ForwardHook, ...] = ()
        self.always = False  # some forward hook runs also when the forward raises
        # a partial (a C call, as cheap as a closure) whose deep copy is the copy's own forward
        self.forward = functools.partial(_run, self)
        self.forward.__wrapped__ = self.inner  # type: ignore[attr-defined]  # inspect.signature

    def __deepcopy__(self, memo: dict[int, Any]) -> _ModuleHooks:
        """A deep copy of a module made while it has hooks (`add_hook` keeps them between
        calls) runs the copy's own forward with no hooks: the hook points sit on the original."""
        twin = memo.get(id(self.module), self.module)
        return _ModuleHooks(twin, copy.deepcopy(self.own, memo))

    def _own_forward(self) -> Callable[..., Any]:
        if self.own is not None:
            return self.own
        return types.MethodType(type(self.module).forward, self.module)

    def set_inner(self, inner: Callable[..., Any]) -> None:
        self.inner = self.forward.__wrapped__ = inner  # type: ignore[attr-defined]

    def remove(self, entry: tuple[Any, ...]) -> None:
        # runs per hook point and call: the usual case (one hook left) without a comprehension
        if entry is self.swap:
            self.swap = None
            self.set_inner(self._own_forward())
        elif len(entry) == 2:
            pre = self.pre
            self.pre = () if len(pre) == 1 and pre[0] is entry else _without(pre, entry)
        else:
            post = self.post
            self.post = () if len(post) == 1 and post[0] is entry else _without(post, entry)
            if entry[2]:
                self.always = any(e[2] for e in self.post)
        if self.pre or self.post or self.swap:
            return
        found = self.module.__dict__.get("forward")
        # ours: our partial, or the one a deep copy rebuilt around us; not where someone
        # replaced our forward since
        if found is self.forward or _installed(self.module) is self:
            if self.own is None:
                del self.module.__dict__["forward"]
            else:
                self.module.__dict__["forward"] = self.own


def _without(entries: tuple[Any, ...], entry: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple([e for e in entries if e is not entry])


def _run(hooks: _ModuleHooks, *args: Any, **kwargs: Any) -> Any:
    """The pre-hooks, the module's forward (or a swapped-in one), the forward hooks."""
    module = hooks.module
    for hook, with_kwargs in hooks.pre:
        if with_kwargs:
            new = hook(module, args, kwargs)
            if new is not None:
                args, kwargs = new
        else:
            new = hook(module, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
    if hooks.always:
        return _guarded(hooks, module, args, kwargs)
    out = hooks.inner(*args, **kwargs)
    for hook, with_kwargs, _ in hooks.post:
        new = hook(module, args, kwargs, out) if with_kwargs else hook(module, args, out)
        if new is not None:
            out = new
    return out


def _guarded(hooks: _ModuleHooks, module: nn.Module, args: Any, kwargs: Any) -> Any:
    """The forward and its forward hooks; if either raises, the `always_call` hooks that did
    not run yet run with the output so far (None if the forward raised), as torch runs them."""
    out, ran = None, set()
    try:
        out = hooks.inner(*args, **kwargs)
        for entry in hooks.post:
            hook, with_kwargs, _ = entry
            ran.add(id(entry))
            new = hook(module, args, kwargs, out) if with_kwargs else hook(module, args, out)
            if new is not None:
                out = new
    except BaseException:
        for entry in hooks.post:
            hook, with_kwargs, always = entry
            if always and id(entry) not in ran:
                hook(module, args, kwargs, out) if with_kwargs else hook(module, args, out)
        raise
    return out


class HookHandle:
    """Removes one hook (`remove()`; a second call does nothing), as torch's `RemovableHandle`,
    and puts it back (`restore()`)."""

    __slots__ = ("_entry", "_hooks", "_last", "_prepend")

    def __init__(self, hooks: _ModuleHooks, entry: tuple[Any, ...], prepend: bool) -> None:
        self._hooks: _ModuleHooks | None = hooks
        self._last = hooks
        self._entry = entry
        self._prepend = prepend

    def remove(self) -> None:
        if self._hooks is not None:
            self._hooks.remove(self._entry)
            self._hooks = None

    def restore(self) -> bool:
        """Add the removed hook again, where a new one would go (first if it was prepended);
        False, and nothing done, where a new one is needed: the module's own forward changed
        since (accelerate dispatched it anew), or it is a swap."""
        entry, last = self._entry, self._last
        if self._hooks is not None or len(entry) == 1:
            return False
        module = last.module
        found = module.__dict__.get("forward")
        # the usual cases first: our hooks object is still there, or it went with nothing
        # else changed (one dict lookup; this runs per point and call)
        hooks = last if found is last.forward else None if found is None else _installed(module)
        if hooks is None:  # the module has no hooks now: ours go back if nothing else changed
            if found is not last.own or last.pre or last.post:
                return False
            if (
                last.own is None
                and getattr(last.inner, "__func__", None) is not type(module).forward
            ):
                last.set_inner(last._own_forward())  # the class's forward was replaced since
            module.__dict__["forward"] = last.forward
            hooks = last
        if len(entry) == 2:
            hooks.pre = (entry, *hooks.pre) if self._prepend else (*hooks.pre, entry)
        else:
            hooks.post = (entry, *hooks.post) if self._prepend else (*hooks.post, entry)
            hooks.always = hooks.always or entry[2]
        self._hooks = self._last = hooks
        return True


def restore_all(handles: Sequence[object]) -> bool:
    """Put back every one of `handles`, removed before, in order; False, and none put back,
    unless each is a `HookHandle` that can be (see `HookHandle.restore`)."""
    if len(handles) == 1:  # most sites: one hook
        handle = handles[0]
        return type(handle) is HookHandle and handle.restore()
    ours = [h for h in handles if type(h) is HookHandle]
    if len(ours) != len(handles):
        return False
    done: list[HookHandle] = []
    for handle in ours:
        if not handle.restore():
            for put in reversed(done):
                put.remove()
            return False
        done.append(handle)
    return True


def _hooks_of(module: nn.Module) -> _ModuleHooks:
    """The module's hooks, installed (its `__dict__`'s `forward`) if they were not."""
    found = _installed(module)
    if found is not None:
        return found
    hooks = _ModuleHooks(module, module.__dict__.get("forward"))
    module.__dict__["forward"] = hooks.forward
    return hooks


def _installed(module: nn.Module) -> _ModuleHooks | None:
    fn = module.__dict__.get("forward")
    if isinstance(fn, functools.partial) and fn.func is _run:
        return fn.args[0]
    return None


def pre_hook(
    module: nn.Module, hook: Callable[..., Any], *, with_kwargs: bool = False,
    prepend: bool = False,
) -> HookHandle:  # fmt: skip
    """As `module.register_forward_pre_hook(hook, with_kwargs=, prepend=)`."""
    hooks = _hooks_of(module)
    entry = (hook, with_kwargs)
    hooks.pre = (entry, *hooks.pre) if prepend else (*hooks.pre, entry)
    return HookHandle(hooks, entry, prepend)


def forward_hook(
    module: nn.Module, hook: Callable[..., Any], *, with_kwargs: bool = False,
    prepend: bool = False, always_call: bool = False,
) -> HookHandle:  # fmt: skip
    """As `module.register_forward_hook(hook, with_kwargs=, prepend=, always_call=)`."""
    hooks = _hooks_of(module)
    entry = (hook, with_kwargs, always_call)
    hooks.post = (entry, *hooks.post) if prepend else (*hooks.post, entry)
    hooks.always = hooks.always or always_call
    return HookHandle(hooks, entry, prepend)


def swap_forward(module: nn.Module, fn: Callable[..., Any]) -> HookHandle:
    """Run `fn(module, *args, **kwargs)` instead of the module's own forward, between its hooks,
    until the handle is removed (one swap at a time)."""
    hooks = _hooks_of(module)
    if hooks.swap is not None:
        raise RuntimeError(f"{type(module).__name__}'s forward is already swapped")
    hooks.swap = (fn,)
    hooks.set_inner(types.MethodType(fn, module))
    return HookHandle(hooks, hooks.swap, False)


def own_forward(module: nn.Module) -> Callable[..., Any]:
    """The forward `module` runs between its hooks (for a hook that calls the module again)."""
    hooks = _installed(module)
    if hooks is not None:
        return hooks.inner
    fn = module.__dict__.get("forward")
    return fn if fn is not None else types.MethodType(type(module).forward, module)


def has_hooks(module: nn.Module) -> bool:
    """Whether `module` has a hook of this module's now."""
    return _installed(module) is not None
