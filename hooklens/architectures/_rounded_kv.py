"""Attention that rounds its keys and values after computing them and before attending
(Kolibri 1.1's sparse layers: NVFP4, with a straight-through gradient).

The rounding function is found as data (`KV_ROUNDING`): a function of the attention class's
module that its forward calls. Which layers round is decided inside the forward, so it is read
from one forward of a few tokens: a layer rounds where its attention function is handed the
rounding of the values the layer computed (or reuses), not those values themselves.

What the points mean there (`ArchSpec.kv_rounded`):
- `hook_k` and `hook_v` are the keys and values as computed (`ln1.hook_normalized @ W_V` for
  the values), read before the rounding and before they are handed on to a layer that reuses
  them, so an edit there goes through the rounding, as the model's own values do;
- `hook_rot_k` is what the scores read (the rounded keys), and `hook_rounded_v` the rounded
  values, what `hook_z` is made of;
- a layer that reuses rounded values has no `hook_v` (its values before the rounding are the
  source layer's), as it has no `hook_k`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._engine.proj_layout import split_parts
from ._attn_probe import run_probed
from ._kv_sharing import value_source
from ._names import KV_ROUNDING
from ._spec_parts import Proj

__all__ = ["MSG_NO_VALUES", "MSG_ROUNDED", "kv_rounding", "rounded_kv"]

MSG_ROUNDED = (
    "its attention {cls} rounds keys and values ({fn}) before attending, and on layer {layer} "
    "it attends to values that are neither the ones it computed{reused} nor their rounding, so "
    "hooklens cannot tell where its hook_v would be"
)

MSG_NO_VALUES = (
    "its attention {cls} rounds keys and values ({fn}) before attending, and has no value "
    "projection (or value norm) whose output hooklens could read as hook_v before the rounding"
)


def kv_rounding(attn_mod: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The function `attn_mod`'s forward rounds keys and values with, or None."""
    cls = type(attn_mod)
    if cls not in _FOUND:  # its forward's source is read once per class
        _FOUND[cls] = _rounding_of(cls)
    return _FOUND[cls]


_FOUND: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor] | None] = {}


def _rounding_of(cls: type[nn.Module]) -> Callable[[torch.Tensor], torch.Tensor] | None:
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


def rounded_kv(
    model: nn.Module, blocks: Sequence[nn.Module], attending: Sequence[int], attn: str,
    attn_mod: nn.Module | None, v_source: Proj | None, kv_reused: tuple[tuple[int, int], ...],
) -> tuple[tuple[int, ...], Proj | None] | str:  # fmt: skip
    """(the attending layers that round their keys and values, where their values are read
    before the rounding): ((), `v_source`) where the attention rounds nothing; a reason to
    refuse where a layer attends to values hooklens cannot place."""
    rounding = kv_rounding(attn_mod) if attn_mod is not None else None
    if attn_mod is None or rounding is None:
        return (), v_source
    v_source = v_source or value_source(model, attn_mod, attn)
    if v_source is None or v_source.layout not in ("flat", "bphd", "bhpd"):
        return MSG_NO_VALUES.format(cls=type(attn_mod).__name__, fn=rounding.__name__)
    reused = dict(kv_reused)
    handed, computed = _values(model, blocks, attending, attn, v_source, reused)
    found: list[int] = []
    for layer in attending:
        value, own = handed.get(layer), computed.get(reused.get(layer, layer))
        if value is not None and own is not None:
            # per head, as the attention function takes them: (batch, heads, pos, d_head)
            own = split_parts(own, v_source.layout, 0, 0, 0, value.shape[-1])[0].transpose(1, 2)
            if own.shape == value.shape and torch.equal(value, own):
                continue
            if own.shape == value.shape and _close(value, rounding(own)):
                found.append(layer)
                continue
        source = f" (or layer {reused[layer]} handed on)" if layer in reused else ""
        return MSG_ROUNDED.format(
            cls=type(attn_mod).__name__, fn=rounding.__name__, layer=layer, reused=source
        )
    return tuple(found), v_source


def _values(
    model: nn.Module, blocks: Sequence[nn.Module], attending: Sequence[int], attn: str,
    v_source: Proj, reused: dict[int, int],
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:  # fmt: skip
    """({layer: the values its attention function is handed}, {layer: the output of its
    `v_source`}) from one forward of a few tokens."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layer_of = {id(blocks[i].get_submodule(attn)): i for i in attending}
    handed: dict[int, torch.Tensor] = {}
    computed: dict[int, torch.Tensor] = {}

    def probe(module: nn.Module, query: Any, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        if (layer := layer_of.get(id(module))) is not None:
            handed.setdefault(layer, value)
        return sdpa_attention_forward(module, query, key, value, *args, **kw)

    def keep(layer: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            computed.setdefault(layer, out)

        return hook

    own = [i for i in attending if i not in reused]
    handles = [blocks[i].get_submodule(v_source.module).register_forward_hook(keep(i)) for i in own]
    try:
        run_probed(model, blocks[attending[0]].get_submodule(attn), probe)
    finally:
        for handle in handles:
            handle.remove()
    return handed, computed


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """`got` is `want` up to the rounding of adding and taking away the same difference (the
    straight-through `v + (rounding(v) - v).detach()`), in `want`'s dtype."""
    tol = 1e-5 if want.dtype == torch.float32 else 2e-2
    return bool((got.float() - want.float()).abs().max() <= tol * (1 + want.float().abs().max()))
