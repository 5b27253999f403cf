"""GPT-NeoX (Pythia): partial rotary, LayerNorm, parallel residual (per config), fused q/k/v.

`query_key_value` holds q, k, v interleaved per head; pre-rotary q and k are read there.
"""

from ._spec import ArchSpec, Proj

_QKV = Proj("attention.query_key_value", "per_head_qkv")

SPEC = ArchSpec(
    family="gpt_neox",
    hf_classes=("GPTNeoXForCausalLM",),
    embed="gpt_neox.embed_in",
    blocks="gpt_neox.layers",
    final_norm="gpt_neox.final_layer_norm",
    unembed="lm_head",
    ln1="input_layernorm",
    attn="attention",
    attn_out="attention",
    ln2="post_attention_layernorm",
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp",
    q_source=_QKV,
    k_source=_QKV,
    qkv=(_QKV.module,) * 3,
    qkv_layout="per_head_qkv",
    o_proj="attention.dense",
    norm="layernorm",
    parallel_residual="use_parallel_residual",
)
