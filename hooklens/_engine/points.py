"""The hook-point table: every hook point hooklens knows, in execution order; the single source
of truth for hook names, shapes and meanings. Adapters pick the optional rows a family has
(`requires`), the engine builds its points from it, and the README's tables are generated from it.

Shapes use symbols `HookedModelConfig` resolves: `batch`, `pos` (positions of this forward),
`d_model`, `n_heads`, `n_kv_heads`, `d_head`, `d_head_qk` (q and k's width: `d_head` except in
multi-head latent attention), `d_mlp`, `q` / `k` (query and key positions; `k` includes cached
positions while generating) and the literal `1`.
"""

from __future__ import annotations

from . import point_messages as _msg
from .point_messages import DENSE, MOE_MLP, NO_LN1, NO_PLE, NO_ROTARY, ONE_NORM, PER_HEAD, PLE
from .point_spec import Feature, PointSpec

_BPD = ("batch", "pos", "d_model")
_BHQK = ("batch", "n_heads", "q", "k")
_FINAL: tuple[Feature, str] = ("final_norm", _msg.NO_FINAL_NORM)  # absent: BART's last ln2


POINTS: tuple[PointSpec, ...] = (
    PointSpec(
        "hook_embed",
        "model",
        _BPD,
        "token embeddings (after any embedding scale; where narrower embeddings are projected to "
        "the stream, the projection's output, positions and token types included)",
    ),
    PointSpec(
        "hook_pos_embed",
        "model",
        _BPD,
        "learned position embeddings, added to hook_embed",
        "learned_pos",
        "{family} has no learned position embedding added to the stream: positions enter "
        "inside attention (by rotating q and k: blocks.{layer}.attn.hook_rot_q / hook_rot_k, "
        "or as an ALiBi bias in blocks.{layer}.attn.hook_attn_scores), or, in a hybrid or "
        "state-space model, through the order its recurrent mixers read the tokens, or are "
        "added to embeddings narrower than the stream before their projection to it "
        "(hook_embed, the projection's output, includes them).",
    ),
    PointSpec(
        "hook_token_type_embed",
        "model",
        _BPD,
        "token-type embeddings (type 0: a causal-LM call passes none), added to hook_embed",
        "token_types",
        "{family} has no token-type embedding added to the stream (where its embeddings are "
        "narrower than the stream, they are added before the projection: in hook_embed).",
    ),
    PointSpec("hook_resid_pre", "block", _BPD, "residual stream entering the block"),
    PointSpec(
        "hook_attn_in",
        "block",
        ("batch", "pos", "n_heads", "d_model"),
        PER_HEAD.format("head") + "that head's q, k and v",
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
        PER_HEAD.format("query head") + "that head's q (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_k_input",
        "block",
        ("batch", "pos", "n_kv_heads", "d_model"),
        PER_HEAD.format("key/value head") + "that head's k (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "hook_v_input",
        "block",
        ("batch", "pos", "n_kv_heads", "d_model"),
        PER_HEAD.format("key/value head") + "that head's v (after hook_attn_in's edits)",
        on_demand=True,
        part="attention",
    ),
    PointSpec(
        "ln1.hook_scale",
        "block",
        ("batch", "pos", "1"),
        "ln1 divisor (std or RMS)",
        "ln1",
        NO_LN1,
    ),
    PointSpec(
        "ln1.hook_normalized",
        "block",
        _BPD,
        "ln1 output, the attention's (or mixer's) input",
        "ln1",
        NO_LN1,
    ),
    PointSpec(
        "attn.hook_q",
        "block",
        ("batch", "pos", "n_heads", "d_head_qk"),
        "queries before any rotary rotation (after a q-norm that comes before it)",
        part="attention",
    ),
    PointSpec(
        "attn.hook_k",
        "block",
        ("batch", "pos", "n_kv_heads", "d_head_qk"),
        "keys before any rotary rotation (after a k-norm that comes before it)",
        part="attention",
    ),
    PointSpec(
        "attn.hook_v", "block", ("batch", "pos", "n_kv_heads", "d_head"), "values", part="attention"
    ),
    PointSpec(
        "attn.hook_rounded_v",
        "block",
        ("batch", "pos", "n_kv_heads", "d_head"),
        "values as the attention reads them where it rounds them first (Kolibri 1.1's sparse "
        "layers: NVFP4): what hook_z is made of",
        "rounded_kv",
        "layer {layer} of {family} attends to its values as computed, without rounding them: "
        "blocks.{layer}.attn.hook_v is what hook_z is made of.",
        part="attention",
    ),
    PointSpec(
        "attn.hook_rot_q",
        "block",
        ("batch", "pos", "n_heads", "d_head_qk"),
        "queries after the rotary rotation (and a q-norm after it): what the scores read",
        "rotary",
        NO_ROTARY.format(x="q"),
        part="attention",
    ),
    PointSpec(
        "attn.hook_rot_k",
        "block",
        ("batch", "pos", "n_kv_heads", "d_head_qk"),
        "keys after the rotary rotation (and a k-norm after it): what the scores read",
        "rotary",
        NO_ROTARY.format(x="k"),
        part="attention",
    ),
    PointSpec(
        "attn.hook_attn_scores",
        "block",
        _BHQK,
        "scaled (and soft-capped) scores before softmax; masked cells -inf, as in TransformerLens",
        part="attention",
    ),
    PointSpec(
        "attn.hook_sink",
        "block",
        ("batch", "n_heads", "q"),
        "the share of each query's attention its head's learned sink takes (read-only; "
        "hook_pattern holds the keys' shares: pattern.sum(-1) + sink = 1)",
        "sinks",
        "layer {layer} of {family} has no attention sink: its hook_pattern rows sum to 1.",
        part="attention",
    ),
    PointSpec(
        "attn.hook_pattern",
        "block",
        _BHQK,
        "attention weights (over the keys; with a sink, its share is left out)",
        part="attention",
    ),
    PointSpec(
        "attn.hook_z",
        "block",
        ("batch", "pos", "n_heads", "d_head"),
        "per-head attention output: the pattern-weighted values",
        part="attention",
    ),
    PointSpec(
        "attn.hook_gate",
        "block",
        ("batch", "pos", "n_heads", "d_head"),
        "the gate on attention's output, after its nonlinearity: o_proj reads z * gate",
        "gated_attn",
        "{family}'s attention output is not gated: o_proj reads blocks.{layer}.attn.hook_z.",
        part="attention",
    ),
    PointSpec(
        "attn.hook_result",
        "block",
        ("batch", "pos", "n_heads", "d_model"),
        "each head's output, z @ W_O per head (z * hook_gate where attention is gated); "
        "attention's output is their sum plus b_O (edits reach it)",
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
        "what a layer's sequence mixer other than attention (a state-space, linear-attention, "
        "convolution or recurrent mixer) adds to the residual stream, in attention's place or "
        "beside it",
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
        ONE_NORM.format(point="hook_scale"),
        part="mlp",
    ),
    PointSpec(
        "ln2.hook_normalized",
        "block",
        _BPD,
        "ln2 output, the MLP's input",
        "ln2",
        ONE_NORM.format(point="hook_normalized"),
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_pre",
        "block",
        ("batch", "pos", "d_mlp"),
        "MLP pre-activation (the gate's, in gated MLPs)",
        "dense_mlp",
        MOE_MLP,
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
        MOE_MLP,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_router_logits",
        "block",
        ("batch", "pos", "n_router_classes"),
        "the router's logits per expert, then per class routing to no expert (ZAYA's skip "
        "class; read-only: routing is decided inside the router; edit hook_expert_weights / "
        "hook_expert_indices)",
        "moe",
        DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_indices",
        "block",
        ("batch", "pos", "top_k"),
        "the experts each token is routed to (integer ids)",
        "moe",
        DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_weights",
        "block",
        ("batch", "pos", "top_k"),
        "the weight of each chosen expert's output (Llama 4: its score, which scales the "
        "expert's input)",
        "moe",
        DENSE,
        part="mlp",
    ),
    PointSpec(
        "mlp.hook_expert_out",
        "block",
        ("batch", "pos", "top_k", "d_model"),
        "each chosen expert's output, before its weight (computed only when hooked); the "
        "experts' part of hook_mlp_out is their weighted sum (Llama 4: the output on the "
        "scored input, summed unweighted)",
        "moe",
        DENSE,
        part="mlp",
    ),
    PointSpec(
        "hook_mlp_out", "block", _BPD, "what the MLP adds to the residual stream", part="mlp"
    ),
    PointSpec("hook_per_layer_out", "block", _BPD, PLE, "per_layer_input", NO_PLE),
    PointSpec(
        "hook_resid_post", "block", _BPD, "residual stream leaving the block (post-LN: ln2's input)"
    ),
    PointSpec("hook_adapter_out", "block", _BPD, _msg.ADAPTER, "adapter", _msg.NO_ADAPTER),
    PointSpec(
        "hook_normalized_resid_post",
        "block",
        _BPD,
        "post-LN blocks: ln2's output, the block's output (the next block's hook_resid_pre; "
        "with a language adapter, ln2's module applied again, to ln2's output + hook_adapter_out)",
        "post_ln",
        "{family} normalizes the stream before attention and the MLP (pre-norm): the block's "
        "output is blocks.{layer}.hook_resid_post.",
    ),
    PointSpec("ln_final.hook_scale", "final", ("batch", "pos", "1"), "final norm divisor", *_FINAL),
    PointSpec("ln_final.hook_normalized", "final", _BPD, _msg.FINAL_OUT, *_FINAL),
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
