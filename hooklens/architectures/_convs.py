"""Convolutions over positions around a block's parts (Inkling's short convolutions).

Inkling convolves the key and value projections' outputs over positions before the attention
function reads them, and what attention and the MLP output before the block adds it (each a
causal depthwise convolution plus its input). Where they sit is read from the block's modules
by name (`_names.py`: `QKV_CONV`, `ATTN_OUT_CONV`, `MLP_OUT_CONV`), each confirmed to hold a
convolution. The adapter then reads q, k and v where the attention function receives them and
the parts' outputs after the convolutions (`ArchSpec.convs`); what no longer holds (a weight
that gives a point, a head's or neuron's result at a position) raises naming the convolution
(`MSG_CONV_*`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._names import ATTN_OUT_CONV, MLP_OUT_CONV, QKV_CONV
from ._placement import child
from ._spec_parts import ConvRole

__all__ = [
    "MSG_CONV_OUT", "MSG_CONV_QKV", "block_convs", "conv_message", "mixes_positions",
    "refuse_convolved",
]  # fmt: skip

MSG_CONV_OUT = (
    "{family}'s {part} output passes {path} ({kind}), a convolution over positions, before the "
    "block adds it to the residual stream, so what the {part} adds at a position mixes its "
    "outputs at earlier positions: {what} does not exist (no {unit}'s result at a position is "
    "what it adds there). hook_{short}_out is exact (after {path}); read it, or "
    "cache.decompose_resid(), whose components are what each sublayer added."
)
MSG_CONV_QKV = (
    "{family}'s attention passes {x}_proj's output through {path} ({kind}), a convolution over "
    "positions, before the attention function reads it, so {what} does not give "
    "attn.hook_{x} (each {noun} mixes the projections of earlier positions). "
    "Read attn.hook_{x}, what the attention function receives."
)


def mixes_positions(module: nn.Module) -> bool:
    """Whether `module` holds a convolution (over positions, in a causal LM's block)."""
    return any(isinstance(m, nn.Conv1d) for m in module.modules())


def block_convs(
    block: nn.Module, attn: str | None, mlp: str | None
) -> tuple[tuple[ConvRole, str], ...]:
    """(role, block path) of each convolution over positions in `block` (`ArchSpec.convs`)."""
    found: list[tuple[ConvRole, str]] = []
    attn_mod = block.get_submodule(attn) if attn else None
    for role, names in QKV_CONV.items():
        name = child(attn_mod, names) if attn_mod is not None else None
        if name and mixes_positions(attn_mod.get_submodule(name)):  # type: ignore[union-attr]
            found.append((role, f"{attn}.{name}"))  # type: ignore[arg-type]
    outs: tuple[tuple[ConvRole, tuple[str, ...]], ...] = (
        ("attn_out", ATTN_OUT_CONV),
        ("mlp_out", MLP_OUT_CONV if mlp else ()),
    )
    for role, candidates in outs:
        name = child(block, candidates)
        if name and mixes_positions(block.get_submodule(name)):
            found.append((role, name))
    return tuple(found)


def conv_message(spec: Any, block: nn.Module, role: ConvRole, what: str) -> str | None:
    """Why `what` does not exist where the convolution on `role` sits (None: no such
    convolution). `block` is one of the model's blocks (its class is named)."""
    path = spec.conv(role)
    if path is None:
        return None
    kind = type(block.get_submodule(path)).__name__
    if role in ("attn_out", "mlp_out"):
        part, unit = ("attention", "head") if role == "attn_out" else ("MLP", "neuron")
        short = role.partition("_")[0]
        return MSG_CONV_OUT.format(family=spec.family, part=part, path=path, kind=kind,
                                   what=what, unit=unit, short=short)  # fmt: skip
    noun = {"q": "query", "k": "key", "v": "value"}[role]
    return MSG_CONV_QKV.format(family=spec.family, x=role, path=path, kind=kind, what=what,
                               noun=noun)  # fmt: skip


def refuse_convolved(spec: Any, block: nn.Module, role: str, what: str) -> None:
    """Raise ValueError (`conv_message`) where a convolution over positions sits on `role`."""
    if (message := conv_message(spec, block, role, what)) is not None:  # type: ignore[arg-type]
        raise ValueError(message)
