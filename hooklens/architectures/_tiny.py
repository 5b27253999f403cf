"""Tiny random configs of transformers' model types: the registry survey's models.

`tiny_config(model_type)` shrinks a type's default config to TINY's dimensions (2 layers, width
64, vocabulary 128) under every spelling configs use, then applies the type's OVERRIDES: the
per-type corrections where the generic dimensions contradict another default, or where a
checkpoint as released sets what the default leaves out. `sizes` builds a bigger model of the
same shape (the benchmarks' and the depth test's).
"""

from __future__ import annotations

from typing import Any

__all__ = ["IMPLIED", "OPTIONAL", "OVERRIDES", "TINY", "VOCAB", "tiny_config"]

VOCAB = 128
#: Tiny dimensions, under every spelling configs use; only the keys a config has are passed.
TINY: dict[str, Any] = {
    "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": VOCAB,
    "unpadded_vocab_size": VOCAB,
    "max_position_embeddings": 64, "n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 64,
    "n_inner": 128, "ffn_dim": 128, "first_dense_intermediate_size": 128, "num_layers": 2,
    "d_model": 64, "num_local_experts": 4, "num_experts": 4, "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    # multi-head latent attention (DeepSeek V2/V3): ranks of the latents and head widths
    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
    "v_head_dim": 12, "n_group": 1, "topk_group": 1,
    # sub-configs of multimodal models and of DBRX
    "image_size": 32, "patch_size": 8, "vision_output_dim": 64, "projector_input_dim": 64,
    "projector_output_dim": 64, "mm_tokens_per_image": 4, "d_kv": 16, "ffn_hidden_size": 128,
    "moe_num_experts": 4, "moe_top_k": 2, "kv_n_heads": 2, "hidden_size_per_layer_input": 8,
    "vocab_size_per_layer_input": VOCAB, "n_shared_experts": 1, "linear_head_dim": 16,
    "linear_num_heads": 4,
    # the decoder (and unused encoder) of sequence-to-sequence families' causal LMs
    "decoder_layers": 2, "encoder_layers": 2, "decoder_ffn_dim": 128, "encoder_ffn_dim": 128,
    "decoder_attention_heads": 4, "encoder_attention_heads": 4, "dim_ff": 128, "dim_head": 16,
    # encoders used as causal LMs (BERT, RoBERTa, ...) attend causally only as decoders, as
    # transformers asks of them; the width of ELECTRA's embeddings
    "is_decoder": True, "embedding_size": 64,
}  # fmt: skip
#: Keys of optional parts: where a config's default is None (no low-rank q), it stays None.
OPTIONAL = frozenset({"q_lora_rank"})
#: Values a config's own key implies for others: multi-head latent attention expands its
#: latent to every query head (as many key/value heads as query heads), and its rotary
#: embedding is as wide as the rotated part of a head (`head_dim` is that width there).
#: (key set -> {key: the key of the table whose value it takes})
IMPLIED: dict[str, dict[str, str]] = {
    "kv_lora_rank": {"num_key_value_heads": "num_attention_heads", "head_dim": "qk_rope_head_dim"},
}
_HYBRID = ["linear_attention", "full_attention"]
_LLAMA4 = {"no_rope_layers": [1, 0], "moe_layers": [1], "intermediate_size_mlp": 128,
           "attention_chunk_size": 3, "floor_scale": 2}  # fmt: skip
#: Per-type corrections where the generic dimensions contradict another default.
_GEMMA4_SHARED = {
    "num_hidden_layers": 4,
    "layer_types": ["sliding_attention", "full_attention"] * 2,
    "num_kv_shared_layers": 2,
}
OVERRIDES: dict[str, dict[str, Any]] = {
    "gptj": {"rotary_dim": 4},
    "codegen": {"rotary_dim": 4},
    "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": 4},
    # hybrids: a layer of each kind (the defaults put attention beyond the second layer)
    "jamba": {
        "attn_layer_period": 2,
        "attn_layer_offset": 1,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
    },
    "bamba": {"attn_layer_indices": [1]},
    "qwen3_next": {"layer_types": _HYBRID},
    "qwen3_5_text": {"layer_types": _HYBRID},
    "qwen3_5_moe_text": {"layer_types": _HYBRID},
    "olmo_hybrid": {"layer_types": _HYBRID},
    "lara_mini": {"layer_types": _HYBRID},
    "minimax": {"layer_types": _HYBRID},
    "bailing_hybrid": {"layer_types": _HYBRID},
    # Granite 4: the residual multiplier its checkpoints set (it scales the mixer's output too)
    "granitemoehybrid": {"layer_types": ["mamba", "attention"], "residual_multiplier": 0.5},
    # a shared MLP beside the experts, as the released checkpoints have (the default has none)
    "granitemoeshared": {"shared_intermediate_size": 32},
    # Falcon-H1's µP multipliers, none 1 (its checkpoints set them): each point must hold them
    "falcon_h1": {
        "embedding_multiplier": 1.5,
        "lm_head_multiplier": 0.7,
        "key_multiplier": 0.6,
        "attention_in_multiplier": 1.3,
        "attention_out_multiplier": 0.8,
        "ssm_in_multiplier": 1.2,
        "ssm_out_multiplier": 0.9,
        "mlp_multipliers": [1.4, 0.6],
        # a small mixer (the default's is 1024 wide, with 128 heads and a state of 256)
        "mamba_d_ssm": 128,
        "mamba_n_heads": 8,
        "mamba_d_head": 16,
        "mamba_d_state": 16,
        "mamba_chunk_size": 8,
    },
    "lfm2": {"layer_types": ["conv", "full_attention"]},
    "lfm3": {"layer_types": ["conv", "full_attention"]},
    "recurrent_gemma": {"block_types": ["recurrent", "attention"]},
    "lfm2_moe": {"layer_types": ["conv", "full_attention"], "num_dense_layers": 1},
    "mamba2": {"num_heads": 8, "head_dim": 16},  # num_heads * head_dim = 2 * hidden_size
    "zamba": {"num_hidden_layers": 4, "layers_block_type": ["mamba", "hybrid"] * 2},
    "zamba2": {"layers_block_type": ["mamba", "hybrid"]},
    # Llama 4 as released: a NoPE layer (full attention, no q/k norm, temperature-tuned q) after
    # a rotary one (chunked attention), a dense layer before a MoE one; chunks, temperature
    # floor and the dense width small enough to act on a few tokens
    "llama4": {"text_config": _LLAMA4},
    "llama4_text": _LLAMA4,
    # a cross-attention layer between two self-attention ones (a text-only forward skips it)
    "mllama": {"text_config": {"num_hidden_layers": 3, "cross_attention_layers": [1]}},
    # Gemma 3n: a layer of each kind, each computing its own keys and values (its default
    # shares them from layer 20, which two layers do not reach)
    "gemma3n_text": {
        "layer_types": ["sliding_attention", "full_attention"],
        "num_kv_shared_layers": 0,
    },
    # Gemma 4 as its smaller checkpoints ship: the last layers reuse the keys and values of the
    # last earlier layer of their kind (KV sharing), a layer of each kind before them
    "gemma4_text": _GEMMA4_SHARED,
    "gemma4": {"text_config": _GEMMA4_SHARED},
    "gemma4_unified_text": _GEMMA4_SHARED,
    "gemma4_unified": {"text_config": _GEMMA4_SHARED},
    # Inkling as released: a sliding-window layer then a full one (log-scaled queries), dense
    # then sparse MLPs, the same heads on both (the defaults' sliding layers are 8192 wide);
    # a window and a relative-bias extent that a few tokens exceed
    "inkling_text": {
        "layer_types": ["hybrid_sliding", "hybrid"],
        "mlp_layer_types": ["dense", "sparse"],
        "swa_num_attention_heads": 4,
        "swa_num_key_value_heads": 1,
        "swa_head_dim": 8,
        "sliding_window_size": 3,
        "rel_extent": 4,
        "log_scaling_n_floor": 2,
        "log_scaling_alpha": 0.5,
    },
    # Ergo as its long-context checkpoints ship: a sliding-window rotary layer, then a
    # full-context one without positions whose q and k are scaled (`global_attention_scale`); a
    # small shared expert (the default's is as wide as the model's 8192), a window a few tokens
    # exceed
    "ergo": {
        "shared_intermediate_size": 32,
        "global_attention_every_n_layers": 2,
        "global_attention_scale": 2.0,
        "sliding_window": 3,
    },
    # Kolibri 1.1 as released: a sliding-window layer, an indexer, and a reindexer that reuses
    # the indexer's keys and values; a selection budget (top-k, sinks, local tokens, the pool)
    # that a few tokens exceed, so the selection acts; a dense MLP first, then experts
    "kolibri1_1": {
        "num_hidden_layers": 3,
        "layer_types": ["sliding_attention", "indexed_attention", "indexed_attention"],
        "index_layers": [1],
        "kv_source_layers": [0, 1, 1],
        "index_num_heads": 2,
        "index_topk": 2,
        "index_pool_size": 4,
        "index_compression": 2,
        "index_num_local_tokens": 1,
        "index_num_sink_tokens": 1,
        "sliding_window": 3,
        "mlp_only_layers": [0],
        "mlp_only_intermediate_size": 128,
    },
    # an indexer that selects fewer keys than a few tokens (the default, 2048, selects all)
    "dots3_note_text": {"index_topk": 3},
    # North (Cohere Compass) as released: sliding-window rotary layers and full-context layers
    # without positions (its default config names no rotary parameters, so no model builds)
    "cohere_compass_text": {
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 3,
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 50000.0},
            "full_attention": None,
        },
    },
    # Phi-4-multimodal's audio encoder, small (its convolutions are 1024 channels wide)
    "phi4_multimodal": {
        "audio_config": {
            "ext_pw_out_channel": 64,
            "depthwise_separable_out_channel": 64,
            "nemo_conv_channels": 64,
        }
    },
    # ZAYA routes each token to one expert (its only supported choice)
    "zaya": {"num_experts_per_tok": 1},
    # BLT's hashed byte-group embeddings (500002 rows by default) and the global transformer's
    # width as its local stacks see it
    "blt": {
        "encoder_hash_byte_group_vocab": 128,
        "encoder_config": {"hidden_size_global": 64},
        "decoder_config": {"hidden_size_global": 64},
    },
    # RoCBert's glyph-shape and pronunciation tables, small (the defaults' are 24858 x 512)
    "roc_bert": {
        "shape_vocab_size": 128,
        "shape_embed_dim": 16,
        "pronunciation_vocab_size": 128,
        "pronunciation_embed_dim": 16,
    },
    # the causal LM refuses a config that is not a decoder's, or has no default language
    "reformer": {"is_decoder": True, "axial_pos_embds_dim": [32, 32], "axial_pos_shape": [8, 8]},
    "xmod": {"default_language": "en_XX"},
    # a layer before its recurrent section and one after it (the defaults count 8 of each,
    # more than 2 layers, so each block would run twice)
    "dory": {"n_input_layers": 0, "n_recurrent_layers": 1, "n_output_layers": 1},
    # a sliding window that a few tokens exceed (the default, 64, covers them all)
    "modernbert-decoder": {"sliding_window": 3},
    # BigBird as a causal LM: full attention (its default, block-sparse, is refused)
    "big_bird": {"attention_type": "original_full"},
    # its config maps both head counts to the encoder's, which the decoder does not share
    "whisper": {"num_key_value_heads": 4},
    # the model reads attn_config.rope_theta, which its attention config does not define, and
    # clamps q, k, v by clip_qkv, whose default (None) torch.clamp refuses (small enough here
    # that the clipping acts)
    "dbrx": {"attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 2.0}},
}


def tiny_config(model_type: str, sizes: dict[str, Any] | None = None) -> Any:
    """A tiny config of `model_type`: the keys of TINY it has (in its sub-configs too: the
    text, vision, audio, attention or MLP config of a composite model), plus OVERRIDES.
    `sizes` replaces values of TINY (a bigger model of the same shape, for benchmarks)."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    table = {**TINY, **(sizes or {})}
    kwargs = _tiny_kwargs(cls(), table)
    overrides = _deeper(OVERRIDES.get(model_type, {}), table["num_hidden_layers"])
    for key, value in overrides.items():
        sub: Any = kwargs.get(key)  # a sub-config's overrides change its tiny values, no others
        if isinstance(value, dict) and hasattr(sub, "to_diff_dict"):
            value = type(sub)(**{**_own_keys(sub), **value})
        kwargs[key] = value
    return cls(**kwargs)


#: how per-layer lists' keys end (a layer's kind, or whether it has rotary positions), unlike
#: other lists of two (Falcon-H1's `mlp_multipliers`)
_PER_LAYER = ("types", "block_type", "no_rope_layers")
#: per-layer lists of layer indices (each layer's source of keys and values, Kolibri 1.1's),
#: repeated with each repetition's own indices; and sets of layer indices, repeated likewise
_LAYER_OF_LAYER = ("kv_source_layers",)
_LAYER_SETS = ("index_layers", "mlp_only_layers")


def _deeper(overrides: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """`overrides` for `n_layers` layers: a per-layer list written for the overrides' own layer
    count (TINY's where they set none) repeats to cover more layers, and that count becomes
    `n_layers`."""
    tiny = overrides.get("num_hidden_layers", TINY["num_hidden_layers"])
    if n_layers <= tiny:
        return overrides
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _deeper(value, n_layers)
        elif isinstance(value, list) and len(value) == tiny and key.endswith(_PER_LAYER):
            value = [value[i % tiny] for i in range(n_layers)]
        elif isinstance(value, list) and len(value) == tiny and key in _LAYER_OF_LAYER:
            value = [value[i % tiny] + i - i % tiny for i in range(n_layers)]
        elif isinstance(value, list) and key in _LAYER_SETS:
            value = [v + t for t in range(0, n_layers, tiny) for v in value if v + t < n_layers]
        elif key == "num_hidden_layers":
            value = n_layers
        out[key] = value
    return out


def _tiny_kwargs(default: Any, table: dict[str, Any]) -> dict[str, Any]:
    """The values in `table` of the keys `default` (a config) has, its sub-configs shrunk the
    same way (an OPTIONAL part the config leaves out stays out)."""
    values = default.to_dict()
    keys = set(values) | set(getattr(type(default), "attribute_map", {}))
    kwargs = {
        k: v
        for k, v in table.items()
        if k in keys and not (k in OPTIONAL and values.get(k) is None)
    }
    for key, implied in IMPLIED.items():
        if values.get(key) is not None:
            kwargs.update({k: table[v] for k, v in implied.items() if k in keys})
    for name in getattr(default, "sub_configs", None) or {}:
        sub: Any = getattr(default, name, None)
        if hasattr(sub, "to_dict"):
            kwargs[name] = type(sub)(**{**_own_keys(sub), **_tiny_kwargs(sub, table)})
    return kwargs


def _own_keys(config: Any) -> dict[str, Any]:
    """The values of `config` that differ from its class's defaults (a composite model's
    choices for its sub-config), without the bookkeeping keys and per-layer lists (derived
    from the number of layers, which shrinks)."""
    return {
        k: v
        for k, v in config.to_diff_dict().items()
        if k not in ("model_type", "transformers_version", "architectures")
        and not isinstance(v, list)
        and not (isinstance(v, dict) and any(str(key).isdigit() for key in v))
    }
