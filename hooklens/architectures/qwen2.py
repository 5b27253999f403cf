"""Qwen2: the Llama layout with q/k/v biases."""

from ._llama_like import llama_like

SPEC = llama_like("qwen2", ("Qwen2ForCausalLM",))
