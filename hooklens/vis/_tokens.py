"""Token strips: each token as text, tinted by a value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import traitlets

from ._codec import as_numpy, encode_tensor
from ._widget import HookLensWidget

_IDS_NOT_STRINGS = (
    "`tokens` must be the token strings, but got token ids ({kind}). Convert them first, e.g. "
    "`tokens=model.to_str_tokens(text)` instead of `tokens=model.to_tokens(text)`."
)


def as_token_strings(tokens: Any) -> list[str]:
    """Validate that ``tokens`` is a sequence of strings and return it as a list.

    Token ids (a tensor, an array or a list of ints) get an error that says how to convert them.
    """
    if isinstance(tokens, str):
        raise TypeError("`tokens` must be a list of token strings, not one string.")
    if hasattr(tokens, "dtype") or (
        isinstance(tokens, Sequence) and tokens and not isinstance(tokens[0], str)
    ):
        raise TypeError(_IDS_NOT_STRINGS.format(kind=type(tokens).__name__))
    return [str(token) for token in tokens]


class ColoredTokens(HookLensWidget):
    """Tokens shown as text (whitespace made visible), each tinted by one value.

    ``tokens``: ``n`` strings. ``values``: shape ``(n,)``; positive values tint blue, negative red.
    """

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    values = traitlets.Dict().tag(sync=True)

    def __init__(self, tokens: Any, values: Any, **kwargs: Any) -> None:
        strings = as_token_strings(tokens)
        array = as_numpy(values).astype("float32").reshape(-1)
        if array.shape[0] != len(strings):
            raise ValueError(
                f"`values` has {array.shape[0]} entries but there are {len(strings)} tokens; "
                "pass one value per token."
            )
        super().__init__(
            view="colored_tokens", tokens=strings, values=encode_tensor(array), **kwargs
        )


def colored_tokens(tokens: Any, values: Any) -> ColoredTokens:
    """CircuitsVis-compatible ``colored_tokens(tokens=[str], values=(n,))``."""
    return ColoredTokens(tokens, values)
