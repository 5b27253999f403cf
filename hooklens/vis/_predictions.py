"""A prediction as the views show it: the metric's value and the top-k tokens at its position."""

from __future__ import annotations

from typing import Any

import torch

from .._engine.tokens import token_strings
from ..metrics import TokenMetric
from ._wire import encode_tensor


def prediction(model: Any, metric: Any, logits: torch.Tensor, k: int) -> dict[str, Any]:
    """Metric value and top-``k`` of ``logits`` (1, pos, d_vocab) at the metric's position:
    ``ids`` (k,) int32, ``probs`` (k,) float32 and their strings."""
    pos = metric.pos if isinstance(metric, TokenMetric) else -1
    value = float(torch.as_tensor(metric(logits)).reshape(-1)[0])
    probs = logits[0, pos].float().softmax(-1)
    top = probs.topk(min(k, probs.shape[-1]))
    ids = top.indices.tolist()
    return {
        "metric": value,
        "ids": encode_tensor(torch.tensor(ids), "int32"),
        "probs": encode_tensor(top.values),
        "strings": token_strings(model, ids),
    }
