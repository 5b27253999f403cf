"""The last block of a run whose metric reads only the last position: its MLP runs on that row.

A sweep whose metric reads the last position's logits (a logit difference, TransformerLens's
usual lambda) needs the last block's output at the last position alone. Its attention still
needs every position's keys and values, but its MLP, per position and most of a block's work,
does not: while the block runs, the MLP module's input is cut to the last row and its output
padded back with zeros, so the block's other rows are wrong and unused (the run keeps only the
last one). It is done only where nothing can see those rows: no hook on the block's MLP or
on what follows it (`hook_mlp_in`, `ln2`, `mlp.*`, `hook_mlp_out`, `hook_resid_post`), an MLP
module that takes the normalized stream alone (not also the residual, as BLOOM's adds inside),
one MLP per block (no module beside it) and pre-LN blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from . import module_hooks
from .sites import _first

#: points of a block that see what the MLP reads or adds (a hook there disables the cut)
_AFTER_ATTENTION = ("hook_mlp_in", "ln2.", "mlp.", "hook_mlp_out", "hook_resid_post")


def _visible(model: Any, layer: int) -> bool:
    prefix = f"blocks.{layer}."
    return any(
        point.active
        for name, point in model.hook_dict.items()
        if name.startswith(prefix) and name[len(prefix) :].startswith(_AFTER_ATTENTION)
    )


def _cuttable(model: Any, layer: int) -> nn.Module | None:
    """The MLP module of block `layer` if its rows can be cut, else None."""
    spec = model.spec
    layouts = spec.layers or ()
    has_mlp = not layouts or layouts[layer].mlp
    if not has_mlp or spec.post_ln or spec.mlp_beside is not None or _visible(model, layer):
        return None
    block = model.hf_model.get_submodule(spec.blocks)[layer]
    return block.get_submodule(spec.mlp_out)


def _padded(t: torch.Tensor, batch: int, n_rows: int) -> torch.Tensor | None:
    """The MLP's output for the last row, `t`, as its output for `n_rows` rows (zeros before):
    (batch, 1, ...) or flattened over tokens (batch, ...); None for another layout."""
    if t.ndim >= 3 and t.shape[:2] == (batch, 1):
        padded = t.new_zeros(batch, n_rows, *t.shape[2:])
        padded[:, -1:] = t
        return padded
    if t.ndim == 2 and t.shape[0] == batch:  # tokens flattened (Llama 4's MoE)
        padded = t.new_zeros(batch, n_rows, t.shape[1])
        padded[:, -1] = t
        return padded.view(batch * n_rows, t.shape[1])
    return None


@contextmanager
def _cut(mlp: nn.Module) -> Iterator[None]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    rerunning = [False]

    def before(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if rerunning[0] or len(tensors) != 1 or tensors[0].ndim != 3 or not args:
            return None  # the stream alone, first, or nothing is cut
        calls.append((args, kwargs))
        return (args[0][:, -1:], *args[1:]), kwargs

    def after(module: nn.Module, args: Any, out: Any) -> Any:
        if rerunning[0] or not calls:
            return None
        full_args, kwargs = calls.pop()
        stream = full_args[0]
        padded = _padded(_first(out), stream.shape[0], stream.shape[1])
        if padded is None:  # an output layout not understood: the MLP again, on every row
            rerunning[0] = True
            try:
                return module(*full_args, **kwargs)
            finally:
                rerunning[0] = False
        return padded if isinstance(out, torch.Tensor) else (padded, *out[1:])

    handles = [
        module_hooks.pre_hook(mlp, before, with_kwargs=True),
        module_hooks.forward_hook(mlp, after),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def last_row_mlp(model: Any, layer: int, last_only: bool) -> Any:
    """A context in which block `layer`'s MLP runs on the last position only, when the run keeps
    only that position's output of this, the last, block (else a context that does nothing)."""
    if not last_only or layer != model.cfg.n_layers - 1:
        return nullcontext()
    mlp = _cuttable(model, layer)
    return nullcontext() if mlp is None else _cut(mlp)
