"""Where a block's norms sit, read per layer: a hybrid's layers of different kinds may differ.

A block's norms are found by their names (data in `_names.py`): before attention (`ln1`),
before the MLP (`ln2`), on what attention and the MLP add (output norms). Where no norm reads
the stream and norms sit on the outputs only, the block is post-norm (OLMo 2). OLMo-hybrid
mixes the two: its attention layers are post-norm, its linear-attention layers pre-norm. The
adapter's `ln1`/`ln2`/`attn_out`/`mlp_out` describe the attention layers; a mixer layer whose
norms sit elsewhere gets its own (`LayerLayout.norms`, `LayerLayout.out`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from torch import nn

from ._names import ATTN_OUT_NORM, GATED_NORM, LN1, LN2, MLP_OUT_NORM, PRE_MLP
from ._spec import LayerLayout
from ._spec_parts import is_gated_norm
from ._towers import module_paths

__all__ = [
    "NORM_ROLES",
    "Places",
    "child",
    "gated_norm_names",
    "gated_norms",
    "mixer_norms",
    "places",
    "signature_norm",
]

#: every name a norm of a block may have, whatever its place
NORM_ROLES = frozenset((*LN1, *LN2, *PRE_MLP, *ATTN_OUT_NORM, *MLP_OUT_NORM))


def child(parent: nn.Module, names: tuple[str, ...]) -> str | None:
    """The first of `names` that is a child module of `parent`."""
    return next((n for n in names if isinstance(getattr(parent, n, None), nn.Module)), None)


def path_of(model: nn.Module, target: nn.Module | None) -> str | None:
    """The path of module `target` in `model` (None when it is None or not there)."""
    if target is None:
        return None
    return module_paths(model).get(id(target))


class Places(NamedTuple):
    """A block's norms: before attention, before the MLP, on attention's output (None: none,
    attention's output is what the block adds), on the MLP's output (likewise), post-norm."""

    ln1: str | None
    ln2: str | None
    attn_out: str | None
    mlp_out: str | None
    post_norm: bool


def places(block: nn.Module) -> Places | None:
    """Where `block`'s norms sit; None when it has neither a norm before attention nor norms on
    the outputs only."""
    ln1, pre_mlp = child(block, LN1), child(block, PRE_MLP)
    mlp_out = child(block, MLP_OUT_NORM)
    # post-norm (OLMo 2): no norm reads the stream; norms sit on what attention and MLP add
    post_norm = ln1 is None and pre_mlp is None and mlp_out is not None
    if ln1 is None and not post_norm:
        return None
    if post_norm or pre_mlp is not None:  # sandwich norms: post_attention_layernorm is an
        ln2 = pre_mlp  # output norm
        attn_out = child(block, ("post_attention_layernorm", *ATTN_OUT_NORM))
    else:
        ln2, attn_out = child(block, LN2), child(block, ATTN_OUT_NORM)
    return Places(ln1, ln2, attn_out, mlp_out, post_norm)


def mixer_norms(
    blocks: list[nn.Module], layers: tuple[LayerLayout, ...], template: Places, mlp: str | None
) -> tuple[LayerLayout, ...] | str:
    """`layers` with each mixer layer's own norms where they sit elsewhere than the attention
    layers' (`template`), or why the layers cannot be described (an attention layer whose norms
    differ from the template's, or a layer with no norm before its mixer nor on its outputs)."""
    found = []
    for i, (block, lay) in enumerate(zip(blocks, layers, strict=True)):
        own = places(block)
        if own == template or lay.kind in ("mlp", "skipped"):
            found.append(lay)
            continue
        if lay.kind == "attention" or own is None:
            return f"its layers' norms differ (layer {i}: {own}, not {template})"
        mid = own.ln2 if not own.post_norm else mlp
        norms = (own.ln1, own.ln2, own.mlp_out or mlp or "", mid)
        found.append(replace(lay, out=own.attn_out, norms=norms))
    return tuple(found)


MSG_GATED = (
    "layer {i}'s {names} ({kinds}) hold{s} a projection ({inner}): a norm followed by an "
    "input-dependent gate computed from its output, not a norm, so its hook_scale and "
    "hook_normalized would not have a norm's meaning (x / scale times a weight) and an edit of "
    "the scale would not act as it does on a norm"
)


def gated_norm_names(blocks: list[nn.Module]) -> tuple[str, str] | None:
    """`_names.GATED_NORM` where a norm's place in one of `blocks` holds a gated norm, else
    None (`ArchSpec.gated_norm`)."""
    found = any(
        is_gated_norm(c, GATED_NORM)
        for block in blocks
        for n, c in block.named_children()
        if n in NORM_ROLES
    )
    return GATED_NORM if found else None


def signature_norm(block: nn.Module, name: str) -> nn.Module:
    """The norm a block's layout is compared by at `name`: a gated norm's inner norm (layers
    may gate some norms and not others: AXK2's dense layers' post_attention_layernorm)."""
    module = block.get_submodule(name)
    return module.get_submodule(GATED_NORM[0]) if is_gated_norm(module, GATED_NORM) else module


def gated_norms(block: nn.Module, i: int) -> str | None:
    """Why layer `i` cannot be described when a module in a norm's place holds a projection of
    its own, other than a gated norm hooklens describes (`_names.GATED_NORM`), or None."""
    gated = {
        n: [p for p, m in c.named_modules() if isinstance(m, nn.Linear)]
        for n, c in block.named_children()
        if n in NORM_ROLES and not is_gated_norm(c, GATED_NORM)
    }
    gated = {n: inner for n, inner in gated.items() if inner}
    if not gated:
        return None
    kinds = ", ".join(type(block.get_submodule(n)).__name__ for n in gated)
    inner = ", ".join(f"{n}.{p}" for n, ps in gated.items() for p in ps[:2])
    s = "s" if len(gated) == 1 else ""
    return MSG_GATED.format(i=i, names=" and ".join(gated), kinds=kinds, s=s, inner=inner)
