"""The names transformers gives each role in a decoder block: the data `derive` matches against.

Each tuple lists candidate names in order of preference; `derive` takes the first one a model has.
"""

from __future__ import annotations

#: Candidate child names, in order of preference, for each role in a block.
ATTN = ("self_attn", "attn", "self_attention", "attention")
LN1 = (
    "input_layernorm", "attention_layernorm", "ln_1", "self_attn_layer_norm", "attn_norm",
    "operator_norm", "temporal_pre_norm", "norm", "ln1",
    "norm_mlstm",
)  # fmt: skip
#: a norm before the MLP that, when present, makes post_attention_layernorm an output norm
PRE_MLP = ("pre_feedforward_layernorm", "pre_mlp_layernorm", "pre_ff_layernorm")
LN2 = (
    "post_attention_layernorm", "feedforward_layernorm", "ln_2", "final_layer_norm", "mlp_norm",
    "ffn_norm", "channel_pre_norm", "ln2", "norm_ffn",
)  # fmt: skip
#: a module in a norm's place that wraps a norm and a gate computed from the norm's output
#: (AXK2's `AXK2GatedRMSNorm`: norm(x) * sigmoid(mlp(norm(x)))): (its child holding the norm,
#: its child computing the gate); the ln points are the inner norm's (`ArchSpec.gated_norm`)
GATED_NORM = ("norm", "mlp")
ATTN_OUT_NORM = ("post_self_attn_layernorm", "post_norm1", "post_operator_norm")
MLP_OUT_NORM = ("post_feedforward_layernorm", "post_mlp_layernorm", "post_norm2", "post_ffn_norm")
#: a block's convolution over positions on what attention or the MLP outputs, before the block
#: adds it to the stream (Inkling's short convolutions, conv(x) + x with a causal depthwise
#: kernel): `hook_attn_out` / `hook_mlp_out` are read at its output; no head's or neuron's
#: result is what it adds at a position (`ArchSpec.convs`)
ATTN_OUT_CONV = ("attn_sconv",)
MLP_OUT_CONV = ("mlp_sconv",)
#: an attention module's convolutions over positions on a projection's output, before the
#: attention function reads it (Inkling's keys and values): role -> candidate child names
QKV_CONV = {"q": ("q_sconv",), "k": ("k_sconv",), "v": ("v_sconv",)}
#: an attention module's child computing an additive bias on the scores from the query's and
#: key's positions (Inkling's relative logits, passed to the attention function as
#: `position_bias`): the model's positions, with no rotation nor position embedding
SCORE_BIAS = ("rel_logits_proj",)
MLP = ("mlp", "feed_forward", "ffn", "mlp_block", "block_sparse_moe", "shared_mlp")
#: an MLP beside the block's MLP, whose output the block adds to the MLP's in the same step
#: (GraniteMoeShared's and GraniteMoeHybrid's shared experts): `hook_mlp_out` is their sum
MLP_BESIDE = ("shared_mlp",)
#: the norm on what a block's per-layer embedding branch adds after the MLP (Gemma 3n / 4)
PER_LAYER_OUT = ("post_per_layer_input_norm",)
#: a block buffer multiplying the whole stream after the block's parts are added (Gemma 4)
STREAM_SCALE = ("layer_scalar",)
#: scalar buffers of an attention module by which it multiplies q and k after their norms
#: (Ergo's full-context layers, `global_attention_scale ** 0.5`)
QK_SCALE = ("qk_scale",)
#: (input projection, up projection or None, output projection, input is fused gate+up)
MLP_PROJ = (
    ("gate_proj", "up_proj", "down_proj", False),
    ("gate_up_proj", None, "down_proj", True),
    ("up_proj", None, "down_proj", False),
    ("fc1", None, "fc2", False),
    ("w1", "w3", "w2", False),
    ("c_fc", None, "c_proj", False),
    ("dense_h_to_4h", None, "dense_4h_to_h", False),
    ("proj_up_gate", "proj_up", "proj_down", False),
    ("key", None, "value", False),  # RWKV's channel mixing (its receptance gates the output)
)
#: the module whose input is attn.hook_z (a norm on z before the output projection first)
O_PROJ = ("attn_sub_norm", "o_proj", "dense", "out_proj", "c_proj")
FINAL_NORM = (
    "norm", "final_layernorm", "ln_f", "final_layer_norm", "norm_f", "layer_norm", "embedding_norm",
    "final_norm", "layernorm_embedding", "ln_out",
    "out_norm",
)  # fmt: skip
POS_EMBED = ("embed_positions", "wpe", "position_embeddings")
#: an attention module's learned sink logits, one per head (passed to the attention function
#: as `s_aux`, joined to the softmax and dropped)
SINKS = ("sinks",)
#: the router of a mixture-of-experts MLP (next to its `experts`)
ROUTER = ("gate", "router")
#: config attributes giving the number of parallel residual streams -> what keeps them:
#: hyper-connections (Qwen4-Exp, DeepSeek V4, GLM-5 Next, Hunyuan V4), alternating updates
#: (Gemma 3n's AltUp predictions of the stream); hooklens's points assume one stream
HYPER_STREAMS = {
    "hc_count": "hyper-connections",
    "hc_mult": "hyper-connections",
    "altup_num_inputs": "alternating updates",
}
#: factors applied outside modules: config attributes scaling the token embedding, block
#: attributes scaling what attention and the MLP add to the stream (Granite, MiniCPM3)
EMBED_SCALE = ("embedding_multiplier",)
#: a norm of the embedding that the first block applies to its input before anything else
#: (RWKV's `pre_ln`, which only block 0 has): block 0's `hook_resid_pre` is its output
EMBED_NORM_IN_BLOCK = ("pre_ln",)
#: block attributes of a block whose residual is the normalized stream, times a factor
#: (MiniMax: `alpha * ln1(x) + beta * attn(ln1(x))`, then the same around the MLP)
NORMED_RESIDUAL = ("attn_alpha_factor", "mlp_alpha_factor")
#: block attributes of a block that scales the stream itself at each addition, by the index of
#: the addition (Beam: `x * sqrt((k - 1) / k) + part / sqrt(k)`, k the attribute's value)
DEPTH_SCALED_RESIDUAL = ("attn_residual_add_idx", "mlp_residual_add_idx")
#: block parameters of a block whose stream moves towards each part's normalized output at a
#: learned per-channel rate instead of adding it (Dory's nGPT layers: x + r * (part - x), with
#: x the normalized stream)
INTERPOLATED_RESIDUAL = ("lambda_1", "lambda_2")
#: block submodules that mix a part's output into the stream with learned per-channel gates
#: instead of adding it (Ergo: `sigmoid(w) * part + g(w) * x`, called with both)
GATED_RESIDUAL = ("attention_residual_gate", "feedforward_residual_gate")
#: block submodules that shift and scale a part's output and the stream by learned per-channel
#: parameters before adding them (ZAYA: `(part + c) * a + (x + d) * b`, called with both)
AFFINE_RESIDUAL = ("post_attention_residual_scale", "post_mlp_residual_scale")
#: a config attribute by which the model halves the residual stream between blocks every so
#: many layers at inference (RWKV's `rescale_every`; 0 or less: never)
STREAM_HALVING = ("rescale_every",)
#: a config attribute giving a number of learned prompt tokens the model prepends to every
#: input inside its forward and drops after its last block (CPM-Ant's `prompt_length`)
PROMPT_PREFIX = ("prompt_length",)
#: functions of a model's module that its attention applies to the keys and values after
#: computing them and before attending (Kolibri 1.1's sparse layers round them to NVFP4)
KV_ROUNDING = ("nvfp4_fake_quantize",)
#: (shift, scale): parameters of the blocks' parent by which the model shifts and scales the
#: token embeddings outside any module before block 0 (ZAYA's `(x + bias) * scale`): hook_embed
#: holds the result, and W_E too
EMBED_AFFINE = ("input_hidden_states_bias", "input_hidden_states_scale")
#: a config attribute giving how many layers make one block whose summed output later layers
#: read through a learned attention over all earlier blocks' (Inkling 2's attention residuals)
ATTENTION_RESIDUALS = ("n_layers_per_attn_res_block",)
OUTPUT_SCALE = ("residual_multiplier", "residual_scale")
#: factors a block applies to one part outside the part's module (`ArchSpec.factors`): role ->
#: (where the attribute sits: "block", "attn" or "mlp"; its candidate names). Falcon-H1's µP
#: multipliers: on attention's input and output, on its keys, on the mixer's output, and on
#: the MLP's gate projection before its activation
FACTORS = {
    "attn_in": ("block", ("attention_in_multiplier",)),
    "k": ("attn", ("key_multiplier",)),
    "attn_out": ("block", ("attn_out_multiplier",)),
    "mixer_out": ("block", ("ssm_out_multiplier",)),
    "mlp_pre": ("mlp", ("gate_multiplier",)),
}
#: the arguments of a mixture of experts' `experts` module (the MoE points read them)
EXPERTS_CALL = ("hidden_states", "top_k_index", "top_k_weights")
#: a mixture of experts without an experts module, whose experts are two parallel projections
#: (input, output) fed the tokens grouped by expert, after a router that returns (order of the
#: flat choices by expert, their tokens, their weights, tokens per expert, logits): JetMoE's
GROUPED_EXPERTS = ("input_linear", "output_linear")
#: where such a router returns its logits
GROUPED_LOGITS_AT = 4
#: config attributes of a final-logit soft-cap, cap * tanh(logits / cap) (Gemma 2,
#: RecurrentGemma, xLSTM)
LOGIT_SOFTCAPS = ("final_logit_softcapping", "logits_soft_cap", "output_logit_soft_cap")
#: count -> the decoder's own attribute in an encoder-decoder's flat config, whose counts
#: alias the encoder's (BART, Whisper: `_decoder_config.py`)
DECODER_COUNTS = {
    "num_hidden_layers": "decoder_layers",
    "num_attention_heads": "decoder_attention_heads",
    "num_key_value_heads": "decoder_attention_heads",
}
#: config attributes of how many of the LM head's outputs are logits, the rest padding the
#: vocabulary, which the model cuts off (Inkling's `unpadded_vocab_size`)
LOGITS_VOCAB = ("unpadded_vocab_size",)
#: config attributes of logit scaling: (attribute, "mul" or "div")
LOGIT_SCALES = (
    ("logit_scale", "mul"), ("logits_scaling", "div"), ("lm_head_multiplier", "mul"),
    ("logits_mup_width_multiplier", "div"),
)  # fmt: skip
#: a post-LN block (BERT and its descendants), role -> path in the block: the residual is added
#: inside the modules holding the norms (`attention.output`, `output`), before their norm
POST_LN_BLOCK = {
    "attn": "attention.self",
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o_proj": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "mlp_in": "intermediate.dense",
    "mlp_down": "output.dense",
    "ln2": "output.LayerNorm",
}
#: a pre-LN block of the same modules (RoBERTa-PreLayerNorm, XLM-RoBERTa-XL): BERT's paths
#: but the norms, which read the stream before attention and before the MLP (candidates)
PRE_LN_NORMS = {
    "ln1": ("attention.LayerNorm", "attention.self_attn_layer_norm", "attention.ln"),
    "ln2": ("intermediate.LayerNorm", "LayerNorm", "ln"),
}
#: a decoder layer of sequence-to-sequence families (BART, Pegasus, ...), role -> path in the
#: block; whether its norms come before or after the residual additions is read from the
#: order they run (`_seq2seq.py`): post-LN (BART), or pre-LN, which `derive` describes
POST_LN_DECODER_BLOCK = {
    "attn": "self_attn",
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o_proj": "self_attn.out_proj",
    "ln1": "self_attn_layer_norm",
    "mlp_in": "fc1",
    "mlp_down": "fc2",
    "ln2": "final_layer_norm",
}
#: such a decoder's norm next to its token embedding (of the embeddings' sum, of the token
#: embedding alone, or the final norm: read from the forward), and the attribute of a factor
#: applied to the token embedding (on the embedding module, or on the model holding the
#: blocks: Marian's `embed_scale`, RecurrentGemma's `normalizer`)
EMBED_NORM = ("layernorm_embedding",)
EMBED_SCALE_ATTR = ("embed_scale", "normalizer")
#: such decoders' self-attention modules that compute attention themselves (q times
#: `scaling`, plus the model's additive mask): hooklens reimplements their forward
EAGER_SEQ2SEQ_ATTENTION = ("MvpAttention", "TrOCRAttention")
#: BERT self-attention modules that compute attention themselves (scores / sqrt(d_head) plus
#: the model's additive mask): hooklens reimplements their forward (`_encoder.py`)
EAGER_BERT_ATTENTION = (
    "MegatronBertSelfAttention", "RemBertSelfAttention", "BigBirdSelfAttention", "GitSelfAttention"
)  # fmt: skip
#: config values of encoder blocks whose attention hooklens's points cannot describe:
#: (attribute, value, what the model does then, the value to load it with). BigBird's
#: block-sparse attention attends to blocks of later positions too (not causal), and the model
#: swaps its attention modules for full ones at its first forward on a short input
ENCODER_CONFIG_REFUSALS = (
    (
        "attention_type",
        "block_sparse",
        "its attention is block-sparse: global, sliding and random blocks of keys, later "
        "positions included, so it is not causal, and the model replaces its attention modules "
        "with full ones at its first forward on an input of 704 tokens or fewer",
        "original_full",
    ),
)
#: a per-language adapter inside a BERT block's MLP output module (X-MOD's `XmodOutput`), by
#: the block path that holds the adapters: (`ArchSpec.adapter_out`: the module whose output at
#: that call in a block's forward is what the adapter adds, here the output module's dropout,
#: called on the MLP's output and then on the adapter's), the config values under which the
#: block does what hooklens's points describe (the MLP output's LayerNorm normalizes
#: resid_post, the adapter reads that, the same LayerNorm normalizes their sum: transformers'
#: defaults), and the config attribute naming the language used when a call passes no lang_ids
BLOCK_ADAPTERS = {
    "output.adapter_modules": (
        ("output.dropout", 1),
        {"pre_norm": False, "adapter_layer_norm": False, "adapter_reuse_layer_norm": True,
         "ln_before_adapter": True},
        "default_language",
    ),
}  # fmt: skip
#: BERT self-attention modules that rotate q and k by a sinusoidal table the encoder passes
#: them (RoFormer): hooklens reimplements their forward with rotary points
#: (`_rotary_encoder.py`), and refuses one whose attribute named in ROTARY_VALUE is True (it
#: rotates the values too)
ROTARY_BERT_ATTENTION = ("RoFormerSelfAttention",)
ROTARY_VALUE = ("rotary_value",)
#: a pre-LN encoder's final norm, next to its blocks or next to its encoder
ENCODER_FINAL_NORM = ("LayerNorm", "ln")
#: the embedding module's parts next to the token embedding: positions, token types, the norm
#: of their sum
EMBED_POS = ("position_embeddings",)
EMBED_TOKEN_TYPE = ("token_type_embeddings",)
EMBED_SUM_NORM = ("LayerNorm", "layer_norm")
#: a projection of embeddings narrower than the stream to it before block 0, a path in the
#: model holding the embeddings (ELECTRA's, RemBERT's in its encoder)
EMBED_PROJ = ("embeddings_project", "encoder.embedding_hidden_mapping_in")
#: a projection, inside the embedding module, of the token embedding concatenated with other
#: per-token embeddings to the stream's width, before positions and token types are added
#: (RoCBert's word, glyph-shape and pronunciation embeddings)
EMBED_MIX = ("map_inputs_layer",)
#: the LM head's transform where it is not the unembedding's parent (ELECTRA), and the final
#: norm inside a head
HEAD = ("generator_predictions",)
HEAD_NORM = ("transform.LayerNorm", "LayerNorm", "layer_norm")
#: an attention module's projection of the gate on its output (`AttnGate`); else the q
#: projection, when it is twice as wide as the output projection's input (Qwen3-Next)
ATTN_GATE = ("gate_proj", "g_proj")
#: a projection holding, per head, the queries and then the gate on attention's output
#: (AXK2's `q_gate_proj`, in latent attention: `LatentKV.q_gate`)
Q_AND_GATE = ("q_gate_proj",)
#: a per-head bias (n_heads,) the attention adds to its gate's input after the projection (Beam)
GATE_BIAS = ("gate_bias",)
#: an attention module's factor on `v_proj`'s output before attention (MiMo-V2-Flash), which
#: the values' weights W_V and b_V include
V_SCALE = ("v_scale",)
#: where a layer whose keys and values later layers reuse computes its values, in order of
#: preference: `hook_v` is read there, before they are handed on (`_kv_sharing.py`)
V_SOURCE = ("v_norm", "v_proj")
#: forward parameters of a layer that carry a second stream beside the residual stream, and what
#: that stream is (`_two_streams.py`)
SECOND_STREAM_ARGS = {
    "prev_attn_output": "its layers are reversible (Reformer): each keeps two residual streams, "
    "attention adding to one and the feed-forward to the other, and the model joins them "
    "(2 x hidden_size wide) after the last layer",
    "output_g": "its layers run two streams (XLNet's two-stream attention: a content stream and "
    "a query stream), with relative positions and segment terms added inside the attention",
}
#: an attribute of a layer's attention counting the n-gram prediction streams it runs beside the
#: main one (ProphetNet)
NGRAM_STREAMS = "ngram"

#: config attributes listing layers a text-only forward skips (Mllama's cross-attention layers,
#: which run only on image features)
TEXT_ONLY_SKIPS = ("cross_attention_layers",)

#: config attributes hooklens reads once for every layer: a per-layer config that sets them
#: apart (Dots3 Note's) refuses (head widths and key/value heads are read per layer, from the
#: modules)
PER_LAYER_UNREAD = (
    "num_attention_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
)  # fmt: skip
