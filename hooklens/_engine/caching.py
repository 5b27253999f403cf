"""The hook functions behind `run_with_cache`: activations and, with `incl_bwd`, gradients.

Cached tensors are detached; `remove_batch_dim` drops the batch axis, `device` moves them and
`pos_slice` keeps some positions (TransformerLens's `run_with_cache(pos_slice=)`: the pos axis
of each point's shape; the query axis of patterns and scores). Gradients are stored as
`name + "_grad"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._errors import InputError
from .hooks import HookFn, HookPoint, reads_only
from .points import POINTS_BY_SUFFIX, split_name

PosSlice = int | slice | Sequence[int] | torch.Tensor | None


def pos_axis(name: str) -> int:
    """The (negative) position axis of the activation at hook `name` (query axis for patterns)."""
    row = POINTS_BY_SUFFIX.get(split_name(name.removesuffix("_grad"))[1])
    if row is None:
        return -2
    shape = row.shape
    axis = shape.index("pos") if "pos" in shape else shape.index("q")
    return axis - len(shape)


def slice_axis(t: torch.Tensor, pos_slice: PosSlice, dim: int) -> torch.Tensor:
    """TransformerLens's `Slice.apply`: int (the axis goes), slice, (start, stop[, step]) tuple,
    or a list / tensor of indices."""
    if pos_slice is None:
        return t
    if isinstance(pos_slice, tuple):
        pos_slice = slice(*pos_slice)
    if isinstance(pos_slice, list | torch.Tensor):
        index = torch.as_tensor(pos_slice, device=t.device)
        return t.index_select(dim, index.reshape(-1)) if index.ndim else t.select(dim, int(index))
    index_: list[Any] = [slice(None)] * t.ndim
    index_[dim] = pos_slice
    return t[tuple(index_)]


def saving_hooks(
    points: list[HookPoint],
    *,
    remove_batch_dim: bool,
    device: str | torch.device | None,
    pos_slice: PosSlice,
    incl_bwd: bool,
) -> tuple[dict[str, torch.Tensor], list[tuple[HookPoint, HookFn]], list[tuple[HookPoint, HookFn]]]:
    """(store, forward pairs, backward pairs) that fill `store` during a run."""
    store: dict[str, torch.Tensor] = {}
    target = torch.device(device) if device is not None else None

    def keep(name: str, x: torch.Tensor) -> None:
        t = x.detach()
        if remove_batch_dim:
            t = t[0]
        if pos_slice is not None:
            t = slice_axis(t, pos_slice, pos_axis(name))
        if target is not None and t.device != target:
            t = t.to(target)
        store[name] = t

    @reads_only
    def save(x: torch.Tensor, hook: HookPoint) -> None:
        keep(hook.name, x)

    @reads_only
    def save_as_is(x: torch.Tensor, hook: HookPoint) -> None:
        # the common call: the tensor itself where it is in no graph (no_grad, inference), a
        # detached alias of it where it is (`detach` is a dispatched op: microseconds a point)
        store[hook.name] = x.detach() if x.requires_grad else x

    def save_grad(g: torch.Tensor, hook: HookPoint) -> None:
        keep(hook.name + "_grad", g)

    as_is = not remove_batch_dim and pos_slice is None and target is None
    fn = save_as_is if as_is else save
    fwd: list[tuple[HookPoint, HookFn]] = [(p, fn) for p in points]
    bwd: list[tuple[HookPoint, HookFn]] = [(p, save_grad) for p in points] if incl_bwd else []
    return store, fwd, bwd


def drop_unused_storage(store: dict[str, torch.Tensor]) -> int:
    """Clone the cached views that would keep a much bigger tensor alive; return the bytes the
    cache then keeps on CPU (each storage once).

    q, k and v are often slices of one fused projection's output: cached together they cover
    it, so they stay views (no copy); a lone slice is cloned so only what was asked is kept.
    """
    kept: dict[int, int] = {}  # storage address -> bytes, of the CPU storages kept whole
    partial: list[tuple[str, torch.Tensor, Any]] = []
    whole_elsewhere: list[Any] = []  # storages kept whole off the CPU: addresses only if needed
    for name, t in store.items():
        storage = t.untyped_storage()
        nbytes = t.nbytes  # read once: each read is a call into torch, per point and call
        if nbytes == storage.nbytes():  # most points: a tensor of its own; nothing to weigh
            if t.is_cpu:
                kept[storage.data_ptr()] = nbytes
            else:
                whole_elsewhere.append(storage)
        else:
            partial.append((name, t, storage))
    if not partial:
        return sum(kept.values())
    whole = set(kept) | {storage.data_ptr() for storage in whole_elsewhere}
    covered: dict[int, int] = {}
    for _, t, storage in partial:
        key = storage.data_ptr()
        covered[key] = covered.get(key, 0) + t.nbytes
    cloned = 0
    for name, t, storage in partial:
        key = storage.data_ptr()
        if key not in whole and storage.nbytes() > 1.25 * covered[key]:
            store[name] = t.clone()
            cloned += t.nbytes if t.is_cpu else 0
        elif t.is_cpu:
            kept[key] = storage.nbytes()
    return sum(kept.values()) + cloned


def in_model_order(
    store: dict[str, torch.Tensor], order: dict[str, int]
) -> dict[str, torch.Tensor]:
    """`store` (point names, and `name + "_grad"` for gradients) in the model's order (`order`:
    point name -> position), each gradient after every activation; sorts the cached names
    only (a filter may select a few points of hundreds)."""

    def position(name: str) -> int:
        if name in order:
            return order[name]
        return len(order) + order[name.removesuffix("_grad")]

    try:  # activations only, the usual cache: the order's own lookup, with no call per name
        names = sorted(store, key=order.__getitem__)
    except KeyError:
        names = sorted(store, key=position)
    return {name: store[name] for name in names}


def backward_of(out: Any, return_type: str | None) -> None:
    """`out.backward()` for `run_with_cache(incl_bwd=True)`; the output must be a scalar."""
    loss = out if isinstance(out, torch.Tensor) else None
    if loss is None or loss.ndim != 0 or not loss.requires_grad:
        raise InputError(
            f"incl_bwd=True runs the backward of the output, which must be a scalar with a "
            f"gradient; return_type={return_type!r} gives "
            f"{'a tensor of shape ' + str(tuple(loss.shape)) if loss is not None else 'no tensor'}"
            '. Use return_type="loss", or run_with_hooks(..., bwd_hooks=...) and call '
            "backward on your own metric."
        )
    loss.backward()
