"""The names transformers gives each role in a decoder block: the data `derive` matches against.

Each tuple lists candidate names in order of preference; `derive` takes the first one a model has.
"""

from __future__ import annotations

#: Candidate child names, in order of preference, for each role in a block.
ATTN = ("self_attn", "attn", "self_attention", "attention")
LN1 = (
    "input_layernorm", "attention_layernorm", "ln_1", "self_attn_layer_norm", "attn_norm",
    "operator_norm", "temporal_pre_norm", "norm",
)  # fmt: skip
#: a norm before the MLP that, when present, makes post_attention_layernorm an output norm
PRE_MLP = ("pre_feedforward_layernorm", "pre_mlp_layernorm", "pre_ff_layernorm")
LN2 = (
    "post_attention_layernorm", "feedforward_layernorm", "ln_2", "final_layer_norm", "mlp_norm",
    "ffn_norm", "channel_pre_norm",
)  # fmt: skip
ATTN_OUT_NORM = ("post_self_attn_layernorm", "post_norm1")
MLP_OUT_NORM = ("post_feedforward_layernorm", "post_mlp_layernorm", "post_norm2")
#: the norm on what a block's per-layer embedding branch adds after the MLP (Gemma 3n / 4)
PER_LAYER_OUT = ("post_per_layer_input_norm",)
#: a block buffer multiplying the whole stream after the block's parts are added (Gemma 4)
STREAM_SCALE = ("layer_scalar",)
MLP = ("mlp", "feed_forward", "ffn", "mlp_block", "block_sparse_moe")
#: (input projection, up projection or None, output projection, input is fused gate+up)
MLP_PROJ = (
    ("gate_proj", "up_proj", "down_proj", False),
    ("gate_up_proj", None, "down_proj", True),
    ("up_proj", None, "down_proj", False),
    ("fc1", None, "fc2", False),
    ("w1", "w3", "w2", False),
    ("c_fc", None, "c_proj", False),
    ("dense_h_to_4h", None, "dense_4h_to_h", False),
)
#: the module whose input is attn.hook_z (a norm on z before the output projection first)
O_PROJ = ("attn_sub_norm", "o_proj", "dense", "out_proj", "c_proj")
FINAL_NORM = (
    "norm", "final_layernorm", "ln_f", "final_layer_norm", "norm_f", "layer_norm", "embedding_norm",
    "final_norm",
)  # fmt: skip
POS_EMBED = ("embed_positions", "wpe", "position_embeddings")
#: the router of a mixture-of-experts MLP (next to its `experts`)
ROUTER = ("gate", "router")
#: factors applied outside modules: config attributes scaling the token embedding, block
#: attributes scaling what attention and the MLP add to the stream (Granite, MiniCPM3)
EMBED_SCALE = ("embedding_multiplier",)
OUTPUT_SCALE = ("residual_multiplier", "residual_scale")
#: the arguments of a mixture of experts' `experts` module (the MoE points read them)
EXPERTS_CALL = ("hidden_states", "top_k_index", "top_k_weights")
#: config attributes of logit scaling: (attribute, "mul" or "div")
LOGIT_SCALES = (("logit_scale", "mul"), ("logits_scaling", "div"))
