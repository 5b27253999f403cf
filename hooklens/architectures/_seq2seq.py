"""Derive adapters for the decoders of sequence-to-sequence families used as causal LMs.

BART's decoder layer (and Marian's, MVP's, PLBART's, BlenderbotSmall's, TrOCR's) has the same
modules as Pegasus's or mBART's (`self_attn`, `self_attn_layer_norm`, `fc1`/`fc2`,
`final_layer_norm`, an `encoder_attn` a causal LM never calls), but normalizes *after* each
residual addition (post-LN, as BERT does) and has no norm after its last layer: the last
layer's `final_layer_norm` output is the unembedding's input. Which of the two a model is
cannot be told from names, so it is read from the order the modules run in one forward of
three tokens: post-LN when attention runs before `self_attn_layer_norm`. The same forward says
what the embedding norm next to the token embedding (`layernorm_embedding`) normalizes: the
sum of token and position embeddings (BART: the stream entering block 0 is its output), the
token embedding alone (BlenderbotSmall: positions are added after it), or the last block's
output (BigBird-Pegasus: it is the final norm). A factor the decoder applies to the token
embedding outside the embedding module (Marian's `embed_scale`) is read from the decoder.

`is_post_ln_decoder` tells the two apart, `derive_post_ln_decoder` builds the post-LN adapter,
and `with_embeddings` adds the embedding's norm and scale to an adapter `derive` found for a
pre-LN decoder (mBART). The engine checks every one against the model's forward.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask, split_heads
from ._derive import _child, _find_blocks, _path_of, _refuse
from ._encoder import _has
from ._names import (
    EAGER_SEQ2SEQ_ATTENTION,
    EMBED_NORM,
    EMBED_SCALE_ATTR,
    POS_EMBED,
    POST_LN_DECODER_BLOCK,
)
from ._norms import shared_norm_kind
from ._run_order import _run_order, _same
from ._spec import ArchSpec, text_config


def _layout(model: nn.Module) -> tuple[str, str, str] | None:
    """(embedding path, blocks path, blocks' parent path) where block 0 has every role of
    `POST_LN_DECODER_BLOCK`, else None."""
    n_layers = getattr(text_config(getattr(model, "config", None)), "num_hidden_layers", None)
    get_embed = getattr(model, "get_input_embeddings", None)
    if not isinstance(n_layers, int) or n_layers < 1 or get_embed is None:
        return None
    embed = _path_of(model, get_embed())
    if embed is None:
        return None
    try:
        blocks = _find_blocks(model, n_layers, embed)
    except Exception:  # no list of blocks: not this template
        return None
    block = model.get_submodule(blocks)[0]  # type: ignore[index]
    if not all(_has(block, p) for p in POST_LN_DECODER_BLOCK.values()):
        return None
    return embed, blocks, blocks.rpartition(".")[0]


def is_post_ln_decoder(model: nn.Module) -> bool:
    """Whether `model`'s blocks are BART's: attention, then the norm of the stream plus its
    output (read from the order they run)."""
    found = _layout(model)
    if found is None:
        return False
    block = model.get_submodule(found[1])[0]  # type: ignore[index]
    roles = POST_LN_DECODER_BLOCK
    seen = _run_order(model, {k: block.get_submodule(roles[k]) for k in ("attn", "ln1")}, block)
    return "attn" in seen and "ln1" in seen and seen["attn"][0] < seen["ln1"][0]


def _embedding_parts(model: nn.Module, embed: str, blocks: str, parent: str) -> dict[str, Any]:
    """The embedding's norm (as `embed_sum_norm` or `embed_norm`, or None where it is the
    final norm or absent), its scale outside the embedding module, and the positions."""
    owner = model.get_submodule(parent) if parent else model
    pos = _child(owner, POS_EMBED)
    norm = _child(owner, EMBED_NORM)
    all_blocks = model.get_submodule(blocks)
    watch = {"block0": all_blocks[0], "last": all_blocks[-1]}  # type: ignore[index]
    if norm is not None:
        watch["norm"] = owner.get_submodule(norm)
    seen = _run_order(model, watch)
    parts: dict[str, Any] = {"pos_embed": f"{parent}.{pos}" if pos else None}
    path = f"{parent}.{norm}" if norm else None
    before = norm is not None and "norm" in seen and seen["norm"][0] < seen["block0"][0]
    if before and _same(seen["norm"][2], seen["block0"][1]):
        parts["embed_sum_norm"] = path  # BART: the sum of token and position embeddings
    elif before:
        parts["embed_norm"] = path  # BlenderbotSmall: the token embedding, before positions
    # a factor the decoder applies to the token embedding's output (not inside the module)
    emb = model.get_submodule(embed)
    on_module = any(hasattr(emb, a) for a in EMBED_SCALE_ATTR)
    factor = next((getattr(owner, a) for a in EMBED_SCALE_ATTR if hasattr(owner, a)), None)
    if not on_module and "embed_norm" not in parts and isinstance(factor, float | int):
        parts["embed_scale_at"] = parent
    return parts


def derive_post_ln_decoder(model: nn.Module) -> ArchSpec:
    """An adapter for a post-LN sequence-to-sequence decoder (BART), checked later against the
    model's forward: TransformerLens's BertBlock points, and no final norm."""
    config: Any = model.config
    found = _layout(model)
    unembed = _path_of(model, model.get_output_embeddings())  # type: ignore[operator]
    if found is None or unembed is None:
        raise _refuse(model, "no input or output embedding module, or no BART decoder layers")
    embed, blocks, parent = found
    roles = POST_LN_DECODER_BLOCK
    block = model.get_submodule(blocks)[0]  # type: ignore[index]
    parts = _embedding_parts(model, embed, blocks, parent)
    if parts["pos_embed"] is None:
        raise _refuse(model, f"no position embedding next to {blocks} ({', '.join(POS_EMBED)})")
    like = next(model.parameters())
    width = int(config.hidden_size)
    norms = [block.get_submodule(roles["ln1"]), block.get_submodule(roles["ln2"])]
    for key in ("embed_sum_norm", "embed_norm"):
        norms += [model.get_submodule(parts[key])] if parts.get(key) else []
    norm, offset = shared_norm_kind(model, norms, width, like)
    return ArchSpec(
        family=str(getattr(config, "model_type", type(model).__name__)),
        hf_classes=(type(model).__name__,),
        embed=embed,
        blocks=blocks,
        final_norm=None,
        unembed=unembed,
        ln1=roles["ln1"],
        attn=roles["attn"],
        attn_out=roles["attn"],
        ln2=roles["ln2"],
        mlp_in=roles["mlp_in"],
        mlp_down=roles["mlp_down"],
        mlp_out=roles["mlp_down"],
        resid_mid_at=roles["ln1"],
        o_proj=roles["o_proj"],
        qkv=(roles["q"], roles["k"], roles["v"]),
        positional="learned",
        norm=norm,  # type: ignore[arg-type]
        norm_weight_offset=offset,
        post_ln=True,
        **parts,
        attn_forward=_eager_forward
        if type(block.get_submodule(roles["attn"])).__name__ in EAGER_SEQ2SEQ_ATTENTION
        else None,
        derived=True,
    )


def _eager_forward(
    self: Any,
    hidden_states: torch.Tensor,
    key_value_states: torch.Tensor | None = None,
    cache: Any = None,
    attention_mask: torch.Tensor | None = None,
    attn_prompt: torch.Tensor | None = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The eager self-attention of `EAGER_SEQ2SEQ_ATTENTION` (MVP, TrOCR), with attention
    computed by hooklens's function: q, k, v from `q_proj`/`k_proj`/`v_proj`, scores scaled by
    the module's `scaling` (which the module applies to q; `hook_q` is q before it), the model's
    mask added, `out_proj` on z."""
    if key_value_states is not None:
        raise NotImplementedError("hooklens serves self-attention only, not cross-attention")
    if attn_prompt is not None:
        raise NotImplementedError(
            "hooklens does not serve MVP's prompt keys and values (use_prompt): load the model "
            "without prompts"
        )
    n_heads = self.num_heads
    query = split_heads(self.q_proj(hidden_states), n_heads)
    key = split_heads(self.k_proj(hidden_states), n_heads)
    value = split_heads(self.v_proj(hidden_states), n_heads)
    if cache is not None:
        own = getattr(cache, "self_attention_cache", cache)  # an encoder-decoder cache's own
        key, value = own.update(key, value, self.layer_idx)
    q_len, k_len = query.shape[2], key.shape[2]
    mask = additive_mask(attention_mask, q_len, k_len, query.dtype, query.device)
    dropout = self.dropout if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, mask, dropout=dropout, scaling=self.scaling
    )
    return self.out_proj(z.reshape(*z.shape[:2], -1)), weights


def with_embeddings(model: nn.Module, spec: ArchSpec) -> ArchSpec:
    """`spec` (derived for a pre-LN decoder) with the embedding's norm and scale where the
    model has a BART-style embedding (mBART): unchanged for any other model."""
    found = _layout(model)
    if found is None or found[1] != spec.blocks:
        return spec
    parts = _embedding_parts(model, *found)
    parts.pop("pos_embed")
    return replace(spec, **parts) if parts else spec
