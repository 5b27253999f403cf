"""Next-token loss, TransformerLens's way (`loss_fn`, `return_type="loss"` / `"both"`)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Output(NamedTuple):
    """What `forward(..., return_type="both")` returns: logits (batch, pos, d_vocab) and loss."""

    logits: torch.Tensor
    loss: torch.Tensor


def loss_fn(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    per_token: bool = False,
) -> torch.Tensor:
    """Cross-entropy of predicting `tokens[:, 1:]` from `logits[:, :-1]`.

    `logits` (batch, pos, d_vocab), `tokens` (batch, pos). Returns the loss per token
    (batch, pos - 1) with `per_token=True`, else the mean over the counted tokens (a scalar).
    With `attention_mask` (batch, pos; 1 = real token) a prediction counts only when both its
    token and the next one are real; uncounted entries of the per-token loss are 0.
    """
    tokens = tokens.to(logits.device)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    predicted = log_probs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    if attention_mask is not None:
        mask = attention_mask.to(logits.device).bool()
        keep = mask[:, 1:] & mask[:, :-1]
        predicted = predicted * keep
        count = keep.sum()
    else:
        count = torch.tensor(predicted.numel(), device=logits.device)
    if per_token:
        return -predicted
    return -predicted.sum() / count
