"""Gemma 3 (text, `Gemma3ForCausalLM`): Gemma 2's layout plus q/k norms, local/global layers.

`q_norm`/`k_norm` see (batch, heads, pos, d_head). Sliding-window layers get their own mask
from the mask builder registered with the attention function.
"""

from ._llama_like import llama_like
from ._spec import Proj

SPEC = llama_like(
    "gemma3",
    ("Gemma3ForCausalLM",),
    attn_out="post_attention_layernorm",
    ln2="pre_feedforward_layernorm",
    mlp_out="post_feedforward_layernorm",
    q_source=Proj("self_attn.q_norm", "bhpd"),
    k_source=Proj("self_attn.k_norm", "bhpd"),
    norm_weight_offset=1.0,
    final_logit_softcap="final_logit_softcapping",
)
