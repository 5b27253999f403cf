"""Persimmon: partial rotary, LayerNorm (also on each head's q and k), fused q/k/v interleaved
per head; its attention calls transformers' attention interface.

Pre-rotary q and k are read after the per-head q/k LayerNorms, or at `query_key_value` when the
configuration has none (one adapter for each, `SPECS`). Fuyu's causal LM is a Persimmon language
model (`model.language_model`) with image patches merged into its embeddings when it is given
any: on text-only prompts it is that Persimmon model, and the same adapters describe it at
those paths (the image inputs have no hook points: `pixel_values` is refused by the wrapper).
"""

from dataclasses import replace

from ._spec import ArchSpec, Proj

_QKV = "self_attn.query_key_value"

QK_NORM = ArchSpec(
    family="persimmon",
    hf_classes=("PersimmonForCausalLM",),
    embed="model.embed_tokens",
    blocks="model.layers",
    final_norm="model.final_layernorm",
    unembed="lm_head",
    ln1="input_layernorm",
    attn="self_attn",
    attn_out="self_attn",
    ln2="post_attention_layernorm",
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp",
    q_source=Proj("self_attn.q_layernorm", "bphd"),
    k_source=Proj("self_attn.k_layernorm", "bphd"),
    qkv=(_QKV,) * 3,
    qkv_layout="per_head_qkv",
    o_proj="self_attn.dense",
    norm="layernorm",
    config_requirements=(("qk_layernorm", True, "this variant normalizes q and k per head"),),
)
NO_QK_NORM = replace(
    QK_NORM,
    q_source=Proj(_QKV, "per_head_qkv"),
    k_source=Proj(_QKV, "per_head_qkv"),
    config_requirements=(("qk_layernorm", False, "this variant has no q/k norms"),),
)


def _fuyu(spec: ArchSpec) -> ArchSpec:
    """`spec` at the paths of Fuyu's language model."""
    lm = "model.language_model"
    return replace(
        spec,
        family="fuyu",
        hf_classes=("FuyuForCausalLM",),
        embed=f"{lm}.embed_tokens",
        blocks=f"{lm}.layers",
        final_norm=f"{lm}.final_layernorm",
    )


SPECS = (QK_NORM, NO_QK_NORM, _fuyu(QK_NORM), _fuyu(NO_QK_NORM))
SPEC = QK_NORM
