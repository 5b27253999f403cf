"""Tokens tinted by the log prob the model gave them, with its top guesses on hover
(CircuitsVis' ``token_log_probs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import traitlets

from .._engine.kwargs import checked
from ._port import PortedView
from ._widget import index_param, rpc_method
from ._wire import encode_tensor


class TokenLogProbs(PortedView):
    """The prompt (``N`` strings), each token after the first tinted by its log prob.

    The correct token's log prob and rank ride in traits (``N - 1`` each); a position's top-k
    guesses are fetched with the ``topk {position}`` request when it is hovered or clicked.
    """

    prompt = traitlets.List(traitlets.Unicode(), help="The N token strings of the prompt.").tag(
        sync=True
    )
    correct_log_prob = traitlets.Dict(
        help="Log prob of each token given the ones before it: float32 (N - 1,)."
    ).tag(sync=True, ts="EncodedTensor")
    correct_rank = traitlets.List(
        traitlets.Int(), help="Rank (0 = top guess) of each token among the model's guesses."
    ).tag(sync=True)
    top_k = traitlets.Int(10, help="How many guesses a position lists.").tag(sync=True)
    position = traitlets.Int(
        -1, help="Clicked (locked) position of the prompt, in [1, N); -1 when none."
    ).tag(sync=True)

    first_screen_traits = ("position",)

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("topk", {"position": self.position})] if self.position >= 1 else []

    def __init__(
        self,
        prompt: list[str],
        log_probs: torch.Tensor,
        targets: torch.Tensor,
        to_string: Callable[[int], str],
        top_k: int,
    ) -> None:
        # log_probs (N - 1, d_vocab): row p predicts token p + 1.
        self._top_values, self._top_ids = log_probs.topk(top_k, dim=-1)
        self._to_string = to_string
        correct = log_probs.gather(-1, targets[:, None])[:, 0]
        rank = (log_probs > correct[:, None]).sum(-1)
        super().__init__(
            view="token_log_probs",
            prompt=prompt,
            correct_log_prob=encode_tensor(correct),
            correct_rank=[int(r) for r in rank.tolist()],
            top_k=top_k,
        )

    @rpc_method("topk")
    def _rpc_topk(self, position: int) -> dict[str, Any]:
        """``{"position": p, "tokens": [k strings], "log_probs": float32 (k,)}`` of the guesses
        for token ``p`` (in ``[1, N)``)."""
        index_param("position", position - 1, len(self.prompt) - 1)
        row = position - 1
        return {
            "position": position,
            "tokens": [str(self._to_string(int(i))) for i in self._top_ids[row].tolist()],
            "log_probs": encode_tensor(self._top_values[row]),
        }

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("topk", {"position": p}) for p in range(1, len(self.prompt))]


@checked()
def token_log_probs(
    token_indices: Any,
    log_probs: Any,
    to_string: Callable[[int], str],
    top_k: int = 10,
) -> TokenLogProbs:
    """CircuitsVis' ``token_log_probs``: each token after the first tinted by its log prob;
    hover or click one for the model's ``top_k`` guesses there and the true token's rank.

    ``token_indices``: ids ``(N,)`` or ``(1, N)``, starting with BOS; ``log_probs``: log probs
    of the next token, ``(N, d_vocab)`` or ``(1, N, d_vocab)``; ``to_string``: id -> string
    (e.g. ``model.to_single_str_token``).
    """
    ids = torch.as_tensor(token_indices).to("cpu").long()
    scores = torch.as_tensor(log_probs).detach().to("cpu", torch.float32)
    if ids.ndim == 2:
        ids = ids.squeeze(0)
    if scores.ndim == 3:
        scores = scores.squeeze(0)
    if scores.ndim != 2:
        raise ValueError(f"Log Probs shape must be 2D (N, d_vocab): {tuple(scores.shape)}")
    if ids.ndim != 1:
        raise ValueError(f"Tokens shape must be 1D (N,): {tuple(ids.shape)}")
    if ids.shape[0] != scores.shape[0]:
        raise ValueError(
            "Number of tokens and log prob vectors must be identical, "
            f"{tuple(scores.shape)}, {tuple(ids.shape)}"
        )
    if ids.shape[0] < 2:
        raise ValueError("token_log_probs needs at least two tokens (BOS and one to predict).")
    k = int(top_k)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"top_k must be in [1, d_vocab={scores.shape[1]}], got {top_k}")
    prompt = [str(to_string(int(i))) for i in ids.tolist()]
    return TokenLogProbs(prompt, scores[:-1], ids[1:], to_string, k)
