"""Derive an adapter for encoder blocks used as decoders (BERT and its descendants).

BERT's block is post-LN: it adds attention's output to its input and normalizes the sum
(`ln1`), then adds the MLP's output to that and normalizes again (`ln2`); the residual
additions happen inside the modules that hold the norms. RoBERTa-PreLayerNorm and
XLM-RoBERTa-XL keep those modules but normalize before attention and before the MLP (pre-LN),
with a final norm after the last block. The embedding is the sum of token, position and
token-type embeddings (normalized, in BERT); the LM head transforms the last stream (dense,
activation, LayerNorm) before the unembedding. `derive_encoder` finds those modules by the
paths transformers gives them (data in `_names.py`) and returns an `ArchSpec` (`post_ln` for
BERT's blocks, `head` for the transform), which the engine checks against the model's forward
like every derived adapter (`_engine/verify.py`). Variants, as data in `_names.py`: a
self-attention that computes attention itself (`EAGER_BERT_ATTENTION`) or rotates q and k
(RoFormer, `ROTARY_BERT_ATTENTION`, `_rotary_encoder.py`) gets hooklens's reimplementation of
its forward; an LM head that is the unembedding alone (BERT-Generation) means no final norm;
embeddings narrower than the stream projected to it before block 0 (`EMBED_PROJ`: RemBERT,
ELECTRA's generators) make `hook_embed` the projection's output (`ArchSpec.embed_proj`), and an
LM head norm of another width than the stream is no `ln_final`; what the points cannot describe
is refused saying why (`BLOCK_ADAPTERS`, `ENCODER_CONFIG_REFUSALS`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .._errors import UnsupportedModelError
from ._derive import _child, _find_blocks, _path_of, _refuse
from ._in_place import edited_in_place
from ._names import (
    BLOCK_ADAPTERS,
    EAGER_BERT_ATTENTION,
    EMBED_MIX,
    EMBED_POS,
    EMBED_PROJ,
    EMBED_SUM_NORM,
    EMBED_TOKEN_TYPE,
    ENCODER_CONFIG_REFUSALS,
    ENCODER_FINAL_NORM,
    HEAD,
    HEAD_NORM,
    POST_LN_BLOCK,
    PRE_LN_NORMS,
    ROTARY_BERT_ATTENTION,
)
from ._norms import shared_norm_kind
from ._rotary_encoder import rotary_forward, rotary_value_refusal, self_attention
from ._spec import ArchSpec
from ._towers import block_list_candidates

MSG_NOT_CAUSAL = (
    "its attention attends to later positions too ({cls}.is_causal is False: the config has "
    "is_decoder=False). Load it as a decoder: from_pretrained(name, is_decoder=True)."
)


def _has(block: nn.Module, path: str) -> bool:
    try:
        block.get_submodule(path)
    except AttributeError:
        return False
    return True


def _pre_ln_norms(block: nn.Module) -> dict[str, str] | None:
    found = {role: _find(block, names) for role, names in PRE_LN_NORMS.items()}
    return None if None in found.values() else found  # type: ignore[return-value]


def _block_roles(block: nn.Module) -> dict[str, str] | None:
    """The block's role -> path: BERT's post-LN block, or a pre-LN block of the same modules;
    None for any other block."""
    shared = {k: v for k, v in POST_LN_BLOCK.items() if k not in ("ln1", "ln2")}
    if not all(_has(block, p) for p in shared.values()):
        return None
    if all(_has(block, POST_LN_BLOCK[n]) for n in ("ln1", "ln2")):
        return dict(POST_LN_BLOCK)
    norms = _pre_ln_norms(block)
    return None if norms is None else {**shared, **norms}


def is_encoder(model: nn.Module) -> bool:
    """Whether `model`'s blocks are BERT's (post-LN) or its pre-LN variant's."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        return False
    embed = _path_of(model, model.get_input_embeddings())  # type: ignore[operator]
    for _, module in block_list_candidates(model, embed or ""):
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return _block_roles(module[0]) is not None
    return False


def _find(root: nn.Module, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if _has(root, n)), None)


def derive_encoder(model: nn.Module) -> ArchSpec:
    """An adapter for a model of encoder blocks (checked later against its forward)."""
    config: Any = model.config
    embed = _path_of(model, model.get_input_embeddings())  # type: ignore[operator]
    unembed = _path_of(model, model.get_output_embeddings())  # type: ignore[operator]
    if embed is None or unembed is None:
        raise _refuse(model, "no input or output embedding module")
    width = int(config.hidden_size)
    blocks = _find_blocks(model, config.num_hidden_layers, embed)
    block = model.get_submodule(blocks)[0]  # type: ignore[index]
    roles = _block_roles(block)
    if roles is None:
        raise _refuse(model, f"{type(block).__name__} is no BERT block ({POST_LN_BLOCK})")
    post_ln = roles["ln1"] == POST_LN_BLOCK["ln1"]
    adapter = _adapter_out(model, block)
    attn = block.get_submodule(roles["attn"])
    if getattr(attn, "is_causal", getattr(attn, "is_decoder", True)) is False:
        raise UnsupportedModelError(
            f"{type(model).__name__} cannot be wrapped as a causal LM: "
            + MSG_NOT_CAUSAL.format(cls=type(attn).__name__)
        )
    for attr, value, what, instead in ENCODER_CONFIG_REFUSALS:
        if getattr(config, attr, None) == value:
            raise UnsupportedModelError(
                f"{type(model).__name__} cannot be wrapped: {what} ({attr}={value!r}). Load it "
                f"with {attr}={instead!r}: from_pretrained(name, {attr}={instead!r})."
            )
    rotary = type(attn).__name__ in ROTARY_BERT_ATTENTION
    if rotary and (why := rotary_value_refusal(attn)) is not None:
        raise UnsupportedModelError(f"{type(model).__name__} cannot be wrapped: {why}")
    embed_parent = embed.rpartition(".")[0]
    embeddings = model.get_submodule(embed_parent)
    pos = _child(embeddings, EMBED_POS)
    token_type = _child(embeddings, EMBED_TOKEN_TYPE)
    sum_norm = _child(embeddings, EMBED_SUM_NORM)
    if sum_norm is None and post_ln:
        raise _refuse(model, f"no norm of the embeddings in {embed_parent} ({EMBED_SUM_NORM})")
    proj = _embed_proj(model, embed, embed_parent)
    # token embeddings mixed with others by a projection before the sum (RoCBert): hook_embed
    # is the projection's output, and positions, token types and their norm are added after it
    mix = _child(embeddings, EMBED_MIX)
    mixed = f"{embed_parent}.{mix}" if mix else None
    mixed = mixed if mixed and _out_width(model, mixed, width) else None
    # the head: the unembedding's parent calls it after its transform, or a module next to it
    parent = unembed.rpartition(".")[0]
    head = parent or next((n for n in HEAD if _child(model, (n,))), None)
    if head is None and not post_ln:
        raise _refuse(model, f"no LM head transform before {unembed} (looked for {HEAD})")
    head_module = model.get_submodule(head or unembed)
    head_norm = _find(head_module, HEAD_NORM) if head else None
    # a head that only unembeds (BertGeneration's, or GIT's unembedding at the top level): the
    # last post-LN block's output is already normalized and is the unembedding's input, so
    # there is no final norm (no ln_final points)
    bare = head is None or (
        post_ln and list(head_module.children()) == [model.get_submodule(unembed)]
    )
    if head_norm is None and not bare:
        raise _refuse(model, f"no norm in its LM head {head} (looked for {HEAD_NORM})")
    # a head norm narrower or wider than the stream (RemBERT's `output_embedding_size`) is no
    # ln_final: the head maps the stream to the unembedding's own width first
    final = (
        None
        if head_norm is None or not _width(model, f"{head}.{head_norm}", width)
        else f"{head}.{head_norm}"
    )
    if not post_ln:  # the final norm reads the stream after the last block, before the head
        encoder = blocks.rpartition(".")[0]
        found = [
            f"{parent}.{name}" if parent else name
            for parent in (encoder, encoder.rpartition(".")[0])
            for name in ENCODER_FINAL_NORM
            if _has(model.get_submodule(parent), name)
        ]
        if not found:
            raise _refuse(model, f"no final norm next to {blocks} ({ENCODER_FINAL_NORM})")
        final = found[0]
    like = next(model.parameters())
    norms = [block.get_submodule(roles["ln1"]), block.get_submodule(roles["ln2"])]
    if head_norm and _width(model, f"{head}.{head_norm}", width):
        norms.append(head_module.get_submodule(head_norm))
    norms += [model.get_submodule(final)] if final else []
    norms += [embeddings.get_submodule(sum_norm)] if sum_norm and proj is None else []
    norm, offset = shared_norm_kind(model, norms, width, like)
    qkv = (roles["q"], roles["k"], roles["v"])
    return ArchSpec(
        family=str(getattr(config, "model_type", type(model).__name__)),
        hf_classes=(type(model).__name__,),
        embed=embed,
        blocks=blocks,
        final_norm=final,
        unembed=unembed,
        ln1=roles["ln1"],
        attn=roles["attn"],
        attn_out=roles["o_proj"],
        ln2=roles["ln2"],
        mlp_in=roles["mlp_in"],
        mlp_down=roles["mlp_down"],
        mlp_out=roles["mlp_down"],
        resid_mid_at=roles["ln1"] if post_ln else None,
        o_proj=roles["o_proj"],
        qkv=qkv,
        pos_embed=f"{embed_parent}.{pos}" if pos and proj is None else None,
        positional="rotary" if rotary else "learned",
        norm=norm,  # type: ignore[arg-type]
        norm_weight_offset=offset,
        post_ln=post_ln,
        # projected embeddings: their parts are narrower than the stream (no points)
        token_type_embed=f"{embed_parent}.{token_type}" if token_type and not proj else None,
        embed_sum_norm=f"{embed_parent}.{sum_norm}" if sum_norm and not proj else None,
        embed_proj=proj or mixed,
        head=None if bare else head,
        adapter_out=adapter,
        # only what runs up to block 0 holds the embedding's output (each block returns a new
        # stream): the probe ends there, not after the model's other blocks
        edited_in_place=edited_in_place(
            model, {"hook_embed": model.get_submodule(proj or mixed or embed)}, stop_after=block
        ),
        attn_forward=rotary_forward if rotary else _attn_forward(attn),
        derived=True,
    )


def _adapter_out(model: nn.Module, block: nn.Module) -> tuple[str, int] | None:
    """Where a block's language adapter's output is read (`BLOCK_ADAPTERS`), or None where the
    block has none; refuses a configuration whose block does something else with it, and a
    model that names no default language (its forward would fail without lang_ids)."""
    config: Any = model.config
    for path, (out, wants, language) in BLOCK_ADAPTERS.items():
        if not _has(block, path):
            continue
        for attr, want in wants.items():
            if getattr(config, attr, want) != want:
                raise UnsupportedModelError(
                    f"{type(model).__name__} cannot be wrapped: after the MLP, its blocks add a "
                    f"language adapter's output ({path}), configured here as {attr}="
                    f"{getattr(config, attr)!r}; hooklens's points describe the block only with "
                    f"{', '.join(f'{k}={v!r}' for k, v in wants.items())} (the MLP output's "
                    "LayerNorm normalizes hook_resid_post, the adapter reads that, and the same "
                    "LayerNorm normalizes their sum)"
                )
        if getattr(config, language, None) is None:
            names = ", ".join(dict(block.get_submodule(path).named_children()))
            raise UnsupportedModelError(
                f"{type(model).__name__} cannot be wrapped: its blocks pick a language adapter "
                f"({names}) by lang_ids, which hooklens's forward does not take, and its config "
                f"names no {language}. Set one first: "
                f"hf_model.set_default_language({names.split(', ')[0]!r})."
            )
        return out
    return None


def _width(model: nn.Module, path: str, width: int) -> bool:
    """Whether the module at `path` (a norm, an embedding) works at the stream's width."""
    module = model.get_submodule(path)
    shape = getattr(module, "normalized_shape", None) or (getattr(module, "embedding_dim", width),)
    return int(shape[-1]) == width


def _out_width(model: nn.Module, path: str, width: int) -> bool:
    """Whether the module at `path` is a linear layer writing the stream's width."""
    return getattr(model.get_submodule(path), "out_features", None) == width


def _embed_proj(model: nn.Module, embed: str, parent: str) -> str | None:
    """The projection of the embeddings to the stream (`EMBED_PROJ`), where the model has one
    (RemBERT's projects them even when they are as wide); None where the embeddings are as wide
    as the stream and nothing projects them; refuses embeddings of another width with no
    projection it knows."""
    config: Any = model.config
    width = model.get_submodule(embed).embedding_dim
    base = parent.rpartition(".")[0]
    for name in EMBED_PROJ:
        path = f"{base}.{name}" if base else name
        if _has(model, path) and getattr(model.get_submodule(path), "in_features", None) == width:
            return path
    if _width(model, embed, config.hidden_size):
        return None
    raise UnsupportedModelError(
        f"{type(model).__name__} cannot be wrapped: its embeddings (width {width}) are "
        f"not as wide as the residual stream (width {config.hidden_size}), and no projection "
        f"between them was found next to {parent} (looked for {EMBED_PROJ})"
    )


def _attn_forward(attn: nn.Module) -> Any:
    """hooklens's forward for a self-attention that computes attention itself (None: it calls
    transformers' attention interface)."""
    return self_attention if type(attn).__name__ in EAGER_BERT_ATTENTION else None
