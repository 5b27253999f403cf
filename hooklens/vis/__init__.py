"""Notebook views of activations (anywidgets whose front end ships inside the package)."""

from ._tokens import ColoredTokens, colored_tokens

__all__ = ["ColoredTokens", "colored_tokens"]
