"""The hook-point table: every hook point hooklens knows, in execution order.

This is the single source of truth for hook names, shapes and meanings. The adapters decide which
of the optional rows a family has (through `requires`), the engine builds its hook points from it,
`architectures/README.md`'s table is generated from it, and the completeness tests read it.

Shapes are written with symbols that `HookedModelConfig` resolves: `batch`, `pos` (positions of
this forward pass), `d_model`, `n_heads`, `n_kv_heads`, `d_head`, `d_head_qk` (the width of q
and k: `d_head` except in multi-head latent attention), `d_mlp`, `q` / `k` (query and key
positions; `k` includes cached positions while generating) and the literal `1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["model", "block", "final"]
Feature = Literal[
    "learned_pos",
    "rotary",
    "sequential",
    "gated_mlp",
    "ln1",
    "ln2",
    "dense_mlp",
    "moe",
    "mha",
    "attention",
    "mixer",
    "mlp",
    "per_layer_input",
]
#: The part of a block a point belongs to; a layer without that part (a state-space mixer layer
#: has no attention, a Mamba block no MLP) has none of its points.
Part = Literal["attention", "mixer", "mlp"]


@dataclass(frozen=True)
class PointSpec:
    """One row of the table.

    `suffix` is the name inside its scope (`blocks.{l}.` is prepended for block points).
    `requires` names the family feature without which the point cannot exist, and `missing`
    explains why and what to use instead (formatted with `family` and `layer`). An `on_demand`
    point costs extra work whenever it is hooked (it is computed, not read), so, as in
    TransformerLens where such points need a config flag, caching every point
    (`names_filter=None`) leaves it out; name it (or match it with a predicate) to get it.
    """

    suffix: str
    scope: Scope
    shape: tuple[str, ...]
    meaning: str
    requires: Feature | None = None
    missing: str = ""
    on_demand: bool = False
    part: Part | None = None

    def lacking(self, features: frozenset[str]) -> str | None:
        """Why a layer (or model) with `features` has no such point (a template, formatted with
        `family`, `layer`, `mixer` and `attn_layers`), or None when it has it."""
        if self.part is not None and self.part not in features:
            return _NO_PART[self.part]
        if self.requires is not None and self.requires not in features:
            return self.missing
        return None

    @property
    def head_axis(self) -> int | None:
        """The axis of the head dimension in `shape` (with batch), None for points without one."""
        for axis, symbol in enumerate(self.shape):
            if symbol in ("n_heads", "n_kv_heads"):
                return axis
        return None


_BPD = ("batch", "pos", "d_model")
_PER_HEAD = "the residual stream entering the block (before ln1), one copy per {}; edits reach "
_MOE_MLP = (
    "{family}'s MLP is a mixture of experts, with no single hidden layer. Use "
    "blocks.{layer}.mlp.hook_router_logits / hook_expert_indices / hook_expert_weights, or "
    "blocks.{layer}.hook_mlp_out."
)
_PLE = "what a per-layer embedding branch (Gemma 3n/4) adds to the stream after the MLP"
_NO_PLE = "{family} has no per-layer embedding branch. Use blocks.{layer}.hook_mlp_out."
_DENSE = "{family}'s MLP is dense (no experts). Use blocks.{layer}.mlp.hook_pre / hook_post."
_NO_LN1 = (
    "{family} has no norm before attention: its norms are applied to what attention and the "
    "MLP add to the stream (blocks.{layer}.hook_attn_out / hook_mlp_out are their outputs). "
    "Use blocks.{layer}.hook_resid_pre, the attention's input."
)

_NO_PART: dict[str, str] = {
    "attention": "layer {layer} of this model is a {mixer} layer and has no attention; layers "
    "with attention: {attn_layers}. Use blocks.{layer}.hook_mixer_out for what its mixer adds to "
    "the residual stream.",
    "mixer": "layer {layer} of this model is an {mixer} layer, not a state-space or other "
    "sequence mixer. Use blocks.{layer}.hook_attn_out for what it adds to the residual stream.",
    "mlp": "layer {layer} of this model has no MLP (it is a {mixer} layer alone). Use "
    "blocks.{layer}.hook_resid_post.",
}

POINTS: tuple[PointSpec, ...] = (
    PointSpec("hook_embed", "model", _BPD, "token embeddings (after any embedding scale)"),
    PointSpec(
        "hook_pos_embed",
        "model",
        _BPD,
        "learned position embeddings, added to hook_embed",
        "learned_pos",
        "{family} has no learned position embedding: positions enter inside attention (by "
        "rotating q and k: blocks.{layer}.attn.hook_rot_q / hook_rot_k, or as an ALiBi bias "
        "in blocks.{layer}.attn.hook_attn_scores), or, in a hybrid or state-space model, "
        "through the order its recurrent mixers read the tokens.",
    ),
    PointSpec("hook_resid_pre", "block", _BPD, "residual stream entering the block"),
    PointSpec(
        "hook_attn_in",
        "block",
        ("batch", "pos", "n_heads", "d_model"),
        _PER_HEAD.format("head") + "that head's q, k and v",
        "mha",
        "{family} uses grouped-query attention here (fewer key/value heads than query heads), so "
        "one input per query head cannot feed the shared keys and values. Use "
        "blocks.{layer}.hook_q_input and hook_k_input / hook_v_input (per key/value head).",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_q_input",
        "block",
        ("batch", "pos", "n_heads", "d_model"),
        _PER_HEAD.format("query head") + "that head's q (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_k_input",
        "block",
        ("batch", "pos", "n_kv_heads", "d_model"),
        _PER_HEAD.format("key/value head") + "that head's k (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_v_input",
        "block",
        ("batch", "pos", "n_kv_heads", "d_model"),
        _PER_HEAD.format("key/value head") + "that head's v (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "ln1.hook_scale",
        "block",
        ("batch", "pos", "1"),
        "ln1 divisor (std or RMS)",
        "ln1",
        _NO_LN1,
    ),
    PointSpec(
        "ln1.hook_normalized",
        "block",
        _BPD,
        "ln1 output, the attention's (or mixer's) input",
        "ln1",
        _NO_LN1,
    ),
    PointSpec(
        "attn.hook_q",
        "block",
        ("batch", "pos", "n_heads", "d_head_qk"),
        "queries before any rotary rotation (after q-norm where the family has one)",
        part="attention",
    ),
    PointSpec(
        "attn.hook_k",
        "block",
        ("batch", "pos", "n_kv_heads", "d_head_qk"),
        "keys before any rotary rotation (after k-norm where the family has one)",
        part="attention",
    ),
    PointSpec(
        "attn.hook_v", "block", ("batch", "pos", "n_kv_heads", "d_head"), "values", part="attention"
    ),
    PointSpec(
        "attn.hook_rot_q",
        "block",
        ("batch", "pos", "n_heads", "d_head_qk"),
        "queries after the rotary rotation",
        "rotary",
        "{family} uses learned absolute positions (hook_pos_embed) or an ALiBi bias in the "
        "scores, so q is never rotated. Use blocks.{layer}.attn.hook_q.",
        part="attention",
    ),
    PointSpec(
        "attn.hook_rot_k",
        "block",
        ("batch", "pos", "n_kv_heads", "d_head_qk"),
        "keys after the rotary rotation",
        "rotary",
        "{family} uses learned absolute positions (hook_pos_embed) or an ALiBi bias in the "
        "scores, so k is never rotated. Use blocks.{layer}.attn.hook_k.",
        part="attention",
    ),
    PointSpec(
        "attn.hook_attn_scores",
        "block",
        ("batch", "n_heads", "q", "k"),
        "scaled (and soft-capped) scores with the mask applied, before softmax",
        part="attention",
    ),
    PointSpec(
        "attn.hook_pattern",
        "block",
        ("batch", "n_heads", "q", "k"),
        "attention weights",
        part="attention",
    ),
    PointSpec(
        "attn.hook_z",
        "block",
        ("batch", "pos", "n_heads", "d_head"),
        "per-head attention output, before the output projection",
        part="attention",
    ),
    PointSpec(
        "attn.hook_result",
        "block",
        ("batch", "pos", "n_heads", "d_model"),
        "each head's output, z @ W_O per head; attention's output is their sum plus b_O (edits "
        "reach it)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_attn_out",
        "block",
        _BPD,
        "what attention adds to the residual stream",
        part="attention",
    ),
    PointSpec(
        "hook_mixer_out",
        "block",
        _BPD,
        "what a layer's sequence mixer other than attention (a state-space, linear-attention or "
        "convolution mixer) adds to the residual stream, in its place",
        part="mixer",
    ),
    PointSpec(
        "hook_resid_mid",
        "block",
        _BPD,
        "residual stream between attention and MLP",
        "sequential",
        "{family} uses a parallel residual: attention and MLP both read the block's input, so "
        "there is no stream between them. Use blocks.{layer}.hook_resid_pre (the MLP's input "
        "stream) or blocks.{layer}.hook_resid_pre + blocks.{layer}.hook_attn_out.",
        part="mlp",
    ),
    PointSpec(
        "hook_mlp_in",
        "block",
        _BPD,
        "the stream the MLP reads, before ln2 (resid_mid, or resid_pre with a parallel "
        "residual); edits reach the MLP only",
        "ln2",
        "{family}'s MLP reads ln1's output (one norm shared with attention), so it has no input "
        "stream of its own. Use blocks.{layer}.ln1.hook_normalized.",
        on_demand=True,
        part="mlp",
    ),
    PointSpec(
        "ln2.hook_scale",
        "block",
        ("batch", "pos", "1"),
        "ln2 divisor (std or RMS)",
        "ln2",
        "{family}'s MLP reads ln1's output (one norm per block). "
        "Use blocks.{layer}.ln1.hook_scale.",
        part="mlp",
    ),
    PointSpec(
        "ln2.hook_normalized",
        "block",
        _BPD,
        "ln2 output, the MLP's input",
        "ln2",
        "{family}'s MLP reads ln1's output (one norm per block). "
        "Use blocks.{layer}.ln1.hook_normalized.",
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_pre",
        "block",
        ("batch", "pos", "d_mlp"),
        "MLP pre-activation (the gate's, in gated MLPs)",
        "dense_mlp",
        _MOE_MLP,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_pre_linear",
        "block",
        ("batch", "pos", "d_mlp"),
        "the linear (up) branch of a gated MLP",
        "gated_mlp",
        "{family}'s MLP is not gated (one input projection). Use blocks.{layer}.mlp.hook_pre.",
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_post",
        "block",
        ("batch", "pos", "d_mlp"),
        "MLP hidden activation, the output projection's input",
        "dense_mlp",
        _MOE_MLP,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_router_logits",
        "block",
        ("batch", "pos", "n_experts"),
        "the router's logits per expert (read-only: routing is decided inside the router; "
        "edit hook_expert_weights / hook_expert_indices)",
        "moe",
        _DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_indices",
        "block",
        ("batch", "pos", "top_k"),
        "the experts each token is routed to (integer ids)",
        "moe",
        _DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_weights",
        "block",
        ("batch", "pos", "top_k"),
        "the weight of each chosen expert's output",
        "moe",
        _DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_out",
        "block",
        ("batch", "pos", "top_k", "d_model"),
        "each chosen expert's output, before its weight (computed only when hooked); the "
        "experts' part of hook_mlp_out is their weighted sum",
        "moe",
        _DENSE,
        part="mlp",
    ),
    PointSpec(
        "hook_mlp_out", "block", _BPD, "what the MLP adds to the residual stream", part="mlp"
    ),
    PointSpec("hook_per_layer_out", "block", _BPD, _PLE, "per_layer_input", _NO_PLE),
    PointSpec("hook_resid_post", "block", _BPD, "residual stream leaving the block"),
    PointSpec("ln_final.hook_scale", "final", ("batch", "pos", "1"), "final norm divisor"),
    PointSpec("ln_final.hook_normalized", "final", _BPD, "final norm output, the unembed's input"),
)

POINTS_BY_SUFFIX: dict[str, PointSpec] = {p.suffix: p for p in POINTS}


ON_DEMAND: frozenset[str] = frozenset(p.suffix for p in POINTS if p.on_demand)


def is_on_demand(name: str) -> bool:
    """Whether hook `name` is an on-demand point (left out when caching every point)."""
    return split_name(name)[1] in ON_DEMAND


def point_name(spec: PointSpec, layer: int | None) -> str:
    """The full hook name of a row, e.g. `blocks.3.attn.hook_z`."""
    return f"blocks.{layer}.{spec.suffix}" if spec.scope == "block" else spec.suffix


def head_axis_of(name: str) -> int | None:
    """The head axis (with batch) of the activation at hook `name`; None for residual-like."""
    row = POINTS_BY_SUFFIX.get(split_name(name)[1])
    return None if row is None else row.head_axis


def split_name(name: str) -> tuple[int | None, str]:
    """`blocks.3.attn.hook_z` -> (3, "attn.hook_z"); `hook_embed` -> (None, "hook_embed")."""
    if name.startswith("blocks."):
        head, _, rest = name[len("blocks.") :].partition(".")
        if head.isdigit():
            return int(head), rest
    return None, name
