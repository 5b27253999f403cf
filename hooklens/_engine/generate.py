"""`HookedModel.generate` with TransformerLens's meaning, run by transformers' `generate`.

TransformerLens samples by default (`do_sample=True`); `temperature=0` is greedy. Its sampler
divides the logits by the temperature, subtracts `freq_penalty` times each token's count so far,
then keeps the top-k (or, when no top-k, the top-p nucleus) and samples. `TransformerLensSampler`
does exactly that as one logits processor, with transformers' own warpers switched off, so that a
model's generation config (e.g. a default top_k=50) changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._errors import InputError

if TYPE_CHECKING:
    from .model import HookedModel


class TransformerLensSampler:
    """A transformers logits processor: temperature, frequency penalty, then top-k or top-p."""

    def __init__(
        self, temperature: float, freq_penalty: float, top_k: int | None, top_p: float | None
    ) -> None:
        self.temperature = temperature
        self.freq_penalty = freq_penalty
        self.top_k = top_k
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """`scores` (batch, d_vocab) for the next token of `input_ids` (batch, pos)."""
        logits = scores / self.temperature
        if self.freq_penalty > 0:
            counts = torch.zeros_like(logits).scatter_add_(
                1, input_ids, torch.ones_like(input_ids, dtype=logits.dtype)
            )
            logits = logits - self.freq_penalty * counts
        if self.top_k is not None:
            k = min(self.top_k, logits.shape[-1])
            kth = logits.topk(k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -float("inf"))
        elif self.top_p is not None:
            ordered, order = torch.sort(logits, descending=True)
            cum = ordered.softmax(-1).cumsum(-1)
            drop = cum > self.top_p
            drop[..., 1:] = drop[..., :-1].clone()
            drop[..., 0] = False
            logits = logits.masked_fill(drop.scatter(-1, order, drop), -float("inf"))
        return logits.float()


def prompt_batch(
    model: HookedModel, input: Any, prepend_bos: bool | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (batch, pos), attention_mask) of the prompts. A list of texts is padded on the
    left, as TransformerLens does for generation, so every row continues from its own end."""
    if not (isinstance(input, list) and input and all(isinstance(t, str) for t in input)):
        tokens = model._prepare_tokens(input, prepend_bos)
        return tokens, torch.ones_like(tokens)
    rows = [model._prepare_tokens(text, prepend_bos)[0] for text in input]
    width = max(len(r) for r in rows)
    tok = model.tokenizer
    pad = getattr(tok, "pad_token_id", None)
    pad = pad if pad is not None else (getattr(tok, "eos_token_id", None) or 0)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long, device=rows[0].device)
    mask = torch.zeros_like(tokens)
    for i, row in enumerate(rows):
        tokens[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return tokens, mask


def generate(
    model: HookedModel,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    stop_at_eos: bool,
    eos_token_id: int | list[int] | None,
    do_sample: bool,
    top_k: int | None,
    top_p: float | None,
    temperature: float,
    freq_penalty: float,
    use_past_kv_cache: bool,
) -> torch.Tensor:
    """Ids (batch, pos + new) continuing `tokens` (batch, pos) (`attention_mask` 0 on left
    padding); the hooks are already attached."""
    from transformers import LogitsProcessorList

    if temperature < 0:
        raise InputError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and top_k <= 0:
        raise InputError(f"top_k must be > 0, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p}")
    tok = model.tokenizer
    if eos_token_id is None:
        eos_token_id = getattr(tok, "eos_token_id", None) if tok is not None else None
        if eos_token_id is None:
            eos_token_id = getattr(model.hf_model.config, "eos_token_id", None)
    if stop_at_eos and eos_token_id is None:
        raise InputError(
            "stop_at_eos=True needs an end-of-sequence token: this model's tokenizer and config "
            "have none. Pass eos_token_id=... or stop_at_eos=False."
        )
    first_eos = eos_token_id[0] if isinstance(eos_token_id, list) else eos_token_id
    pad = getattr(tok, "pad_token_id", None) if tok is not None else None
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": 0,
        "use_cache": use_past_kv_cache,
        "pad_token_id": pad if pad is not None else (first_eos if first_eos is not None else 0),
        "attention_mask": attention_mask,
        "eos_token_id": eos_token_id if stop_at_eos else None,
        # TransformerLens applies none of these; a model's generation config must not either
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "num_beams": 1,
    }
    if do_sample and temperature > 0:
        sampler = TransformerLensSampler(temperature, freq_penalty, top_k, top_p)
        kwargs.update(
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            min_p=None,
            typical_p=1.0,
            logits_processor=LogitsProcessorList([sampler]),
        )
    else:
        kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    out: torch.Tensor = model.hf_model.generate(tokens, **kwargs)  # type: ignore[operator]
    return out
