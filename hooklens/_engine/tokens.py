"""Text <-> tokens for `HookedModel` (TransformerLens names: to_tokens, to_str_tokens...)."""

from __future__ import annotations

import weakref
from typing import Any, cast

import torch

from .._errors import MSG_BAD_TOKENS, MSG_EMPTY_PROMPT, MSG_NO_TOKENIZER, MSG_TOO_LONG, InputError
from .kwargs import checked

TextOrTokens = str | list[str] | torch.Tensor | list[int]

_TOKEN_STRINGS = (
    "pass the text or the token ids (`model.to_tokens(text)`), not token strings: hooklens runs "
    "the model on them."
)
_NOT_ONE_PROMPT = (
    "expected one prompt: text, or token ids of shape (pos,) or (1, pos); got a batch of shape "
    "{shape}. Pass one sequence at a time, e.g. tokens[i]."
)


class TokenMixin:
    """Tokenization helpers; needs `tokenizer`, `cfg` and `_input_device()` from the model."""

    tokenizer: Any
    cfg: Any

    def _input_device(self) -> torch.device:  # pragma: no cover - provided by HookedModel
        raise NotImplementedError

    def _need_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise InputError(MSG_NO_TOKENIZER)
        return self.tokenizer

    @checked()
    def to_tokens(
        self,
        text: str | list[str],
        prepend_bos: bool | None = None,
        move_to_device: bool = True,
    ) -> torch.Tensor:
        """Tokenize text to ids of shape (batch, pos).

        The BOS token is prepended when the tokenizer has one (as TransformerLens does and as
        models trained with a BOS expect); `prepend_bos=False` turns that off. A list of strings
        is right-padded (the causal mask keeps padding from affecting the real tokens).
        """
        tok = self._need_tokenizer()
        rows = self._token_rows(text, prepend_bos)
        width = max((len(r) for r in rows), default=0)
        pad = getattr(tok, "pad_token_id", None)
        if pad is None:
            pad = getattr(tok, "eos_token_id", None) or 0
        tokens = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
        return tokens.to(self._input_device()) if move_to_device else tokens

    def _token_rows(self, text: str | list[str], prepend_bos: bool | None) -> list[list[int]]:
        """The ids of each text, unpadded (with BOS where the tokenizer has one)."""
        tok = self._need_tokenizer()
        texts = [text] if isinstance(text, str) else list(text)
        bos = getattr(tok, "bos_token_id", None)
        rows = [list(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        if bos is not None and (prepend_bos is None or prepend_bos):
            rows = [[bos, *r] for r in rows]
        return rows

    def _padding_mask(self, input: Any, prepend_bos: bool | None, width: int) -> Any:
        """(batch, pos) 1 on real tokens for a list of texts (right-padded), else None."""
        if not (isinstance(input, list) and len(input) > 1 and isinstance(input[0], str)):
            return None
        lengths = torch.tensor([len(r) for r in self._token_rows(input, prepend_bos)])
        return (torch.arange(width)[None, :] < lengths[:, None]).long()

    @checked()
    def to_str_tokens(
        self, input: TextOrTokens, prepend_bos: bool | None = None
    ) -> list[str] | list[list[str]]:
        """Each token as a string: a list for one sequence, a list of lists for a batch."""
        tok = self._need_tokenizer()
        if isinstance(input, str):
            ids = self.to_tokens(input, prepend_bos=prepend_bos, move_to_device=False)[0]
        elif isinstance(input, list) and input and isinstance(input[0], str):
            return [cast(list[str], self.to_str_tokens(t, prepend_bos)) for t in input]
        else:
            ids = torch.as_tensor(input)
        if ids.ndim == 2:
            if ids.shape[0] != 1:
                return [[tok.decode([int(i)]) for i in row] for row in ids.tolist()]
            ids = ids[0]
        return [tok.decode([int(i)]) for i in ids.tolist()]

    @checked()
    def to_string(self, tokens: torch.Tensor | list[int]) -> str | list[str]:
        """Decode ids: (pos,) -> str, (batch, pos) -> list of str."""
        tok = self._need_tokenizer()
        ids = torch.as_tensor(tokens)
        if ids.ndim == 2:
            return [tok.decode(row) for row in ids.tolist()]
        return str(tok.decode(ids.tolist()))

    @checked()
    def to_single_token(self, string: str) -> int:
        """The id of a string that is exactly one token (e.g. " Paris")."""
        ids = self.to_tokens(string, prepend_bos=False, move_to_device=False)[0]
        if ids.numel() != 1:
            raise InputError(f"{string!r} is {ids.numel()} tokens, not one")
        return int(ids[0])

    @checked()
    def get_token_position(
        self,
        single_token: str | int | torch.Tensor,
        input: str | torch.Tensor,
        mode: str = "first",
        prepend_bos: bool | None = None,
    ) -> int:
        """The position of `single_token` (a one-token string or an id) in `input` (text, or
        ids (pos,) or (1, pos)); `mode` "first" or "last" picks among several matches."""
        if mode not in ("first", "last"):
            raise InputError(f'mode must be "first" or "last", got {mode!r}')
        if isinstance(input, str):
            ids = self.to_tokens(input, prepend_bos=prepend_bos, move_to_device=False)[0]
        else:
            ids = torch.as_tensor(input)
            if ids.ndim == 2:
                if ids.shape[0] != 1:
                    raise InputError(f"tokens must be (pos,) or (1, pos), got {tuple(ids.shape)}")
                ids = ids[0]
        if isinstance(single_token, str):
            token = self.to_single_token(single_token)
        else:
            token = int(torch.as_tensor(single_token).item())
        found = (ids.cpu() == token).nonzero().flatten().tolist()
        if not found:
            raise InputError(f"token {single_token!r} (id {token}) does not occur in the input")
        return int(found[0] if mode == "first" else found[-1])

    @checked()
    def tokens_to_residual_directions(self, tokens: str | int | torch.Tensor) -> torch.Tensor:
        """The unembedding direction of each token: (d_model,) for one token (an id, a
        one-element tensor or a one-token string), (..., d_model) for ids (...)."""
        w_u: torch.Tensor = self.W_U  # type: ignore[attr-defined]
        if isinstance(tokens, torch.Tensor) and tokens.numel() > 1:
            return w_u.T[tokens.to(w_u.device)]
        if isinstance(tokens, str):
            token = self.to_single_token(tokens)
        elif isinstance(tokens, int):
            token = tokens
        elif isinstance(tokens, torch.Tensor):
            token = int(tokens.item())
        else:
            raise InputError(f"tokens must be a str, an int or a tensor of ids, got {tokens!r}")
        return w_u[:, token]

    def _prepare_tokens(self, input: TextOrTokens, prepend_bos: bool | None) -> torch.Tensor:
        """Text or ids -> validated ids (batch, pos) on the input device."""
        if isinstance(input, str) or (
            isinstance(input, list) and input and isinstance(input[0], str)
        ):
            texts = [input] if isinstance(input, str) else input
            if not any(texts):
                raise InputError(MSG_EMPTY_PROMPT)
            tokens = self.to_tokens(input, prepend_bos=prepend_bos, move_to_device=False)
        else:
            tokens = torch.as_tensor(input)
            if tokens.ndim == 1:
                tokens = tokens.unsqueeze(0)
            if tokens.is_floating_point() or tokens.ndim != 2:
                raise InputError(
                    MSG_BAD_TOKENS.format(
                        vocab=self.cfg.d_vocab,
                        what=f"{tokens.dtype} of shape {tuple(tokens.shape)}",
                    )
                )
        if tokens.shape[-1] == 0 or tokens.numel() == 0:
            raise InputError(MSG_EMPTY_PROMPT)
        if self.cfg.n_ctx and tokens.shape[-1] > self.cfg.n_ctx:
            raise InputError(MSG_TOO_LONG.format(n=tokens.shape[-1], n_ctx=self.cfg.n_ctx))
        # checked where the ids come from (before the move): ids made on the CPU cost the GPU
        # no synchronization, ids already on it one (both bounds in one transfer), once per
        # tensor: a loop over the same ids does not wait for the device on every call
        tokens = tokens.long()
        vocab = self.cfg.d_vocab
        if not _IN_RANGE.holds(tokens, vocab):
            lo, hi = torch.stack(torch.aminmax(tokens)).tolist()
            if lo < 0 or hi >= vocab:
                raise InputError(MSG_BAD_TOKENS.format(vocab=vocab, what=f"ids from {lo} to {hi}"))
            _IN_RANGE.remember(tokens, vocab)
        return tokens.to(self._input_device())


class _LastIdsInRange:
    """The last ids tensor found within a vocabulary, as it was then (its version counter)."""

    __slots__ = ("ref", "version", "vocab")

    def __init__(self) -> None:
        self.ref: weakref.ref[torch.Tensor] | None = None
        self.version = -1
        self.vocab = -1

    def holds(self, tokens: torch.Tensor, vocab: int) -> bool:
        """Whether `tokens` is that tensor, unchanged since (any in-place write bumps its
        version), and `vocab` at least as large."""
        if self.ref is None or self.ref() is not tokens or vocab < self.vocab:
            return False
        try:
            return tokens._version == self.version
        except RuntimeError:  # an inference tensor keeps no version counter
            return False

    def remember(self, tokens: torch.Tensor, vocab: int) -> None:
        try:
            version = tokens._version
        except RuntimeError:
            return
        self.ref, self.version, self.vocab = weakref.ref(tokens), version, vocab


_IN_RANGE = _LastIdsInRange()


def one_prompt(model: TokenMixin, prompt: Any) -> torch.Tensor:
    """One prompt, as text or ids of shape ``(pos,)`` / ``(1, pos)``, as checked ids ``(1, pos)``
    on the model's input device (the checks of a forward: empty, too long, ids out of range)."""
    if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[0], str):
        raise InputError(_TOKEN_STRINGS)
    tokens = model._prepare_tokens(
        prompt if isinstance(prompt, str) else torch.as_tensor(prompt), None
    )
    if tokens.shape[0] != 1:
        raise InputError(_NOT_ONE_PROMPT.format(shape=tuple(tokens.shape)))
    return tokens


def token_strings(model: TokenMixin, ids: Any) -> list[str]:
    """Each id of one sequence (``(pos,)`` or ``(1, pos)``) as a string: ``to_str_tokens``, or the
    id as ``#123`` when the model has no tokenizer (so it never reads as the text "123")."""
    tensor = torch.as_tensor(ids)
    if tensor.ndim > 2 or (tensor.ndim == 2 and tensor.shape[0] != 1):
        raise InputError(_NOT_ONE_PROMPT.format(shape=tuple(tensor.shape)))
    flat = [int(i) for i in tensor.reshape(-1).tolist()]
    if model.tokenizer is None:
        return [f"#{i}" for i in flat]
    return [str(s) for s in model.to_str_tokens(torch.tensor(flat))]
