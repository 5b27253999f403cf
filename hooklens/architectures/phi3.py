"""Phi-3: the Llama layout with fused `qkv_proj` and fused `gate_up_proj` (gate first)."""

from ._llama_like import llama_like
from ._spec import Proj

_QKV = Proj("self_attn.qkv_proj", "concat_qkv")

SPEC = llama_like(
    "phi3",
    ("Phi3ForCausalLM",),
    mlp_in="mlp.gate_up_proj",
    mlp_up=None,
    mlp_gate_up_fused=True,
    q_source=_QKV,
    k_source=_QKV,
    qkv=(_QKV.module,) * 3,
    qkv_layout="concat_qkv",
)
