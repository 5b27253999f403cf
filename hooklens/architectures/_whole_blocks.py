"""Blocks kept whole: the residual stream's points on a model whose blocks the template cannot
take apart.

Where `derive` refuses a model for what happens inside its blocks (a residual the block scales
or replaces, sublayer outputs convolved over positions, a mixture of experts hooklens cannot
read, a shared block feeding a mixer), the stream between blocks is often still one
d_model-wide tensor: each block reads it and writes the next. `whole_blocks` describes only
that: the embedding, each block's input and output (`hook_resid_pre`/`hook_resid_post`), the
final norm and the unembedding. Every other point of such a layer raises, naming the reason the
template refused (`LayerLayout.opaque`). A layer that runs attention off the stream, inside a
transformer block it shares with other layers (Zamba, `_shared_attention.py`), also has that
attention's internals (q, k, v, scores, pattern, z). The engine checks this adapter like any
derived one (the logits with every point attached, each block's output entering the next, the
last one unembedding to the logits, and attention's identities where it has attention's
points); a model whose stream is not one tensor (several parallel streams,
prompt tokens the forward adds) fails that check and is refused with the template's reason.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from .._errors import UnsupportedModelError
from ._names import FINAL_NORM, POS_EMBED
from ._no_blocks import sublayered_layers
from ._norms import shared_norm_kind
from ._placement import child, path_of
from ._shared_attention import attention_inside
from ._spec import ArchSpec, text_config
from ._spec_parts import LayerLayout
from ._stream import stream_ends
from ._towers import block_list_candidates

MSG_SUBLAYERED_BLOCKS = (
    "{why}; each of its {k} layers is kept whole as one block: blocks.l is the model's layer l "
    "(cfg.n_layers = {k}), with hook_resid_pre/hook_resid_post only"
)


def whole_blocks(model: nn.Module, why: str) -> ArchSpec:
    """An adapter with each block kept whole (only the stream's points), for a model the
    template refused for `why`; UnsupportedModelError (with `why`) when it has no list of
    blocks between an embedding and a final norm."""
    text = text_config(model.config)
    n_layers = getattr(text, "num_hidden_layers", None)
    embed = path_of(model, model.get_input_embeddings())  # type: ignore[operator]
    unembed = path_of(model, model.get_output_embeddings())  # type: ignore[operator]
    if not isinstance(n_layers, int) or embed is None or unembed is None:
        raise UnsupportedModelError(why)
    lengths = {
        name: len(m)
        for name, m in block_list_candidates(model, embed)
        if name and isinstance(m, nn.ModuleList)
    }
    blocks = next((name for name, n in lengths.items() if n == n_layers), None)
    sublayered = sublayered_layers(model, n_layers) if blocks is None else None
    if sublayered is not None and sublayered[0] in lengths:
        # num_hidden_layers counts attention sublayers (LongCat-Flash): its layers are the blocks
        blocks = sublayered[0]
        why = MSG_SUBLAYERED_BLOCKS.format(why=why, k=lengths[blocks])
    if blocks is None:
        raise UnsupportedModelError(why)
    parent_path = blocks.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    final = child(parent, FINAL_NORM)
    if final is None:
        raise UnsupportedModelError(why)
    prefix = f"{parent_path}." if parent_path else ""
    like = next(model.parameters())
    width = int(getattr(text, "hidden_size", 0) or like.shape[-1])
    norm, offset = shared_norm_kind(model, [parent.get_submodule(final)], width, like)
    pos_embed = child(parent, POS_EMBED)
    all_blocks = list(model.get_submodule(blocks))  # type: ignore[call-overload]
    # attention a layer runs off the stream, in a block shared with other layers (Zamba)
    inside, refused = attention_inside(all_blocks, parent, text)
    rotary = getattr(text, "rope_parameters", None) is not None
    if inside is not None:  # rotary only where q and k are read before a rotation
        rotary = inside.sources is not None
    positional: Literal["learned", "rotary", "none"] = (
        "learned" if pos_embed is not None else "rotary" if rotary else "none"
    )
    reasons = {**refused, **(inside.layers if inside is not None else {})}
    layers = tuple(
        LayerLayout(
            "block",
            "",
            type(b).__name__,
            mlp=False,
            opaque=reasons.get(i, why),
            attends_inside=inside is not None and i in inside.layers,
        )
        for i, b in enumerate(all_blocks)
    )
    return ArchSpec(
        family=str(getattr(model.config, "model_type", type(model).__name__)),
        hf_classes=(type(model).__name__,),
        embed=embed,
        blocks=blocks,
        final_norm=prefix + final,
        unembed=unembed,
        ln1=None,
        attn=inside.attn if inside is not None else "",
        attn_out="",
        mlp_in="",
        mlp_down="",
        mlp_out="",
        ln2=None,
        pos_embed=prefix + pos_embed if pos_embed else None,
        positional=positional,
        norm=norm,  # type: ignore[arg-type]
        norm_weight_offset=offset,
        layers=layers,
        o_proj=inside.o_proj if inside is not None else None,
        q_source=inside.sources[0] if inside is not None and inside.sources else None,
        k_source=inside.sources[1] if inside is not None and inside.sources else None,
        **stream_ends(model, text, embed, blocks, prefix + final),
        derived=True,
    )
