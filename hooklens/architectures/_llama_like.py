"""Shared module paths of the Llama layout (Llama, Mistral, Qwen2, Qwen3, Gemma, Phi-3)."""

from typing import Any

from ._spec import ArchSpec, Proj


def llama_like(family: str, hf_classes: tuple[str, ...], **overrides: Any) -> ArchSpec:
    """An ArchSpec with Llama's paths (`model.layers`, `self_attn.q_proj`, gated MLP, RMSNorm)."""
    fields: dict[str, Any] = {
        "family": family,
        "hf_classes": hf_classes,
        "embed": "model.embed_tokens",
        "blocks": "model.layers",
        "final_norm": "model.norm",
        "unembed": "lm_head",
        "ln1": "input_layernorm",
        "attn": "self_attn",
        "attn_out": "self_attn",
        "ln2": "post_attention_layernorm",
        "mlp_in": "mlp.gate_proj",
        "mlp_up": "mlp.up_proj",
        "mlp_down": "mlp.down_proj",
        "mlp_out": "mlp",
        "q_source": Proj("self_attn.q_proj"),
        "k_source": Proj("self_attn.k_proj"),
        "qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        "o_proj": "self_attn.o_proj",
    }
    fields.update(overrides)
    return ArchSpec(**fields)
