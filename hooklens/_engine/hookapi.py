"""TransformerLens's hook-management calls: `add_hook`, `reset_hooks`, `remove_all_hook_fns`.

Shared by `HookedModel` and `HookedRootModule`: both provide `_select(name_or_filter)` -> points
and `_points` (name -> HookPoint). Hooks added here stay until `reset_hooks()`; permanent ones
(`is_permanent=True`, `add_perma_hook`) until `reset_hooks(including_permanent=True)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from .._errors import InputError
from .hooks import Direction, HookContext, HookFn, HookPoint
from .kwargs import checked
from .ownership import Ownership
from .points import is_on_demand, split_name

NameOrPredicate = str | Callable[[str], bool]

MSG_BAD_HOOK_LIST = """{arg} must be a list of (name or filter, function) pairs, e.g.
    {arg}=[("blocks.0.attn.hook_z", fn)]
got {what}."""


def resolve_pairs(
    select: Callable[[Any], list[HookPoint]],
    hooks: Sequence[tuple[NameOrPredicate, HookFn]],
    arg: str,
) -> list[tuple[HookPoint, HookFn]]:
    """[(name or predicate, fn), ...] -> [(point, fn), ...], with a clear error for a bad list."""
    if isinstance(hooks, tuple) and len(hooks) == 2 and callable(hooks[1]):
        raise InputError(MSG_BAD_HOOK_LIST.format(arg=arg, what="one pair, not a list of pairs"))
    pairs: list[tuple[HookPoint, HookFn]] = []
    for item in hooks:
        if not (isinstance(item, tuple | list) and len(item) == 2 and callable(item[1])):
            raise InputError(MSG_BAD_HOOK_LIST.format(arg=arg, what=f"the item {item!r}"))
        name, fn = item
        pairs += [(p, fn) for p in select(name)]
    return pairs


class ModelHooks(HookContext):
    """`model.hooks(...)`: a `HookContext` whose `with ... as m` gives the model, as in
    TransformerLens."""

    def __init__(self, model: Any, *args: Any, clear_contexts: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self._clear_contexts = clear_contexts

    def __enter__(self) -> Any:
        super().__enter__()
        return self.model

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            if self._clear_contexts:  # TransformerLens: when the block's hooks are reset
                self.model.clear_contexts()


def hook_context(
    model: Any,
    fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]],
    bwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]],
    reset_hooks_end: bool,
    prepend: bool = False,
    clear_contexts: bool = False,
) -> ModelHooks:
    """`model.hooks(...)`: the pairs resolved by `model._select`; with `reset_hooks_end=False`
    attached now and left until `reset_hooks()`. The block holds the model (`ownership.py`).
    `clear_contexts=True` empties every point's `hook.ctx` when the block's hooks are removed
    (so not with `reset_hooks_end=False`, as in TransformerLens)."""
    fwd = resolve_pairs(model._select, fwd_hooks, "fwd_hooks")
    bwd = resolve_pairs(model._select, bwd_hooks, "bwd_hooks")
    if not reset_hooks_end:
        with model.owner.hold():
            for point, fn in fwd:
                point.add_hook(fn, "fwd", prepend=prepend)
            for point, fn in bwd:
                point.add_hook(fn, "bwd", prepend=prepend)
        return ModelHooks(model, [], owner=model.owner)
    return ModelHooks(model, fwd, prepend=prepend, bwd_pairs=bwd, owner=model.owner,
                      clear_contexts=clear_contexts)  # fmt: skip


#: TransformerLens's `set_use_*` switches: the on-demand points each one puts in every forward.
USE_SWITCHES: dict[str, tuple[str, ...]] = {
    "attn_result": ("attn.hook_result",),
    "split_qkv_input": ("hook_q_input", "hook_k_input", "hook_v_input"),
    "attn_in": ("hook_attn_in",),
    "hook_mlp_in": ("hook_mlp_in",),
}


class HooksMixin:
    """`add_hook`, `add_perma_hook`, `reset_hooks`, `remove_all_hook_fns`."""

    _points: dict[str, HookPoint]
    owner: Ownership
    #: suffixes of the on-demand points switched on by `set_use_*`
    _used_on_demand: frozenset[str] = frozenset()
    #: (points dict, switches, the default selection) of the last `_default_points`
    _default_selection: tuple[dict[str, HookPoint], frozenset[str], list[HookPoint]] | None = None

    def _select(self, names: Any) -> list[HookPoint]:  # pragma: no cover - provided by the host
        raise NotImplementedError

    @checked()
    def add_hook(
        self,
        name: NameOrPredicate,
        hook: HookFn,
        dir: Direction = "fwd",
        is_permanent: bool = False,
        prepend: bool = False,
    ) -> None:
        """Attach `hook(activation, hook_point)` (or `hook(grad, hook_point)` with `dir="bwd"`)
        to the point `name`, or to every point whose name passes the filter `name`. It stays
        until `reset_hooks()`; with `is_permanent=True` until `reset_hooks(including_permanent=
        True)`. Prefer `model.hooks(...)` / `run_with_hooks`, which always clean up."""
        if dir not in ("fwd", "bwd"):
            raise InputError(f'dir must be "fwd" or "bwd", got {dir!r}')
        with self.owner.hold():  # never while another thread's job runs the model
            for point in self._select(name):
                point.add_hook(hook, dir=dir, is_permanent=is_permanent, prepend=prepend)

    def add_perma_hook(self, name: NameOrPredicate, hook: HookFn, dir: Direction = "fwd") -> None:
        """`add_hook(name, hook, dir, is_permanent=True)`."""
        self.add_hook(name, hook, dir=dir, is_permanent=True)

    @checked()
    def remove_all_hook_fns(
        self,
        direction: Literal["fwd", "bwd", "both"] = "both",
        including_permanent: bool = False,
    ) -> None:
        """Detach the functions of every point in `direction` (permanent ones only if asked)."""
        with self.owner.hold():
            for point in self._points.values():
                point.remove_hooks(direction, including_permanent=including_permanent)

    @checked()
    def reset_hooks(
        self,
        clear_contexts: bool = True,
        direction: Literal["fwd", "bwd", "both"] = "both",
        including_permanent: bool = False,
    ) -> None:
        """Detach every non-permanent function from every point (all with
        `including_permanent=True`), including those of open `hooks()` blocks, and with
        `clear_contexts=True` (TransformerLens's default) empty every point's `hook.ctx`."""
        if clear_contexts:
            self.clear_contexts()
        self.remove_all_hook_fns(direction, including_permanent)

    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """TransformerLens's switch: with True, `blocks.{l}.attn.hook_result` is among the
        points `run_with_cache` caches (and `names_filter=None` selects) by default. hooklens
        computes the point whenever it is hooked either way; the outputs do not change."""
        self._use("attn_result", use_attn_result)

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """As `set_use_attn_result`, for `hook_q_input` / `hook_k_input` / `hook_v_input`."""
        self._use("split_qkv_input", use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """As `set_use_attn_result`, for `blocks.{l}.hook_attn_in`."""
        self._use("attn_in", use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """As `set_use_attn_result`, for `blocks.{l}.hook_mlp_in`."""
        self._use("hook_mlp_in", use_hook_mlp_in)

    def _use(self, switch: str, on: bool) -> None:
        if not isinstance(on, bool):
            raise InputError(f"set_use_{switch}({on!r}): pass True or False")
        suffixes = frozenset(USE_SWITCHES[switch])
        used = self._used_on_demand
        self._used_on_demand = used | suffixes if on else used - suffixes

    def _default_points(self) -> list[HookPoint]:
        """The points `names_filter=None` selects: every point but the on-demand ones not
        switched on with `set_use_*`, as in TransformerLens. Worked out once per switch setting
        (a cache of every point runs this on each call)."""
        key = (self._points, self._used_on_demand)
        cached = self._default_selection
        if cached is None or cached[0] is not key[0] or cached[1] != key[1]:
            used = self._used_on_demand
            points = [
                p for n, p in self._points.items()
                if not is_on_demand(n) or split_name(n)[1] in used
            ]  # fmt: skip
            self._default_selection = cached = (*key, points)
        return list(cached[2])

    def clear_contexts(self) -> None:
        """Empty the `ctx` dict of every hook point."""
        for point in self._points.values():
            point.clear_context()
