"""Which logits a metric reads, learned from the metric itself, so a sweep computes only those.

A metric written as ``lambda logits: logits[0, -1, a] - logits[0, -1, b]`` reads two of the
vocabulary's logits at one position. The gradient of the metric at the base run's logits says
which entries it reads; perturbing every other entry and getting the same value back checks it
(a ``max`` or ``argmax`` has a sparse gradient but reads everything, and fails the check). A
sweep then unembeds only the read columns at the read positions and writes them into a copy of
the base logits that the metric is called on, so the metric sees exactly the values a full
forward would give it where it looks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

# Narrowing pays when the metric reads few columns; past this share the full unembedding wins.
_MAX_COLUMN_SHARE = 0.25


@dataclass(frozen=True)
class Reads:
    """The entries a metric reads: absolute positions and vocabulary columns."""

    positions: list[int]
    columns: list[int]

    def only_last(self, seq_len: int) -> bool:
        return self.positions == [seq_len - 1]


def _value(metric: Any, logits: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(metric(logits)).detach().double().reshape(-1)


def learn_reads(metric: Any, logits: torch.Tensor) -> Reads | None:
    """The entries of ``logits`` (batch, pos, d_vocab) that ``metric`` reads, or None when it
    reads too many to be worth narrowing, or when that cannot be established."""
    probe = logits.detach().float().clone().requires_grad_(True)
    try:
        # The probe is ours: what the metric warns about tracing it is not the user's concern.
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = torch.as_tensor(metric(probe))
            if not value.requires_grad:
                return None
            (grad,) = torch.autograd.grad(value.sum(), probe, allow_unused=True)
    except Exception:  # a metric that leaves torch (numpy, .item()) cannot be traced
        return None
    if grad is None:
        return None
    read = grad != 0
    positions = read.any(dim=2).any(dim=0).nonzero().flatten().tolist()
    columns = read.any(dim=1).any(dim=0).nonzero().flatten().tolist()
    if not positions or not columns or len(columns) > _MAX_COLUMN_SHARE * logits.shape[-1]:
        return None
    # Check: changing every entry outside the read set leaves the value exactly as it was.
    base = logits.detach().float()
    unread = torch.ones_like(base, dtype=torch.bool)
    index_pos = torch.tensor(positions)[:, None]
    index_col = torch.tensor(columns)[None, :]
    unread[:, index_pos, index_col] = False
    noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(0)) * 10.0
    perturbed = torch.where(unread, base + noise.to(base.device), base)
    try:
        same = torch.equal(_value(metric, perturbed), _value(metric, base))
    except Exception:
        return None
    return Reads(positions, columns) if same else None
