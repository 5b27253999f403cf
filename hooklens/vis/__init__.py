"""Notebook views of activations (anywidgets whose front end ships inside the package)."""

from ._attention import AttentionPatterns, AttentionView, attention_heads, attention_patterns
from ._patching import PatchingView
from ._residual import ResidualView
from ._tokens import ColoredTokens, colored_tokens
from .export import export_html, to_html

__all__ = [
    "AttentionPatterns",
    "AttentionView",
    "ColoredTokens",
    "PatchingView",
    "ResidualView",
    "attention_heads",
    "attention_patterns",
    "colored_tokens",
    "export_html",
    "to_html",
]
