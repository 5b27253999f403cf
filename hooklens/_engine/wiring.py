"""Which sites each layer of a model gets, from its adapter (a hybrid's layers differ).

Every block gets its residual-stream points and its norms; a layer that attends gets the
attention's points (q/k where the adapter reads them, the attention function's internals, its
output), a mixer layer of a hybrid its mixer's output (`hook_mixer_out`) instead, and a layer
with an MLP the MLP's points. A block kept whole that calls attention off the stream (Zamba's
shared transformer block) gets the attention's internals alone. The kinds come from
`ArchSpec.layers` (`layer_features`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._errors import UnsupportedModelError
from ..architectures._factors import embed_affine, embed_factor
from ..architectures._names import GROUPED_LOGITS_AT
from ..architectures._spec import ArchSpec
from . import attention as _attention
from .gate import add_gate_site
from .grouped_moe import grouped_experts_site
from .head_sites import add_head_sites
from .hooks import HookPoint
from .latent import add_latent_sites
from .linear import added_o_bias
from .nth_call import NthCall
from .points import POINTS, POINTS_BY_SUFFIX, split_name
from .pos_table import pos_table_site
from .routed_moe import expert_out_site, experts_site, router_site
from .scored_moe import scored_experts_site
from .sites import Builder, get_module
from .summed import summed_output_site


def build_points(
    model: nn.Module, spec: ArchSpec, cfg: Any, features: frozenset[str]
) -> tuple[dict[str, HookPoint], Builder]:
    """Every hook point of `model`, in execution order, and the builder that holds its sites."""
    b = Builder(model, spec, cfg, features)
    embed_scale: float | torch.Tensor = embed_factor(model, spec)
    embed = get_module(model, spec.embed_proj or spec.embed_norm or spec.embed)
    shift = None
    if (affine := embed_affine(model, spec)) is not None:  # (x + shift) * scale (ZAYA)
        if embed_scale != 1.0:  # a product made here would miss later moves and edits
            raise UnsupportedModelError(
                f"{type(model).__name__} both multiplies its token embedding by "
                f"{embed_scale} and shifts and scales it by parameters: hook_embed holds one "
                "of them; write an explicit adapter"
            )
        # the parameters themselves: they follow the model to other devices and dtypes
        shift, embed_scale = affine
    b.output_site(embed, "hook_embed", None, embed_scale, added=shift,
                  copy="hook_embed" in spec.edited_in_place)  # fmt: skip
    if spec.pos_embed is not None:
        b.output_site(get_module(model, spec.pos_embed), "hook_pos_embed", None, positions=True)
    elif spec.pos_table is not None:  # rows of a table the model indexes itself (CTRL)
        pos_table_site(b)
    if spec.token_type_embed is not None:
        b.output_site(get_module(model, spec.token_type_embed), "hook_token_type_embed", None)
    for layer, block in enumerate(b.blocks):
        sub = block.get_submodule
        feats = spec.layer_features(model.config, layer)  # a hybrid's layers differ
        if "skipped" in feats:  # the forward skips it: its stream is the next module's input
            ahead = _next_ran(b, spec, model, layer)
            b.input_site(ahead, "hook_resid_pre", layer, in_place=False)
            b.input_site(ahead, "hook_resid_post", layer, in_place=False)
            continue
        # a factor the block applies to what each part adds to the stream (Granite)
        out_scale = spec.added_scale(block)
        mixer_scale = spec.added_scale(block, "mixer_out")  # Falcon-H1's µP factor
        inner = spec.embed_sum_norm  # a norm of the embedding inside block 0 (RWKV's pre_ln)
        views = spec.layer_lists is not None  # a view of parts the model runs itself (XLM)
        if layer == 0 and inner is not None and inner.startswith(f"{spec.blocks}.0."):
            b.output_site(get_module(model, inner), "hook_resid_pre", layer)
        elif views:  # attention's input, which the model also adds its output to
            b.input_site(sub(spec.attn), "hook_resid_pre", layer, in_place=True)
        else:
            b.input_site(block, "hook_resid_pre", layer, in_place=False)
        ln1 = spec.norms_of(layer)[0]  # a hybrid's mixer layer may have its own norms
        if ln1 is not None:  # post-LN: ln1 normalizes resid_mid (after attention)
            b.norm_site(spec.norm_module(block, ln1), "ln1", layer)
        layout = spec.layers[layer] if spec.layers is not None else None
        if "attention" in feats:
            _attention_parts(b, block, layer, spec.added_scale(block, "attn_out"))
        elif "attn_inside" in feats:  # attention off the stream (Zamba's shared block)
            _attention_internals(b, block, layer)
        if layout is not None and layout.beside is not None:  # a mixer beside attention
            b.output_site(sub(layout.beside), "hook_mixer_out", layer, mixer_scale)
        elif layout is not None and "attention" not in feats:
            # what it adds: the mixer's output, or a norm's on it
            b.output_site(sub(layout.out or layout.mixer), "hook_mixer_out", layer, mixer_scale)
        if "mlp" in feats:
            _mlp_parts(b, block, layer, feats, out_scale)
        if spec.per_layer_out is not None:
            b.output_site(sub(spec.per_layer_out), "hook_per_layer_out", layer)
        if spec.post_ln:  # the stream before ln2; the block's output is ln2's
            # after a language adapter, the block calls ln2 again: the points are its first call
            first = NthCall(block, 0) if spec.adapter_out else None
            b.input_site(sub(spec.ln2 or ""), "hook_resid_post", layer, in_place=False, call=first)
            edited = spec.edited_in_place  # (XLM masks ln2's output in place)
            b.norm_site(sub(spec.ln2 or ""), "ln2", layer, call=first and NthCall(block, 0),
                        copy="ln2.hook_normalized" in edited)  # fmt: skip
            if spec.adapter_out is not None:  # the model adds ln2's output to it in place
                path, n = spec.adapter_out
                b.output_site(
                    sub(path), "hook_adapter_out", layer, copy=True, call=NthCall(block, n)
                )
            out = sub(spec.ln2 or "") if views else block  # a view's output is ln2's
            b.output_site(out, "hook_normalized_resid_post", layer,
                          copy="hook_normalized_resid_post" in edited)  # fmt: skip
        elif views:
            raise UnsupportedModelError("layer views describe post-LN layers only")
        else:
            b.output_site(block, "hook_resid_post", layer)
        add_head_sites(b, block, layer)
    if spec.final_norm is not None:  # a post-LN decoder's last ln2 output is unembedded (BART)
        reused = spec.embed_sum_norm == spec.final_norm  # also the embedding's (NanoChat)
        b.norm_site(get_module(model, spec.final_norm), "ln_final", None, skip_first=reused)
    return _ordered(b)


def _next_ran(b: Builder, spec: ArchSpec, model: nn.Module, layer: int) -> nn.Module:
    """The module a skipped layer's stream enters: the next block that runs, else the final
    norm (or the unembedding)."""
    for later in range(layer + 1, len(b.blocks)):
        if "skipped" not in spec.layer_features(model.config, later):
            return b.blocks[later]
    return get_module(model, spec.final_norm or spec.unembed)


def _attention_parts(b: Builder, block: nn.Module, layer: int, out_scale: float) -> None:
    sub, spec = block.get_submodule, b.spec
    _attention_internals(b, block, layer)
    add_gate_site(b, block, layer, b.attn_sites[-1][1])  # where attention's output is gated
    added = added_o_bias(spec, block)  # a bias the block adds after attention's module
    b.output_site(sub(spec.attn_out), "hook_attn_out", layer, out_scale, added=added)


def _attention_internals(b: Builder, block: nn.Module, layer: int) -> None:
    """q and k where the adapter reads them, and the points inside the attention function."""
    sub, spec = block.get_submodule, b.spec
    qs, ks = spec.q_source, spec.k_source
    k_scale = spec.factor(block, "k")  # Falcon-H1 multiplies the keys after k_proj
    # a layer reusing an earlier layer's keys and values: no keys before the rotation, and its
    # values are what its attention reads; the others' values are read before they are handed on
    reused = layer in dict(spec.kv_reused)
    vs = None if reused else spec.v_source
    if spec.latent_kv is not None:
        add_latent_sites(b, block, layer)
    elif qs is not None and ks is not None and qs == ks:
        b.proj_site(sub(qs.module), qs, layer, q=True, k=not reused, k_scale=k_scale)
    else:
        if qs is not None:
            b.proj_site(sub(qs.module), qs, layer, q=True, k=False)
        if ks is not None and not reused:
            b.proj_site(sub(ks.module), ks, layer, q=False, k=True, k_scale=k_scale)
    if vs is not None:
        b.proj_site(sub(vs.module), vs, layer, q=False, k=False, v=True)
    here = spec.latent_kv is None  # else the latent sites read q and k
    b.attention_site(
        sub(spec.attn), layer, q_here=here and not qs, k_here=here and not ks, v_here=vs is None,
        rounded=layer in spec.kv_rounded,
    )  # fmt: skip


def _mlp_parts(
    b: Builder, block: nn.Module, layer: int, feats: frozenset[str], out_scale: float
) -> None:
    sub, spec = block.get_submodule, b.spec
    _, own_ln2, mlp_out, mid_at = spec.norms_of(layer)
    if mid_at is not None and "sequential" in feats:
        b.input_site(sub(mid_at), "hook_resid_mid", layer, in_place=True)
    # a layer that is only an MLP (Nemotron-H) has one norm, the MLP's
    ln2 = spec.ln1 if spec.layers is not None and spec.layers[layer].kind == "mlp" else own_ln2
    if ln2 is not None and not spec.post_ln:  # post-LN: ln2 is served with resid_post
        b.norm_site(spec.norm_module(block, ln2), "ln2", layer)
    if spec.moe_router is not None and spec.moe_experts is not None and "moe" in feats:
        scored = spec.moe_weights_at == "inputs"  # the router returns (scores, logits)
        grouped = spec.moe_weights_at == "grouped"  # the router groups its choices (JetMoE)
        logits_at = 1 if scored else GROUPED_LOGITS_AT if grouped else 0
        router_site(b, sub(spec.moe_router), layer, logits_at=logits_at)
        if scored:
            scored_experts_site(b, sub(spec.moe_router), sub(spec.moe_experts), layer)
        elif grouped:
            grouped_experts_site(b, sub(spec.moe_router), sub(spec.moe_experts), layer)
        else:
            experts_site(b, sub(spec.moe_experts), layer)
            expert_out_site(b, sub(spec.moe_experts), layer)
    elif spec.mlp_gate_up_fused:
        b.fused_gate_up_site(sub(spec.mlp_in), layer)
    else:  # before the activation: times the factor the MLP applies there (Falcon-H1)
        b.output_site(sub(spec.mlp_in), "mlp.hook_pre", layer, spec.factor(block, "mlp_pre"))
    if spec.mlp_up is not None and "gated_mlp" in feats:
        b.output_site(sub(spec.mlp_up), "mlp.hook_pre_linear", layer)
    if "dense_mlp" in feats:
        b.input_site(sub(spec.mlp_down), "mlp.hook_post", layer, in_place=False)
    if spec.mlp_beside is not None:  # a shared MLP beside it: the block adds both outputs
        mods = (sub(mlp_out), sub(spec.mlp_beside))
        summed_output_site(b, mods, "hook_mlp_out", layer, out_scale)
    else:
        out = sub(mlp_out)
        b.output_site(
            out, "hook_mlp_out", layer, out_scale, copy="hook_mlp_out" in spec.edited_in_place
        )


def _ordered(b: Builder) -> tuple[dict[str, HookPoint], Builder]:
    """The points in execution order: the table's (TransformerLens's), with a post-LN block's
    norms where they run, ln1 on resid_mid and ln2 on the block's sum (as in BertBlock). Points
    computed side by side keep the table's order whatever the model's (BERT's embeddings, a
    mixer beside attention)."""
    groups = {"model": 0, "block": 1, "final": 2}
    rank = {row.suffix: 2 * i for i, row in enumerate(POINTS)}
    if b.spec.post_ln:
        for norm, after in (("ln1", "hook_mlp_in"), ("ln2", "hook_resid_post")):
            for part in ("hook_scale", "hook_normalized"):
                rank[f"{norm}.{part}"] = rank[after] + 1

    def execution_order(name: str) -> tuple[int, int, int, int]:
        layer, suffix = split_name(name)
        row = POINTS_BY_SUFFIX[suffix]
        return (groups[row.scope], layer or 0, rank[suffix], POINTS.index(row))

    names = sorted(b.points, key=execution_order)
    for attn, site in b.attn_sites:
        _attention.add_site(attn, site)
    return {n: b.points[n] for n in names}, b
