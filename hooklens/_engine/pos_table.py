"""Positions from a table the model indexes itself: `hook_pos_embed` without a module.

CTRL adds rows of a fixed sinusoidal table (a buffer, `pos_encoding`) to the scaled token
embedding in its model's forward, with no position module to hook. `ArchSpec.pos_table` names
the buffer and the module whose input is the embeddings' sum (CTRL's `dropout`). A pre-hook on
the buffer's owner (the model holding the blocks) records the positions of the call: its
`position_ids`, else those after the key/value cache's length, as the model computes them. A
pre-hook on the summing module then fires `hook_pos_embed` with those rows (batch, pos,
d_model) and adds what an edit changed to that module's input, so the stream entering block 0
is `hook_embed + hook_pos_embed` (edited) as with a position module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import module_hooks
from .partial import _CACHE_NAMES
from .sites import get_module

if TYPE_CHECKING:
    from .sites import Builder

__all__ = ["pos_table_site", "table_rows"]


def table_rows(model: nn.Module, path: str) -> torch.Tensor:
    """The table (n_ctx, d_model) at `path` (a buffer of a module of `model`)."""
    owner, _, name = path.rpartition(".")
    table = getattr(get_module(model, owner) if owner else model, name)
    if not isinstance(table, torch.Tensor):
        raise TypeError(f"{path} is not a tensor of position rows")
    return table


def _positions(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The position ids of one call of the model holding the blocks: (batch or 1, pos)."""
    ids = kwargs.get("position_ids")
    if isinstance(ids, torch.Tensor):
        return ids.reshape(-1, ids.shape[-1])
    x = kwargs.get("input_ids", args[0] if args else None)
    x = x if isinstance(x, torch.Tensor) else kwargs["inputs_embeds"]
    cache = next((kwargs[k] for k in _CACHE_NAMES if kwargs.get(k) is not None), None)
    past = int(cache.get_seq_length()) if cache is not None else 0
    return torch.arange(past, past + x.shape[1], device=x.device)[None]


def pos_table_site(b: Builder) -> None:
    """`hook_pos_embed` of a model whose positions are rows of a table (`ArchSpec.pos_table`)."""
    assert b.spec.pos_table is not None
    table_path, summed_path = b.spec.pos_table
    owner = get_module(b.model, table_path.rpartition(".")[0])
    summed = get_module(b.model, summed_path)
    seen: list[torch.Tensor] = []

    def install() -> list[Any]:
        return [
            module_hooks.pre_hook(owner, record, with_kwargs=True),
            module_hooks.pre_hook(summed, add),
        ]

    point = b._new("hook_pos_embed", None, b._site(install))
    if point is None:
        return

    def record(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen[:] = [_positions(args, kwargs)]

    def add(mod: nn.Module, args: tuple[Any, ...]) -> Any:
        x = args[0]
        ids = seen[0].to(x.device).expand(x.shape[0], -1)
        rows = table_rows(b.model, table_path).to(x.device, x.dtype)[ids]  # (batch, pos, d)
        new = point.fire(rows.clone())  # the point's copy: an edit in place changes it only
        return (x + (new - rows).reshape(x.shape), *args[1:])  # + 0 where nothing was edited
