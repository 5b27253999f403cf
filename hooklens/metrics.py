"""Metrics on logits for patching and for views.

A metric maps logits ``(batch, pos, d_vocab)`` to one number per batch element ``(batch,)``.
The built-in ones read the answer token(s) at one position (the last by default); any callable
with that signature works too. Their ``repr`` is the Python that builds them, so a view can show
the line that reproduces its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

__all__ = ["Metric", "TokenMetric", "logit_diff", "logprob", "prob", "rank"]

_NOT_ONE_TOKEN = (
    "{role} {text!r} is {count} tokens {pieces}, but a metric needs a single token. "
    "{suggestion}or pass its token id as an int."
)
_CANDIDATES = "Strings like it that are one token for this model's tokenizer: {candidates}; "
_NO_CANDIDATES = "Pick a string that tokenizes to one token (see `model.to_str_tokens`), "


class Metric(Protocol):
    """``metric(logits)``: logits ``(batch, pos, d_vocab)`` -> values ``(batch,)``."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor: ...


def single_token_id(model: Any, token: str | int, role: str = "answer") -> int:
    """The id of ``token`` (a string that must be exactly one token, or an id)."""
    if isinstance(token, int):
        if not 0 <= token < model.cfg.d_vocab:
            raise ValueError(
                f"{role} id {token} is outside the vocabulary [0, {model.cfg.d_vocab})"
            )
        return token
    ids = model.to_tokens(token, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        pieces = model.to_str_tokens(torch.tensor(ids))
        candidates = _one_token_candidates(model, token, pieces)
        suggestion = (
            _CANDIDATES.format(candidates=", ".join(map(repr, candidates)))
            if candidates
            else _NO_CANDIDATES
        )
        raise ValueError(
            _NOT_ONE_TOKEN.format(
                role=role, text=token, count=len(ids), pieces=pieces, suggestion=suggestion
            )
        )
    return int(ids[0])


def _one_token_candidates(model: Any, text: str, pieces: list[str], limit: int = 6) -> list[str]:
    """Strings near ``text`` that this tokenizer encodes as one token: each word with and
    without a leading space (BPE vocabularies), then the text's own non-blank pieces (a
    character-level vocabulary)."""
    words = text.split()
    tried = [form for word in words for form in (" " + word, word)]
    tried += [piece for piece in pieces if piece.strip()]
    found: list[str] = []
    for candidate in dict.fromkeys(tried):
        if len(found) == limit:
            break
        if len(model.to_tokens(candidate, prepend_bos=False)[0]) == 1:
            found.append(candidate)
    return found


@dataclass(frozen=True)
class TokenMetric:
    """A metric read from the logits of one or two tokens at position ``pos``.

    ``kind`` is one of ``logit_diff`` (answer logit minus wrong logit), ``prob``, ``logprob``
    (of the answer, after softmax over the vocabulary) and ``rank`` (0 = top-1).
    """

    kind: str
    answer_id: int
    wrong_id: int | None = None
    pos: int = -1
    source: str = field(default="", compare=False)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 3:
            raise ValueError(
                f"a metric takes logits of shape (batch, pos, d_vocab), got {tuple(logits.shape)}"
            )
        at_pos = logits[:, self.pos, :].float()
        if self.kind == "logit_diff":
            assert self.wrong_id is not None
            return at_pos[:, self.answer_id] - at_pos[:, self.wrong_id]
        if self.kind == "prob":
            return at_pos.softmax(-1)[:, self.answer_id]
        if self.kind == "logprob":
            return at_pos.log_softmax(-1)[:, self.answer_id]
        if self.kind == "rank":
            answer = at_pos[:, self.answer_id : self.answer_id + 1]
            return (at_pos > answer).sum(-1).float()
        raise ValueError(f"unknown metric kind {self.kind!r}")

    def narrowed(self) -> tuple[list[int], TokenMetric] | None:
        """(token ids, the same metric on logits of just those tokens, in that order), for
        metrics that read no other logit (a logit difference); None for softmax metrics."""
        if self.kind == "logit_diff" and self.wrong_id is not None:
            return [self.answer_id, self.wrong_id], TokenMetric("logit_diff", 0, 1, self.pos)
        return None

    def __repr__(self) -> str:
        return self.source or f"TokenMetric({self.kind!r}, {self.answer_id}, {self.wrong_id})"


def _describe(kind: str, **kwargs: Any) -> str:
    args = ", ".join(f"{key}={value!r}" for key, value in kwargs.items() if value is not None)
    return f"hl.metrics.{kind}(model, {args})"


def logit_diff(model: Any, answer: str | int, wrong: str | int, pos: int = -1) -> TokenMetric:
    """Logit of ``answer`` minus logit of ``wrong`` at ``pos``, one value per batch element."""
    return TokenMetric(
        "logit_diff",
        single_token_id(model, answer),
        single_token_id(model, wrong, role="wrong answer"),
        pos,
        _describe("logit_diff", answer=answer, wrong=wrong, pos=None if pos == -1 else pos),
    )


def _single_answer(kind: str, model: Any, answer: str | int, pos: int) -> TokenMetric:
    source = _describe(kind, answer=answer, pos=None if pos == -1 else pos)
    return TokenMetric(kind, single_token_id(model, answer), None, pos, source)


def prob(model: Any, answer: str | int, pos: int = -1) -> TokenMetric:
    """Probability of ``answer`` at ``pos``."""
    return _single_answer("prob", model, answer, pos)


def logprob(model: Any, answer: str | int, pos: int = -1) -> TokenMetric:
    """Log-probability of ``answer`` at ``pos``."""
    return _single_answer("logprob", model, answer, pos)


def rank(model: Any, answer: str | int, pos: int = -1) -> TokenMetric:
    """Rank of ``answer`` among all tokens at ``pos`` (0 = the top prediction)."""
    return _single_answer("rank", model, answer, pos)
