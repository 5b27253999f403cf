"""`HookedRootModule` and `HookPoint` for your own small torch modules, as in TransformerLens.

    class Toy(HookedRootModule):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)
            self.hook_mid = HookPoint()
            self.setup()  # names every HookPoint by its module path

        def forward(self, x):
            return self.hook_mid(self.linear(x))

    out, cache = Toy().run_with_cache(x)              # {"hook_mid": tensor}
    Toy().run_with_hooks(x, fwd_hooks=[("hook_mid", fn)])

The points are the engine's hook points (same dispatch, replacement checks and backward taps);
here a point is also an identity `nn.Module` that fires when called.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._engine import hooks as _hooks
from ._engine.caching import PosSlice, backward_of, saving_hooks
from ._engine.hookapi import HooksMixin, ModelHooks, NameOrPredicate, hook_context
from ._engine.hooks import HookContext, HookFn
from ._engine.ownership import Ownership
from ._errors import HookNameError

__all__ = ["HookPoint", "HookedRootModule"]


class HookPoint(nn.Module, _hooks.HookPoint):
    """An identity module whose call fires the functions attached to it (`hook.name` is its
    module path after `HookedRootModule.setup()`)."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        _hooks.HookPoint.__init__(self, "", None, _hooks.Site(list))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fire(x) if self.active else x

    def layer(self) -> int | None:
        """The index after "blocks." in the name (TransformerLens's convention), else None."""
        parts = self.name.split(".")
        return (
            int(parts[1])
            if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit()
            else None
        )

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"


class HookedRootModule(HooksMixin, nn.Module):
    """Base class for a module with `HookPoint`s: call `self.setup()` at the end of `__init__`.

    `hook_dict` / `mod_dict` map names to points / modules; `hooks`, `run_with_hooks`,
    `run_with_cache`, `add_hook`, `reset_hooks` work as on `HookedModel`.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        self.hook_dict: dict[str, HookPoint] = {}
        self.mod_dict: dict[str, nn.Module] = {}
        #: Held while hooks are attached or the module runs, as for `HookedModel`.
        self.owner = Ownership()

    def setup(self) -> None:
        """Name every `HookPoint` submodule by its path and build `hook_dict` / `mod_dict`."""
        self.mod_dict = {}
        self.hook_dict = {}
        for name, module in self.named_modules():
            if name == "":
                continue
            self.mod_dict[name] = module
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    @property
    def _points(self) -> dict[str, _hooks.HookPoint]:  # type: ignore[override]
        return dict(self.hook_dict)

    def hook_points(self) -> list[HookPoint]:
        return list(self.hook_dict.values())

    def _select(self, names: Any) -> list[_hooks.HookPoint]:
        if not self.hook_dict:
            raise HookNameError(
                f"{type(self).__name__} has no hook points: call self.setup() at the end of "
                "__init__ (after creating the HookPoint submodules)."
            )
        if names is None:
            return list(self.hook_dict.values())
        if isinstance(names, str):
            names = [names]
        if callable(names):
            return [p for n, p in self.hook_dict.items() if names(n)]
        found: list[_hooks.HookPoint] = []
        for name in names:
            if name not in self.hook_dict:
                close = difflib.get_close_matches(name, list(self.hook_dict), n=3, cutoff=0.5)
                raise HookNameError(
                    f"{name!r} is not a hook point of {type(self).__name__}. Did you mean: "
                    f"{', '.join(map(repr, close)) or '(nothing close)'}? Its points: "
                    f"{', '.join(self.hook_dict)}"
                )
            found.append(self.hook_dict[name])
        return found

    def hooks(
        self,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        bwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
    ) -> ModelHooks:
        """Attach hooks while the block is open (see `HookedModel.hooks`); `clear_contexts=True`
        empties every point's `hook.ctx` when they are removed."""
        return hook_context(
            self, fwd_hooks, bwd_hooks, reset_hooks_end, clear_contexts=clear_contexts
        )

    def run_with_hooks(
        self,
        *model_args: Any,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        bwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        **model_kwargs: Any,
    ) -> Any:
        """`self(*model_args, **model_kwargs)` with the hooks attached."""
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end, clear_contexts):
            return self(*model_args, **model_kwargs)

    def run_with_cache(
        self,
        *model_args: Any,
        names_filter: str | Sequence[str] | Callable[[str], bool] | None = None,
        device: str | torch.device | None = None,
        remove_batch_dim: bool = False,
        incl_bwd: bool = False,
        pos_slice: PosSlice = None,
        clear_contexts: bool = False,
        **model_kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """(output, {name: activation}) of `self(*model_args, **model_kwargs)`; with
        `incl_bwd=True` the output (a scalar) is backpropagated and `name + "_grad"` cached;
        `clear_contexts=True` empties every point's `hook.ctx` at the end."""
        store, fwd, bwd = saving_hooks(
            self._select(names_filter),
            remove_batch_dim=remove_batch_dim,
            device=device,
            pos_slice=pos_slice,
            incl_bwd=incl_bwd,
        )
        try:
            with HookContext(fwd, bwd_pairs=bwd, owner=self.owner):  # as `hooks()` holds it
                out = self(*model_args, **model_kwargs)
                if incl_bwd:
                    backward_of(out, None)
        finally:
            if clear_contexts:
                self.clear_contexts()
        return out, store
