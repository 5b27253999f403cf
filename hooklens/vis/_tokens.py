"""Token strips: each token as text, tinted by a value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from ._codec import as_numpy, encode_tensor
from ._widget import HookLensWidget

_IDS_NOT_STRINGS = (
    "`tokens` must be the token strings, but got token ids ({kind}). Convert them first, e.g. "
    "`tokens=model.to_str_tokens(text)` instead of `tokens=model.to_tokens(text)`, or pass the "
    "model (`model=model`) or its tokenizer (`tokenizer=...`) so hooklens can convert them."
)


def _ids_as_list(tokens: Any) -> list[int]:
    """Token ids of shape ``(pos,)`` or ``(1, pos)`` as a list of ints."""
    array = np.asarray(tokens.detach().cpu() if hasattr(tokens, "detach") else tokens)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ValueError(
            f"token ids must have shape (pos,) or (1, pos), got {tuple(array.shape)}; "
            "views show one sequence at a time."
        )
    return [int(i) for i in array.tolist()]


def as_token_strings(tokens: Any, model: Any = None, tokenizer: Any = None) -> list[str]:
    """Validate that ``tokens`` is a sequence of strings and return it as a list.

    Token ids (a tensor or array of shape ``(pos,)``/``(1, pos)``, or a list of ints) are
    converted when a ``model`` (with ``to_str_tokens``) or a ``tokenizer`` is given; otherwise
    they get an error that says how to convert them.
    """
    if isinstance(tokens, str):
        raise TypeError("`tokens` must be a list of token strings, not one string.")
    is_ids = hasattr(tokens, "dtype") or (
        isinstance(tokens, Sequence) and len(tokens) > 0 and not isinstance(tokens[0], str)
    )
    if not is_ids:
        return [str(token) for token in tokens]
    if model is not None and hasattr(model, "to_str_tokens"):
        return str_tokens(model, torch.tensor(_ids_as_list(tokens)))
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is not None:
        return [str(tokenizer.decode([i])) for i in _ids_as_list(tokens)]
    raise TypeError(_IDS_NOT_STRINGS.format(kind=type(tokens).__name__))


def str_tokens(model: Any, ids: torch.Tensor) -> list[str]:
    """``model.to_str_tokens`` of ids of shape ``(pos,)``, as a flat list of strings.

    A model loaded without a tokenizer (``model.tokenizer is None``) shows ids as ``#123``.
    """
    if hasattr(model, "tokenizer") and model.tokenizer is None:
        return [f"#{int(i)}" for i in ids.reshape(-1).tolist()]
    strings = model.to_str_tokens(ids)
    if len(strings) == 1 and isinstance(strings[0], (list, tuple)):  # a batch of one
        strings = strings[0]
    return [str(s) for s in strings]


def model_tokens(model: Any, text_or_tokens: Any) -> tuple[torch.Tensor, list[str]]:
    """Text, or token ids of shape ``(pos,)``/``(1, pos)``, as ``(ids (1, pos), strings)``."""
    if isinstance(text_or_tokens, str):
        ids = torch.as_tensor(model.to_tokens(text_or_tokens))
    elif (
        isinstance(text_or_tokens, Sequence)
        and text_or_tokens
        and isinstance(text_or_tokens[0], str)
    ):
        raise TypeError(
            "pass the text or the token ids (`model.to_tokens(text)`), not token strings: the "
            "view runs the model on them."
        )
    else:
        ids = torch.tensor([_ids_as_list(text_or_tokens)])
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ValueError(
            f"views show one sequence: expected ids of shape (1, pos), got {tuple(ids.shape)}"
        )
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: there is nothing to show.")
    return ids, str_tokens(model, ids[0])


class ColoredTokens(HookLensWidget):
    """Tokens shown as text (whitespace made visible), each tinted by one value.

    ``tokens``: ``n`` strings. ``values``: shape ``(n,)``; positive values tint blue, negative red.
    """

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    values = traitlets.Dict().tag(sync=True)

    def __init__(
        self, tokens: Any, values: Any, model: Any = None, tokenizer: Any = None, **kwargs: Any
    ) -> None:
        strings = as_token_strings(tokens, model=model, tokenizer=tokenizer)
        array = as_numpy(values).astype("float32").reshape(-1)
        if array.shape[0] != len(strings):
            raise ValueError(
                f"`values` has {array.shape[0]} entries but there are {len(strings)} tokens; "
                "pass one value per token."
            )
        super().__init__(
            view="colored_tokens", tokens=strings, values=encode_tensor(array), **kwargs
        )


def colored_tokens(
    tokens: Any, values: Any, *, model: Any = None, tokenizer: Any = None
) -> ColoredTokens:
    """CircuitsVis-compatible ``colored_tokens(tokens=[str], values=(n,))``.

    ``tokens`` may be token ids when ``model=`` or ``tokenizer=`` is given.
    """
    return ColoredTokens(tokens, values, model=model, tokenizer=tokenizer)
