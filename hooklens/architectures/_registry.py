"""Every causal-LM type of the installed transformers, tried as a user would: a tiny random model.

`survey()` builds a tiny config of each type in `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` (2 layers,
width 64, vocabulary 128), runs the HF model, saves it, loads it with
`HookedModel.from_pretrained` and records the outcome: wrapped (by an explicit or a derived
adapter), not wrapped (with hooklens's reason), or cannot run here (with the model's own error).
The family table of README.md is rendered from it (`python -m hooklens.architectures._registry`),
and the registry test asserts the wrapped models' points on the same outcomes.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

VOCAB = 128
#: Tiny dimensions, under every spelling configs use; only the keys a config has are passed.
TINY: dict[str, Any] = {
    "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": VOCAB,
    "max_position_embeddings": 64, "n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 64,
    "n_inner": 128, "ffn_dim": 128, "num_layers": 2, "d_model": 64, "num_local_experts": 4,
    "num_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
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
    # an indexer that selects fewer keys than a few tokens (the default, 2048, selects all)
    "dots3_note_text": {"index_topk": 3},
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
#: A tiny config bigger than this did not shrink (some key is spelled differently).
MAX_PARAMS = 4_000_000
Status = Literal["wrapped", "not wrapped", "cannot run"]


#: The adapter of a type wrapped with its blocks kept whole (`_whole_blocks.py`).
STREAM_ONLY = "residual stream only"
#: The adapter of a type whose residual stream is several parallel streams: its blocks' parts
#: have their points, the stream none (`ArchSpec.streams`).
PARTS_ONLY = "blocks' parts only"
#: The adapters of types wrapped with some of the points only.
PARTIAL = (STREAM_ONLY, PARTS_ONLY)


@dataclass(frozen=True)
class Outcome:
    """What happened to one registry type. `adapter` is "explicit" or "derived" when wrapped,
    or `STREAM_ONLY` (with `reason`: why no more points) when its blocks are kept whole, or
    `PARTS_ONLY` (with `reason`: its several streams) when only its blocks' parts have points."""

    model_type: str
    class_name: str
    status: Status
    reason: str = ""
    adapter: str = ""


def causal_lm_types() -> dict[str, str]:
    """model type -> causal-LM class name, from the installed transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return dict(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def _sharpen(model: torch.nn.Module) -> None:
    """Larger random weights than HF's init (std 0.02 makes attention near uniform). A frozen
    embedding table (sinusoidal positions: Pegasus's, RoFormer's rotary angles) keeps the
    values the model computed, as its checkpoints do."""
    fixed = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding) and not m.weight.requires_grad
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in fixed:
                continue
            if p.ndim >= 2:  # matrices, and experts' stacked matrices
                p.normal_(0, 0.2)
            elif "norm" in name or "ln" in name:
                p.uniform_(0.5, 1.5) if p.mean() > 0.5 else p.uniform_(-0.3, 0.3)


def build(model_type: str, folder: Path, seed: int = 0) -> Outcome | None:
    """Save a tiny random model of `model_type` in `folder`; an Outcome when it cannot run."""
    from transformers import AutoModelForCausalLM

    cls_name = causal_lm_types()[model_type]
    try:
        config = tiny_config(model_type)
        with torch.device("meta"):
            size = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        if size > MAX_PARAMS:
            why = f"its tiny config still has {size:,} parameters (a size key is not shrunk)"
            return Outcome(model_type, cls_name, "cannot run", why)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config).eval()
        _sharpen(model)
        with torch.no_grad():
            model(input_ids=torch.randint(3, VOCAB, (1, 6)), use_cache=False)
        model.save_pretrained(folder)
        if type(model.config) is not type(config):  # it took the text part: keep the whole
            config.save_pretrained(folder)  # model's config, as a checkpoint of it has
    except Exception as exc:  # the model's own code fails on its tiny config
        return Outcome(model_type, cls_name, "cannot run", _first_line(exc))
    return None


def load(model_type: str, folder: Path, tokenizer: Any = None) -> tuple[Outcome, Any]:
    """Load a built folder with HookedModel.from_pretrained: (outcome, model or None)."""
    from .. import HookedModel
    from .._errors import NoTokenizerWarning, UnsupportedModelError

    cls_name = causal_lm_types()[model_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoTokenizerWarning)
            model = HookedModel.from_pretrained(str(folder), tokenizer=tokenizer)
    except UnsupportedModelError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = lines[0].split(": ", 1)[-1] if "derived" not in lines[0] else lines[2].lstrip("- ")
        return Outcome(model_type, cls_name, "not wrapped", why), None
    whole = model.spec.whole_blocks()
    if whole is not None:  # only the stream's points: the reason the template refused
        inside = [str(i) for i, x in enumerate(model.spec.layers or ()) if x.attends_inside]
        if inside:  # and the internals of an attention the blocks call off the stream (Zamba)
            calling = ", ".join(inside)
            whole = f"attention's internal points on the layers calling it ({calling}); {whole}"
        return Outcome(model_type, cls_name, "wrapped", whole, adapter=STREAM_ONLY), model
    if model.spec.streams is not None:  # the parts' points: no point on the streams
        return Outcome(model_type, cls_name, "wrapped", model.spec.streams, PARTS_ONLY), model
    kind = "derived" if model.spec.derived else "explicit"
    return Outcome(model_type, cls_name, "wrapped", adapter=kind), model


def survey(types: list[str] | None = None) -> list[Outcome]:
    """The outcome of every causal-LM type (or of `types`)."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_type in types or list(causal_lm_types()):
            folder = Path(tmp) / model_type
            failed = build(model_type, folder)
            found.append(failed or load(model_type, folder)[0])
    return found


def family_table(outcomes: list[Outcome]) -> str:
    """Markdown: counts, then one row per registry type."""
    wrapped = [o for o in outcomes if o.status == "wrapped" and o.adapter not in PARTIAL]
    stream = [o for o in outcomes if o.adapter == STREAM_ONLY]
    parts = [o for o in outcomes if o.adapter == PARTS_ONLY]
    runs = [o for o in outcomes if o.status != "cannot run"]
    derived = sum(o.adapter == "derived" for o in wrapped)
    rows = [
        f"{len(outcomes)} causal-LM types registered; {len(runs)} build and run as tiny models; "
        f"hooklens wraps {len(wrapped)} ({len(wrapped) - derived} by an explicit adapter, "
        f"{derived} derived), and {len(stream)} more with only the residual stream's points "
        "(their blocks kept whole; with the internal points of an attention they call off the "
        f"stream, where they do), and {len(parts)} with the points of their blocks' parts "
        "only (their residual stream is several parallel streams).",
        "",
        "| model type | HF class | hooklens | why not (more) |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        state = f"yes ({o.adapter})" if o.status == "wrapped" else o.status
        state = o.adapter if o.adapter in PARTIAL else state
        why = o.reason.replace("|", "\\|")
        rows.append(f"| {o.model_type} | `{o.class_name}` | {state} | {why} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(family_table(survey()))
