"""ModernBERT's decoder: pre-LN blocks with rotary attention (global and sliding-window layers),
a gated MLP whose `Wi` holds the activated half then the linear half, and BERT's ends: a
LayerNorm of the token embedding before block 0, and an LM head (dense, activation, LayerNorm)
between the final norm and the unembedding.

Layer 0 has no norm before attention (an identity in `attn_norm`): the embedding's norm is the
last thing the stream went through, so its attention reads `blocks.0.hook_resid_pre` itself.
That layer has no `ln1` points (`no_ln1_layers`); the others do.
"""

from ._spec import ArchSpec, Proj

SPEC = ArchSpec(
    family="modernbert-decoder",
    hf_classes=("ModernBertDecoderForCausalLM",),
    embed="model.embeddings.tok_embeddings",
    embed_sum_norm="model.embeddings.norm",
    blocks="model.layers",
    final_norm="model.final_norm",
    head="lm_head",
    unembed="decoder",
    ln1="attn_norm",
    no_ln1_layers=(0,),
    attn="attn",
    attn_out="attn",
    ln2="mlp_norm",
    mlp_in="mlp.Wi",
    mlp_gate_up_fused=True,
    mlp_down="mlp.Wo",
    mlp_out="mlp",
    q_source=Proj("attn.q_proj"),
    k_source=Proj("attn.k_proj"),
    qkv=("attn.q_proj", "attn.k_proj", "attn.v_proj"),
    o_proj="attn.Wo",
    norm="layernorm",
    positional="rotary",
)
