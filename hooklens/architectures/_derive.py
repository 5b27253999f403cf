"""Derive an adapter from a loaded model's own structure (the pre-norm decoder template).

Most causal LMs in transformers are the same decoder block under different names: a list of
blocks, each with a norm, an attention module with q/k/v projections, an optional second norm,
an MLP, and optional norms on what is added back to the residual stream. `derive` finds those
modules by their names in the block (the names transformers uses, data in `_names.py`), reads
the norm type from what the norm module computes on a probe input, and reads the layout of a q/k
norm's output from one tiny forward. It returns an `ArchSpec` marked `derived`, which the engine
checks against the model's own forward before wrapping it (`_engine/verify.py`); a structure
this template does not describe raises `UnsupportedModelError` naming what was not found.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Literal

from torch import nn

from .._errors import UnsupportedModelError
from ._convs import block_convs
from ._factors import block_factors
from ._fused_mlp import halves_gate_up
from ._gate import attn_gate
from ._hybrid import MIXERS, hybrid_layers, shared_block
from ._kv_sharing import kv_sharing
from ._latent import latent_kv
from ._layer_checks import (
    has_sinks,
    head_counts,
    parallel_streams,
    per_layer_config,
    routed_queries,
    stream_scaled,
    unlike_layers,
)
from ._names import (
    ATTN,
    EMBED_NORM_IN_BLOCK,
    EXPERTS_CALL,
    FINAL_NORM,
    GROUPED_EXPERTS,
    LN1,
    MLP,
    MLP_BESIDE,
    MLP_OUT_NORM,
    MLP_PROJ,
    O_PROJ,
    OUTPUT_SCALE,
    PER_LAYER_OUT,
    POS_EMBED,
    ROUTER,
    SCORE_BIAS,
)
from ._no_blocks import why_no_blocks
from ._norms import shared_norm_kind
from ._placement import NORM_ROLES, gated_norm_names, gated_norms, mixer_norms, places
from ._placement import child as _child
from ._placement import path_of as _path_of
from ._placement import signature_norm as _signature_norm
from ._qk_order import fused_qkv, qk_sources, rotated_qk_norms
from ._rounded_kv import rounded_kv
from ._scored_moe import scores_experts_inputs
from ._skipped import skipped_layers, with_skipped
from ._spec import ArchSpec, Layout, Proj, text_config
from ._stream import normed_residual, stream_ends, stream_rescaled
from ._towers import block_list_candidates, walked


def _refuse(model: nn.Module, what: str, whole: bool = True) -> UnsupportedModelError:
    """The refusal. Its `reason` is `what` alone (what a block kept whole says), and `whole`
    whether keeping the blocks whole may still describe the model (`_whole_blocks.py`): not
    where the stream between blocks is not one tensor, or changes between them."""
    if (streams := parallel_streams(text_config(model.config))) is not None:
        what, whole = f"{streams}; and its blocks' parts do not fit either: {what}", False
    error = UnsupportedModelError(
        f"{type(model).__name__} does not follow the pre-norm decoder template hooklens "
        f"derives adapters from: {what}"
    )
    error.reason, error.whole = what, whole  # type: ignore[attr-defined]
    return error


def _find_blocks(model: nn.Module, n_layers: int, embed: str) -> str:
    """The block list: the first list of n_layers modules, next to the token embedding first,
    never in another tower of a multimodal model (`_towers.py`)."""
    return walked(model, ("blocks", n_layers, embed), lambda: _block_list(model, n_layers, embed))


def _block_list(model: nn.Module, n_layers: int, embed: str) -> str:
    for name, module in block_list_candidates(model, embed):
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and name:
            skipped = skipped_layers(text_config(model.config), n_layers)  # they may differ
            ref = next((b for i, b in enumerate(module) if i not in skipped), module[0])
            first, trees = _signature(ref), {_tree(ref)}
            for i, block in enumerate(module):
                # a block built as one already seen has its signature (the common case, cheaply)
                if i in skipped or (tree := _tree(block)) in trees:
                    continue
                trees.add(tree)
                if _signature(block) != first:
                    shared = shared_block(block, i) or gated_norms(block, i)  # say what
                    if shared is not None:
                        raise _refuse(model, shared)
                    named = set(_signature(block, True)) ^ set(_signature(ref, True))
                    diff = sorted(named)[:2]
                    raise _refuse(model, f"its layers differ (layer {i}: {diff})")
            return name
    error = _refuse(model, why_no_blocks(model, n_layers))
    error.runs_counted = True  # type: ignore[attr-defined]  # it says where blocks run twice
    raise error


def _tree(block: nn.Module) -> tuple[tuple[str, type], ...]:
    """The block's modules by name and class: `_signature` is a function of it."""
    return tuple((n, type(m)) for n, m in block.named_modules())


def _signature(block: nn.Module, named: bool = False) -> list[tuple[str, str]]:
    """The block's modules, except inside its MLP (dense and MoE layers may alternate) and
    what mixes positions (a hybrid's layers differ there; `_hybrid.py` reads them); norms by
    their class only unless `named` (a hybrid's layers may place them apart)."""
    slots = [n for n in (_child(block, MLP), *ATTN, *MIXERS) if n and hasattr(block, n)]
    mixing = set(ATTN) | set(MIXERS)
    norms = [n for n, _ in block.named_children() if n in NORM_ROLES]  # gated: by the inner norm
    return sorted(
        (
            "<mixer>" if n in mixing else "<norm>" if n in NORM_ROLES and not named else n,
            type(_signature_norm(block, n) if n in norms else m).__name__ if n not in slots else "",
        )
        for n, m in block.named_modules()
        if n
        and not any(n.startswith(f"{s}.") for s in (*slots, *norms))
        and n not in EMBED_NORM_IN_BLOCK  # the embedding's norm, in block 0 alone (RWKV)
    )


def _mlp_roles(model: nn.Module, mlp_mod: nn.Module, mlp: str) -> tuple[Any, ...]:
    """("moe", router path, experts path, where the weights apply) or (input, up or None,
    output, fused)."""
    experts, router = _child(mlp_mod, ("experts",)), _child(mlp_mod, ROUTER)
    if experts is not None and router is not None:
        params = inspect.signature(getattr(mlp_mod, experts).forward).parameters.values()
        if len(params) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params):
            # only hidden states: maybe already scored by the router (Llama 4), probed later
            kind = type(getattr(mlp_mod, experts)).__name__
            why = (
                f"its experts {kind} take ({', '.join(p.name for p in params)}), not the chosen "
                f"experts and their weights ({', '.join(EXPERTS_CALL)}), nor tokens its router "
                "already scored (one copy per expert)"
            )
            return ("moe", f"{mlp}.{router}", f"{mlp}.{experts}", why)
        return ("moe", f"{mlp}.{router}", f"{mlp}.{experts}", "outputs")
    if experts is not None:
        raise _refuse(model, f"its MLP {type(mlp_mod).__name__} has experts but no router")
    if router is not None and all(_child(mlp_mod, (n,)) for n in GROUPED_EXPERTS):
        return ("moe", f"{mlp}.{router}", f"{mlp}.{GROUPED_EXPERTS[1]}", "grouped")
    if _child(mlp_mod, ("router",)):
        names = ", ".join(n for n, _ in mlp_mod.named_children())
        why = (
            f"a router but no experts module ({names}) where hooklens reads the chosen experts "
            "and each expert's output"
        )
        raise _refuse(model, f"its MLP {type(mlp_mod).__name__} has {why}")
    proj = next((p for p in MLP_PROJ if all(_child(mlp_mod, (n,)) for n in p[:3] if n)), None)
    if proj is None:
        names = ", ".join(n for n, _ in mlp_mod.named_children())
        raise _refuse(model, f"its MLP {type(mlp_mod).__name__} has no known projections ({names})")
    gate, up, down, fused = proj
    fused = fused or (up is None and halves_gate_up(mlp_mod, gate, down))  # Moshi's fc1
    return (f"{mlp}.{gate}", f"{mlp}.{up}" if up else None, f"{mlp}.{down}", fused)


def derive(model: nn.Module, opaque: str | None = None) -> ArchSpec:
    """An adapter for `model` from its module structure (checked later against its forward).
    `opaque`: why its attention modules have no attention points (found by the check: one
    module calls the attention function several times): each is kept whole, as its layer's
    mixer (`LayerLayout.opaque`)."""
    config: Any = model.config
    text = text_config(config)
    n_layers = getattr(text, "num_hidden_layers", None)
    if not isinstance(n_layers, int):
        stacks = {n: getattr(getattr(text, n, None), "num_hidden_layers", None)
                  for n in getattr(text, "sub_configs", None) or {}}  # fmt: skip
        counted = ", ".join(f"{n}: {k}" for n, k in stacks.items() if isinstance(k, int))
        raise _refuse(model, "its config has no num_hidden_layers" + (
            f" (its sub-configs count the layers of several stacks: {counted})" if counted else ""
        ))  # fmt: skip
    streams = parallel_streams(text)  # several streams: the blocks' parts alone (`_refuse`)
    if (own := per_layer_config(text)) is not None:  # before reading one value for every layer
        raise _refuse(model, own)
    embed = _path_of(model, model.get_input_embeddings())  # type: ignore[operator]
    unembed = _path_of(model, model.get_output_embeddings())  # type: ignore[operator]
    if embed is None or unembed is None:
        raise _refuse(model, "no input or output embedding module")
    if (rescaled := stream_rescaled(text, n_layers)) is not None:  # between blocks (RWKV)
        raise _refuse(model, rescaled, whole=False)
    blocks = _find_blocks(model, n_layers, embed)
    # a residual the block rescales or replaces: its parts are read, their sum is not the stream
    unsummed = normed_residual(model.get_submodule(blocks)[0])  # type: ignore[index]
    parent_path = blocks.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    final = _child(parent, FINAL_NORM)
    if final is None:
        raise _refuse(model, f"no final norm next to {blocks} (looked for {', '.join(FINAL_NORM)})")
    all_blocks = list(model.get_submodule(blocks))  # type: ignore[call-overload]
    unsummed = unsummed or stream_scaled(all_blocks)  # or multiplies it after (Gemma 4)
    # routed query heads (JetMoE) have no per-head points: the module is kept whole
    first_attn = _child(all_blocks[0], ATTN)
    if first_attn and opaque is None:
        opaque = routed_queries(all_blocks[0].get_submodule(first_attn))
    skipped = skipped_layers(text, len(all_blocks))  # their layouts say so
    try:
        ran = [b for i, b in enumerate(all_blocks) if i not in skipped]
        attn, layers = hybrid_layers(ran, text, ATTN, MLP, opaque)
    except UnsupportedModelError as exc:
        raise _refuse(model, str(exc)) from None
    layers = with_skipped(layers, all_blocks, skipped, attn)
    attending = [i for i, lay in enumerate(layers or ()) if lay.kind == "attention"]
    block: nn.Module = all_blocks[attending[0] if attending else 0]
    kind = type(block).__name__
    if attn is None and layers is None:
        raise _refuse(model, f"{kind} has no attention module ({', '.join(ATTN)})")
    attn_mod = block.get_submodule(attn) if attn is not None else None
    template = places(block)
    if template is None:
        raise _refuse(model, f"{kind} has no norm before attention (looked for {', '.join(LN1)})")
    ln1, ln2, attn_out_norm, _, post_norm = template
    convs = block_convs(block, attn, _child(block, MLP))  # over positions (Inkling)
    attn_out = dict(convs).get("attn_out") or attn_out_norm or attn
    if layers is not None and attn_out != attn:  # mixers' outputs pass the same output norm
        layers = tuple(replace(x, out=attn_out) if x.kind == "mixer" else x for x in layers)
    # a hybrid's MLP is read in the layers that have one (a Mamba block has none)
    with_mlp = [i for i in range(len(all_blocks)) if layers is None or layers[i].mlp]
    mlp_paths = {
        layers[i].mixer if layers and layers[i].kind == "mlp" else _child(all_blocks[i], MLP)
        for i in with_mlp
    }  # a layer that is only an MLP holds it where others hold their mixer (Nemotron-H)
    if len(mlp_paths) > 1:
        raise _refuse(model, f"its MLPs sit at different paths ({sorted(map(str, mlp_paths))})")
    mlp = next(iter(mlp_paths), None)
    if layers is not None:  # a mixer layer's norms may sit elsewhere (OLMo-hybrid)
        placed = mixer_norms(all_blocks, layers, template, mlp)
        if isinstance(placed, str):
            raise _refuse(model, placed)
        layers = placed
    moe: tuple[str, str] | None = None
    moe_layers: tuple[int, ...] | None = None
    mlp_in, mlp_up, mlp_down, fused = "", None, "", False
    beside: str | None = None
    weights_at = "outputs"
    if mlp is None and _child(block, ("fc1",)) and _child(block, ("fc2",)):
        # the MLP's projections sit in the block itself (OPT-style): fc2's output is mlp_out
        mlp_in, mlp_up, mlp_down, fused, mlp_out = "fc1", None, "fc2", False, "fc2"
    elif not with_mlp:
        mlp_out = ""
    elif mlp is None:
        raise _refuse(model, f"{kind} has no MLP ({', '.join(MLP)}, or fc1/fc2)")
    else:
        mlp_out = dict(convs).get("mlp_out") or _child(block, MLP_OUT_NORM) or mlp
        beside = _child(block, tuple(n for n in MLP_BESIDE if n != mlp))
        # each layer's MLP is dense or a mixture of experts (some models start dense)
        roles = {i: _mlp_roles(model, all_blocks[i].get_submodule(mlp), mlp) for i in with_mlp}
        dense = {r for r in roles.values() if isinstance(r[0], str) and r[0] != "moe"}
        experts = {r for r in roles.values() if r[0] == "moe"}
        if len(dense) > 1 or len(experts) > 1:
            raise _refuse(model, f"its layers' MLPs differ ({sorted(dense | experts)})")
        if experts:
            (_, router, expert_mod, weights_at), *_ = experts
            moe = (router, expert_mod)
            if weights_at not in ("outputs", "grouped"):  # the experts take hidden states only
                i = next(i for i, r in roles.items() if r[0] == "moe")
                blk = all_blocks[i]
                if not scores_experts_inputs(
                    model, blk.get_submodule(router), blk.get_submodule(expert_mod)
                ):
                    raise _refuse(model, weights_at)
                weights_at = "inputs"
            if dense:
                moe_layers = tuple(i for i, r in roles.items() if r[0] == "moe")
        if dense:
            ((mlp_in, mlp_up, mlp_down, fused),) = dense
    o_proj = _child(attn_mod, O_PROJ) if attn_mod is not None else None
    latent = latent_kv(model, attn_mod, attn) if attn_mod is not None and attn else None
    rope = getattr(text, "rope_parameters", None)
    # q/k/v convolved over positions without rotary: read where the attention function gets them
    at_call = rope is None and any(r in ("q", "k", "v") for r, _ in convs)
    rotated: tuple[str, str] | None = None
    # none where no layer attends (Mamba), or latent attention reads q and k itself
    sources: tuple[Proj | None, Proj | None] = (None, None)
    if attn_mod is not None and attn and not latent and not at_call:
        rotated = rotated_qk_norms(model, attn_mod, attn)
        found = qk_sources(model, attn_mod, attn, norms=not rotated)
        if isinstance(found, str):
            raise _refuse(model, found)
        sources = found
    attend_at = list(attending if layers else range(n_layers))
    # layers reusing an earlier layer's keys and values have no key modules (Gemma 4)
    kv_reused, v_source = kv_sharing(model, all_blocks, attend_at, attn or "", sources[1], text)
    # layers rounding keys and values before attending (Kolibri 1.1)
    rounded = rounded_kv(model, all_blocks, attend_at, attn or "", attn_mod, v_source, kv_reused)
    if isinstance(rounded, str):
        raise _refuse(model, rounded)
    kv_rounded, v_source = rounded
    own_qkv = sources[0] is not None and sources[0].layout == "tuple_bphd"
    if own_qkv:  # q, k and v from a module computing them itself, returned as a tuple (ZAYA)
        v_source = Proj(f"{attn}.qkv_proj", "tuple_bphd")
    unlike = unlike_layers(all_blocks, attend_at, sources, reusing=dict(kv_reused))
    unlike = unlike or head_counts(all_blocks, attend_at, attn)
    if unlike is not None:
        raise _refuse(model, unlike)
    # the weights `hooklens.analysis` reads per head: the projections _qk_sources found
    qkv_fused = sources[0] is not None and attn_mod is not None and fused_qkv(attn_mod)
    qkv = (f"{attn}.qkv_proj",) * 3 if qkv_fused else None
    if (sources[0] is not None and not qkv_fused and not own_qkv) or at_call:
        qkv = (f"{attn}.q_proj", f"{attn}.k_proj", f"{attn}.v_proj")
    n_heads = int(getattr(text, "num_attention_heads", 0) or 0)
    gate = attn_gate(model, attn_mod, attn, n_heads) if attn_mod and attn and n_heads else None
    q_gated = gate is not None and gate.layout == "q_gate_per_head"
    qkv_layout: Layout = "concat_qkv" if qkv_fused else "q_gate_per_head" if q_gated else "flat"
    pos_embed = _child(parent, POS_EMBED)
    biased = attn_mod is not None and _child(attn_mod, SCORE_BIAS) is not None
    positional: Literal["learned", "rotary", "relative", "none"] = (
        "learned"
        if pos_embed is not None
        else "rotary"
        if rope is not None
        else "relative"
        if biased
        else "none"
    )
    # a hybrid's recurrent mixers carry the order when its attention has no positions (Jamba)
    if positional == "none" and not any(lay.kind == "mixer" for lay in layers or ()):
        raise _refuse(model, "no learned position embedding and no rotary parameters")
    like = next(model.parameters())
    width = int(getattr(text, "hidden_size", 0) or like.shape[-1])
    # a gated norm's inner norm (the ln points are its)
    norms = [*(_signature_norm(block, n) for n in (ln1, ln2) if n), parent.get_submodule(final)]
    for i, lay in enumerate(layers or ()):  # a mixer layer's own norms compute the same
        norms += [_signature_norm(all_blocks[i], n) for n in (lay.norms or ())[:2] if n]
    norm, offset = shared_norm_kind(model, norms, width, like)
    prefix = f"{parent_path}." if parent_path else ""
    attend = attending if layers is not None else range(len(all_blocks))
    sinks = tuple(i for i in attend if attn and has_sinks(all_blocks[i].get_submodule(attn)))
    return ArchSpec(
        family=str(getattr(config, "model_type", kind)),
        hf_classes=(type(model).__name__,),
        embed=embed,
        blocks=blocks,
        final_norm=prefix + final,
        unembed=unembed,
        ln1=ln1,
        attn=attn or "",
        attn_out=attn_out or "",
        ln2=ln2,
        mlp_in=mlp_in,
        mlp_up=mlp_up,
        mlp_gate_up_fused=fused,
        mlp_down=mlp_down,
        mlp_out=mlp_out,
        mlp_beside=beside,
        moe_router=moe[0] if moe else None,
        moe_experts=moe[1] if moe else None,
        moe_layers=moe_layers,
        moe_weights_at=weights_at,  # type: ignore[arg-type]
        o_proj=f"{attn}.{o_proj}" if o_proj else None,
        sink_layers=sinks,
        qkv=qkv,
        qkv_layout=qkv_layout,
        attn_gate=gate,
        q_source=sources[0],
        qk_norms_after_rotary=rotated,
        k_source=sources[1],
        v_source=v_source,
        kv_reused=kv_reused,
        kv_rounded=kv_rounded,
        latent_kv=latent,
        pos_embed=prefix + pos_embed if pos_embed else None,
        positional=positional,
        norm=norm,  # type: ignore[arg-type]
        gated_norm=gated_norm_names(all_blocks),
        norm_weight_offset=offset,
        parallel_residual=ln2 is None and not post_norm,
        unsummed=unsummed or streams,
        streams=streams,
        resid_mid_at=(mlp or mlp_in) if post_norm else None,
        layers=layers,
        **stream_ends(model, text, embed, blocks, prefix + final),
        output_scale=next((a for a in OUTPUT_SCALE if hasattr(block, a)), None),
        factors=block_factors(block, attn, mlp),
        convs=convs,
        per_layer_out=_child(block, PER_LAYER_OUT),
        derived=True,
    )
