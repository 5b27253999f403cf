"""Attention inside a transformer block that several layers share, off the residual stream.

Zamba and Zamba 2 give some layers ("hybrid" layers) a transformer block shared with other
layers (`_hybrid.SHARED_BLOCKS`; one set of weights, tied, or one module object): the layer
runs it on the stream and the token embeddings side by side (normalized as one), projects its
output with a linear map of its own and adds that to its Mamba mixer's input. The Mamba block
alone writes the stream. Such a layer is kept whole (`_whole_blocks.py`), and its attention's
internals (q, k, v, scores, pattern, z) are still what they are in any attention: `attention_inside`
finds that attention and where its pre-rotary q and k can be read, so the layer gets those
points (`LayerLayout.attends_inside`), served at each call it makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ._hybrid import SHARED_BLOCKS, _is_attention
from ._names import ATTN, O_PROJ
from ._placement import child
from ._spec_parts import Proj

#: Children of the model next to its blocks that rotate q and k (present only where the
#: attention is rotary: Zamba 2's `rotary_emb` exists when `use_mem_rope` is set).
ROTARY_EMB = ("rotary_emb", "rotary_embedding")
#: The projections of an attention module: any other child with weights changes q, k or v
#: beside them (Zamba 2's per-layer adapters, added to the projections' outputs).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", *O_PROJ)

MSG_INSIDE = (
    "its attention belongs to a transformer block it shares with other layers ({shared}), "
    "which it runs on the stream and the token embeddings together (normalized as one) and "
    "whose output, through the layer's own linear map, is added to the input of its Mamba "
    "mixer, not to the residual stream: nothing attention or that block's MLP computes is "
    "added to the stream (so no hook_attn_out, hook_mlp_out or per-head hook_result), and "
    "attention does not read the stream through a norm of its own (so no ln1 points and no "
    "W_Q/W_K/W_V over d_model); the stream's only writer is the layer's Mamba block "
    "(hook_resid_post - hook_resid_pre)"
)
MSG_ADAPTED = (
    "its attention, in a transformer block it shares with other layers ({shared}), adds "
    "per-layer adapters ({adapters}) to its q and k projections' outputs and then rotates "
    "them, so no module outputs pre-rotary q and k (hook_q, hook_k)"
)


@dataclass(frozen=True)
class Inside:
    """The attention the layers in `layers` call off the stream: its block path `attn`, its
    output projection `o_proj` (its input is z), where pre-rotary q and k are read (`sources`;
    None: what the attention function receives, nothing rotates them), and each layer's
    reason (`LayerLayout.opaque`) for what it lacks."""

    attn: str
    o_proj: str | None
    sources: tuple[Proj, Proj] | None
    layers: dict[int, str]


def attention_inside(
    blocks: list[nn.Module], parent: nn.Module, text: Any
) -> tuple[Inside | None, dict[int, str]]:
    """(the attention that layers run inside a shared block, or None; why each layer that runs
    one has no attention points, where it cannot have them)."""
    found: dict[int, str] = {}
    refused: dict[int, str] = {}
    rotary = getattr(text, "rope_parameters", None) is not None and any(
        isinstance(getattr(parent, n, None), nn.Module) for n in ROTARY_EMB
    )
    for i, block in enumerate(blocks):
        shared = child(block, SHARED_BLOCKS)
        if shared is None:
            continue
        inner = block.get_submodule(shared)
        attn = child(inner, ATTN)
        if attn is None or not _is_attention(inner.get_submodule(attn)):
            continue
        attn_mod = inner.get_submodule(attn)
        adapters = [
            n
            for n, m in attn_mod.named_children()
            if n not in PROJECTIONS and any(True for _ in m.parameters())
        ]
        if rotary and adapters:
            refused[i] = MSG_ADAPTED.format(shared=shared, adapters=", ".join(adapters))
            continue
        found[i] = f"{shared}.{attn}"
    paths = set(found.values())
    if len(paths) != 1:  # none, or at different paths (one adapter path for every layer)
        return None, refused
    (path,) = paths
    attn_mod = blocks[next(iter(found))].get_submodule(path)
    o_proj = child(attn_mod, O_PROJ)
    names = {n for n, _ in attn_mod.named_children()}
    sources = (
        (Proj(f"{path}.q_proj"), Proj(f"{path}.k_proj"))
        if rotary and {"q_proj", "k_proj"} <= names
        else None
    )
    if rotary and sources is None:
        return None, {**refused, **dict.fromkeys(found, "its shared attention's q and k are fused")}
    reasons = {i: MSG_INSIDE.format(shared=p.rpartition(".")[0]) for i, p in found.items()}
    return Inside(path, f"{path}.{o_proj}" if o_proj else None, sources, reasons), refused
