"""Token strips: each token as text, tinted by a value (CircuitsVis' ``colored_tokens``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from .._engine.kwargs import checked
from .._engine.model import HookedModel
from .._engine.tokens import token_strings
from ._port import PortedView
from ._wire import as_numpy, encode_tensor

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


def as_token_strings(
    tokens: Any, model: HookedModel | None = None, tokenizer: Any = None
) -> list[str]:
    """Validate that ``tokens`` is a sequence of strings and return it as a list.

    Token ids (a tensor or array of shape ``(pos,)``/``(1, pos)``, or a list of ints) are
    converted when a ``model`` or a ``tokenizer`` is given; otherwise they get an error that
    says how to convert them.
    """
    if isinstance(tokens, str):
        raise TypeError("`tokens` must be a list of token strings, not one string.")
    is_ids = hasattr(tokens, "dtype") or (
        isinstance(tokens, Sequence) and len(tokens) > 0 and not isinstance(tokens[0], str)
    )
    if not is_ids:
        return [str(token) for token in tokens]
    if model is not None:
        return token_strings(model, _ids_as_list(tokens))
    if tokenizer is not None:
        return [str(tokenizer.decode([i])) for i in _ids_as_list(tokens)]
    raise TypeError(_IDS_NOT_STRINGS.format(kind=type(tokens).__name__))


class ColoredTokens(PortedView):
    """Tokens shown as text (whitespace made visible), each tinted by one value.

    ``tokens``: ``n`` strings. ``values``: shape ``(n,)``. As in CircuitsVis, a value ``v >= 0``
    is drawn at ``v / max_value`` of ``positive_color`` (blue), a negative one at
    ``v / min_value`` of ``negative_color`` (red); the range defaults to the values' own
    minimum and maximum.
    """

    tokens = traitlets.List(
        traitlets.Unicode(), help="The n token strings, shown as text (never as HTML)."
    ).tag(sync=True)
    values = traitlets.Dict(help="One value per token: float32 of shape (n,).").tag(
        sync=True, ts="EncodedTensor"
    )
    min_value = traitlets.Float(
        None, allow_none=True, help="Value drawn at full negative colour; None: min(values)."
    ).tag(sync=True, ts="number | null")
    max_value = traitlets.Float(
        None, allow_none=True, help="Value drawn at full positive colour; None: max(values)."
    ).tag(sync=True, ts="number | null")
    negative_color = traitlets.Unicode(
        "", help='CSS colour of negative values; "" for the theme\'s red.'
    ).tag(sync=True)
    positive_color = traitlets.Unicode(
        "", help='CSS colour of positive values; "" for the theme\'s blue.'
    ).tag(sync=True)

    def __init__(
        self,
        tokens: Any,
        values: Any,
        model: HookedModel | None = None,
        tokenizer: Any = None,
        **kwargs: Any,
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


@checked()
def colored_tokens(
    tokens: Any,
    values: Any,
    min_value: float | None = None,
    max_value: float | None = None,
    negative_color: str | None = None,
    positive_color: str | None = None,
    *,
    model: HookedModel | None = None,
    tokenizer: Any = None,
) -> ColoredTokens:
    """CircuitsVis' ``colored_tokens(tokens=[str], values=(n,), min_value, max_value,
    negative_color, positive_color)`` (colours: any CSS colour string).

    ``tokens`` may be token ids when ``model=`` or ``tokenizer=`` is given.
    """
    return ColoredTokens(
        tokens,
        values,
        model=model,
        tokenizer=tokenizer,
        min_value=None if min_value is None else float(min_value),
        max_value=None if max_value is None else float(max_value),
        negative_color=negative_color or "",
        positive_color=positive_color or "",
    )
