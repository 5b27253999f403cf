"""GPT-J: partial rotary (rotate-every-two), LayerNorm, parallel residual with one shared norm."""

from ._spec import ArchSpec, Proj

SPEC = ArchSpec(
    family="gptj",
    hf_classes=("GPTJForCausalLM",),
    embed="transformer.wte",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    attn="attn",
    attn_out="attn",
    ln2=None,  # the MLP reads ln_1's output
    mlp_in="mlp.fc_in",
    mlp_down="mlp.fc_out",
    mlp_out="mlp",
    q_source=Proj("attn.q_proj"),
    k_source=Proj("attn.k_proj"),
    qkv=("attn.q_proj", "attn.k_proj", "attn.v_proj"),
    o_proj="attn.out_proj",
    norm="layernorm",
    parallel_residual=True,
)
