"""Tokens tinted by one of several values each (CircuitsVis' ``colored_tokens_multi``), and
``visualize_model_performance`` built on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import traitlets

from .._engine.kwargs import checked
from ._port import PortedView
from ._tokens import as_token_strings
from ._wire import as_numpy, encode_tensor


class ColoredTokensMulti(PortedView):
    """``S`` tokens and ``K`` values per token; a button per value picks the one that tints them.

    ``values``: float32 ``(S, K)``. Hovering a token lists its ``K`` values.
    """

    tokens = traitlets.List(traitlets.Unicode(), help="The S token strings, shown as text.").tag(
        sync=True
    )
    values = traitlets.Dict(help="The values: float32 of shape (S, K).").tag(
        sync=True, ts="EncodedTensor"
    )
    labels = traitlets.List(traitlets.Unicode(), help="One name per value (K).").tag(sync=True)
    selected = traitlets.Int(0, help="The value (in [0, K)) that tints the tokens.").tag(sync=True)

    def __init__(self, tokens: list[str], values: np.ndarray, labels: list[str]) -> None:
        super().__init__(
            view="colored_tokens_multi",
            tokens=tokens,
            values=encode_tensor(values),
            labels=labels,
        )

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value < len(self.labels):
            raise traitlets.TraitError(f"selected must be in [0, {len(self.labels)}), got {value}")
        return value


@checked()
def colored_tokens_multi(
    tokens: Any, values: Any, labels: list[str] | None = None
) -> ColoredTokensMulti:
    """CircuitsVis' ``colored_tokens_multi(tokens=[S strings], values=(S, K), labels=[K])``.

    Each value type has a button; the selected one tints the tokens (red below 0, blue above,
    scaled to that type's minimum and maximum); hovering a token lists its ``K`` values.
    """
    strings = as_token_strings(tokens)
    array = as_numpy(values).astype(np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != len(strings):
        raise ValueError(
            f"Number of tokens ({len(strings)}) must equal first dimension of values tensor, "
            f"shape {tuple(array.shape)}; pass values of shape (S, K)."
        )
    if labels is None:
        names = [str(k) for k in range(array.shape[1])]
    else:
        names = [str(label) for label in labels]
        if len(names) != array.shape[1]:
            raise ValueError(
                f"Number of labels ({len(names)}) must equal second dimension of values tensor, "
                f"shape {tuple(array.shape)}"
            )
    return ColoredTokensMulti(strings, array, names)


@checked()
def visualize_model_performance(
    tokens: Any, str_tokens: list[str], logits: Any
) -> ColoredTokensMulti:
    """CircuitsVis' ``visualize_model_performance``: each token after the first, tinted by the
    logit, log prob or prob the model gave it from the tokens before.

    ``tokens``: ids ``(S,)`` or ``(1, S)``; ``str_tokens``: their ``S`` strings; ``logits``:
    ``(S, d_vocab)`` or ``(1, S, d_vocab)``. Shows ``S - 1`` tokens with the values
    ``logits``, ``log_probs``, ``probs`` (the last position predicts nothing and is dropped).
    """
    ids = torch.as_tensor(tokens)
    if ids.ndim == 2:
        if ids.shape[0] != 1:
            raise ValueError(
                f"tokens must be rank 1, or rank 2 with a dummy batch dimension. "
                f"Shape: {tuple(ids.shape)}"
            )
        ids = ids[0]
    scores = torch.as_tensor(logits).detach().to("cpu", torch.float32)
    if scores.ndim == 3:
        if scores.shape[0] != 1:
            raise ValueError(
                f"logits must be rank 2, or rank 3 with a dummy batch dimension. "
                f"Shape: {tuple(scores.shape)}"
            )
        scores = scores[0]
    if len(str_tokens) != len(ids):
        raise ValueError(
            f"Must have same number of tokens ({len(ids)}) and str_tokens ({len(str_tokens)})"
        )
    if scores.ndim != 2 or len(ids) != scores.shape[0]:
        raise ValueError(
            f"Must have the same number of tokens ({len(ids)}) and logit vectors "
            f"(logits shape {tuple(scores.shape)})"
        )
    values = next_token_values(ids.to("cpu").long(), scores)
    return colored_tokens_multi(list(str_tokens)[1:], values, ["logits", "log_probs", "probs"])


def next_token_values(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The logit, log prob and prob of each next token: ``(S - 1, 3)`` from ids ``(S,)`` and
    logits ``(S, d_vocab)``."""
    scores = logits[:-1]
    target = ids[1:, None]
    return torch.stack(
        [
            scores.gather(-1, target)[:, 0],
            scores.log_softmax(-1).gather(-1, target)[:, 0],
            scores.softmax(-1).gather(-1, target)[:, 0],
        ],
        dim=1,
    )
