"""The messages of the hook-point table (`points.py`): why a point is missing, what to use."""

from __future__ import annotations

PER_HEAD = "the residual stream entering the block (before ln1), one copy per {}; edits reach "
MOE_MLP = (
    "{family}'s MLP is a mixture of experts, with no single hidden layer. Use "
    "blocks.{layer}.mlp.hook_router_logits / hook_expert_indices / hook_expert_weights, or "
    "blocks.{layer}.hook_mlp_out."
)
DENSE = "{family}'s MLP is dense (no experts). Use blocks.{layer}.mlp.hook_pre / hook_post."
NO_LN1 = (
    "{family} has no norm before attention: its norms are applied to what attention and the "
    "MLP add to the stream (blocks.{layer}.hook_attn_out / hook_mlp_out are their outputs). "
    "Use blocks.{layer}.hook_resid_pre, the attention's input."
)
NO_ROTARY = (
    "{{family}} uses learned absolute positions (hook_pos_embed) or a bias in the scores "
    "(ALiBi, relative logits), so {x} is never rotated. Use blocks.{{layer}}.attn.hook_{x}."
)
FINAL_OUT = "final norm output, the unembed's input"
NO_FINAL_NORM = (
    "{family} has no final norm: its blocks are post-LN, and the last block's output (its "
    "hook_normalized_resid_post, ln2's output) is the unembedding's input. Use that point."
)
ONE_NORM = (
    "{{family}}'s MLP reads ln1's output (one norm per block). Use blocks.{{layer}}.ln1.{point}."
)
PLE = "what a per-layer embedding branch (Gemma 3n/4) adds to the stream after the MLP"
ADAPTER = (
    "what the block's language adapter adds (X-MOD: a bottleneck MLP per language, on "
    "ln2.hook_normalized; the block's output normalizes their sum with ln2's module again)"
)
NO_ADAPTER = "{family} has no language adapter in its blocks. Use blocks.{layer}.hook_mlp_out."
NO_PLE = "{family} has no per-layer embedding branch. Use blocks.{layer}.hook_mlp_out."

NO_PART: dict[str, str] = {
    "attention": "layer {layer} of this model is a {mixer} layer and has no attention{why}; layers "
    "with attention: {attn_layers}. Use blocks.{layer}.hook_mixer_out for what its mixer adds to "
    "the residual stream.",
    "mixer": "layer {layer} of this model is an {mixer} layer, not a state-space or other "
    "sequence mixer. Use blocks.{layer}.hook_attn_out for what it adds to the residual stream.",
    "whole": "hooklens keeps layer {layer} ({mixer}) whole, with only the residual stream's points "
    "(blocks.{layer}.hook_resid_pre, what it reads, and hook_resid_post, what it writes), "
    "because the template cannot take it apart: {reason}.",
    "inside": "hooklens keeps layer {layer} ({mixer}) whole, with the residual stream's points "
    "(blocks.{layer}.hook_resid_pre and hook_resid_post) and its attention's internals "
    "(blocks.{layer}.attn.hook_q, hook_k, hook_v, hook_attn_scores, hook_pattern, hook_z) only, "
    "because {reason}.",
    "mlp": "layer {layer} of this model has no MLP (it is a {mixer} layer alone). Use "
    "blocks.{layer}.hook_resid_post.",
    "streams": "on {family}, {streams}. Its blocks' "
    "parts have their points: blocks.{layer}.ln1.hook_normalized (what attention reads), the "
    "attention's, blocks.{layer}.hook_attn_out and hook_mlp_out (what attention and the MLP "
    "output, before the block writes them into the streams).",
    "reused_kv": "layer {layer} reuses the keys and values layer {kv_source} computed (KV "
    "sharing): it computes no keys of its own, so it has no keys before the rotation. Layer "
    "{kv_source}'s are blocks.{kv_source}.attn.hook_k (an edit there reaches every layer that "
    "reuses them); the rotated keys this layer's scores read are blocks.{layer}.attn.hook_rot_k.",
    "reused_rounded_v": "layer {layer} reuses the values layer {kv_source} computed (KV sharing) "
    "and rounds them before attending: it has no values of its own before the rounding. Layer "
    "{kv_source}'s are blocks.{kv_source}.attn.hook_v (an edit there reaches every layer that "
    "reuses them); what this layer's z is made of is blocks.{layer}.attn.hook_rounded_v.",
    "skipped": "layer {layer} ({mixer}) does not run here: {reason}. Its output is its input, "
    "so its only points are blocks.{layer}.hook_resid_pre and hook_resid_post (the same "
    "stream).",
}
#: an on-demand point a layer that has its part still lacks: its recomputation would be wrong
LEFT_OUT = (
    "on this layer the point is recomputed from weights hooklens cannot read, or that do not "
    "give what the model computes (a factor the block applies outside the projections, such as "
    "a residual or µP multiplier, or a norm inside a projection), so it is left out rather than "
    "computed wrong. Read the points it would be computed from (attn.hook_z, ln1.hook_normalized)."
)
