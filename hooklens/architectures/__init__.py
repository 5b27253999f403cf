"""Per-family adapters (see README.md here): one small declarative `ArchSpec` per family."""

from __future__ import annotations

from typing import Any

from . import gemma2, gemma3, gpt2, gpt_neox, gptj, llama, mistral, opt, phi3, qwen2, qwen3
from ._spec import ArchSpec, Proj

ADAPTERS: tuple[ArchSpec, ...] = tuple(
    m.SPEC for m in (gpt2, gpt_neox, gptj, opt, llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3)
)
_BY_CLASS: dict[str, ArchSpec] = {cls: spec for spec in ADAPTERS for cls in spec.hf_classes}


def supported_classes() -> list[str]:
    """Hugging Face causal-LM class names that have an adapter."""
    return sorted(_BY_CLASS)


def find_adapter(class_name: str) -> ArchSpec | None:
    """The adapter for a Hugging Face model class name, or None."""
    return _BY_CLASS.get(class_name)


def adapter_for_config(config: Any) -> ArchSpec | None:
    """The adapter for a config's declared `architectures`, or None."""
    for name in getattr(config, "architectures", None) or ():
        if name in _BY_CLASS:
            return _BY_CLASS[name]
    return None


__all__ = [
    "ADAPTERS",
    "ArchSpec",
    "Proj",
    "adapter_for_config",
    "find_adapter",
    "supported_classes",
]
