"""GPT-2: learned positions, LayerNorm, fused `c_attn` (q, k, v read inside attention)."""

from ._spec import ArchSpec

SPEC = ArchSpec(
    family="gpt2",
    hf_classes=("GPT2LMHeadModel",),
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
)
