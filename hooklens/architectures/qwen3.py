"""Qwen3: the Llama layout plus per-head q/k RMSNorm before the rotation.

`hook_q`/`hook_k` are read after `q_norm`/`k_norm` (which see (batch, pos, heads, d_head)).
"""

from ._llama_like import llama_like
from ._spec import Proj

SPEC = llama_like(
    "qwen3",
    ("Qwen3ForCausalLM",),
    q_source=Proj("self_attn.q_norm", "bphd"),
    k_source=Proj("self_attn.k_norm", "bphd"),
)
