"""GPTBigCode (StarCoder 1, SantaCoder): GPT-2's block with multi-query attention, learned
positions, LayerNorm; `c_attn` holds q, k, v (q/k/v read inside attention, as on GPT-2).

With `multi_query` (the default), `c_attn` holds every query head, then one key head and one
value head; without it, q, k and v interleaved per head. One adapter for each (`SPECS`).
"""

from dataclasses import replace

from ._spec import ArchSpec

MULTI_QUERY = ArchSpec(
    family="gpt_bigcode",
    hf_classes=("GPTBigCodeForCausalLM",),
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    attn="attn",
    attn_out="attn",
    ln2="ln_2",
    mlp_in="mlp.c_fc",
    mlp_down="mlp.c_proj",
    mlp_out="mlp",
    qkv=("attn.c_attn",) * 3,
    qkv_layout="concat_qkv",
    o_proj="attn.c_proj",
    norm="layernorm",
    positional="learned",
    # what the model uses (a config's num_key_value_heads may say otherwise)
    kv_heads=lambda config: 1 if config.multi_query else int(config.num_attention_heads),
    config_requirements=(
        ("multi_query", True, "this variant has one key/value head"),
        ("add_cross_attention", False, "a decoder-only model has no cross-attention"),
    ),
)
SPECS = (
    MULTI_QUERY,
    replace(
        MULTI_QUERY,
        qkv_layout="per_head_qkv",
        config_requirements=(
            ("multi_query", False, "this variant has a key/value head per query head"),
            ("add_cross_attention", False, "a decoder-only model has no cross-attention"),
        ),
    ),
)
SPEC = MULTI_QUERY
