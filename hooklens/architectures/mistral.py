"""Mistral: the Llama layout plus sliding-window attention (handled by the mask builder)."""

from ._llama_like import llama_like

SPEC = llama_like("mistral", ("MistralForCausalLM",))
