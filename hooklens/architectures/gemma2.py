"""Gemma 2: sandwich norms, (1 + w) RMSNorm, attention and final-logit soft-capping.

`hook_attn_out` / `hook_mlp_out` are the post-attention / post-feedforward norms' outputs (that
is what is added to the residual stream); ln2 is `pre_feedforward_layernorm`. Soft-capped
attention cannot use fused sdpa, so its layers always run the explicit attention path.
"""

from ._llama_like import llama_like

SPEC = llama_like(
    "gemma2",
    ("Gemma2ForCausalLM",),
    attn_out="post_attention_layernorm",
    ln2="pre_feedforward_layernorm",
    mlp_out="post_feedforward_layernorm",
    norm_weight_offset=1.0,
    final_logit_softcap="final_logit_softcapping",
)
