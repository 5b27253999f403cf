"""Llama (and SmolLM2): rotary, RMSNorm, gated MLP, grouped-query attention."""

from ._llama_like import llama_like

SPEC = llama_like("llama", ("LlamaForCausalLM",))
