"""OPT: learned positions (offset 2), LayerNorm, MLP layers directly in the block.

OPT scales q before attention (`q_proj(x) * scaling`), so `hook_q` is read at `q_proj` to keep
its meaning (unscaled queries) the same as on other families. Only pre-LN OPT with no
embedding projection (125m, 1.3b and up, not 350m) is described by this adapter.
"""

from ._spec import ArchSpec, Proj

SPEC = ArchSpec(
    family="opt",
    hf_classes=("OPTForCausalLM",),
    embed="model.decoder.embed_tokens",
    pos_embed="model.decoder.embed_positions",
    blocks="model.decoder.layers",
    final_norm="model.decoder.final_layer_norm",
    unembed="lm_head",
    ln1="self_attn_layer_norm",
    attn="self_attn",
    attn_out="self_attn",
    ln2="final_layer_norm",
    mlp_in="fc1",
    mlp_down="fc2",
    mlp_out="fc2",
    q_source=Proj("self_attn.q_proj"),
    qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    o_proj="self_attn.out_proj",
    norm="layernorm",
    positional="learned",
    config_requirements=(
        (
            "do_layer_norm_before",
            True,
            "post-LN OPT (do_layer_norm_before=False, e.g. opt-350m) normalizes after the "
            "residual add, so the residual-stream points would not mean the same thing",
        ),
        (
            "_remove_final_layer_norm",
            False,
            "this OPT checkpoint has no final layer norm",
        ),
    ),
)
