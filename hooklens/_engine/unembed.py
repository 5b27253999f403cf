"""The unembedding as the model applies it after its final norm: the one place that knows how."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..architectures._spec import text_config


def unembed(model: Any, normed: torch.Tensor, token_ids: list[int] | None = None) -> torch.Tensor:
    """Logits from the final norm's output (..., d_model) -> (..., d_vocab).

    With `token_ids`, only those tokens' logits, in that order: (..., len(token_ids)), computed
    from their rows of the unembedding (what a logit difference needs), never the whole
    vocabulary. Any logit scale and final soft-cap of the family are applied, as the model does.
    """
    head: nn.Module = model.hf_model.get_submodule(model.spec.unembed)
    if token_ids is None:
        logits: torch.Tensor = head(normed)
    else:
        weight: torch.Tensor = head.weight  # type: ignore[assignment]
        bias = getattr(head, "bias", None)
        ids = torch.as_tensor(token_ids, device=weight.device)
        rows_bias = bias[ids] if isinstance(bias, torch.Tensor) else None
        logits = nn.functional.linear(normed.to(weight.dtype), weight[ids], rows_bias)
    if model.spec.logit_scale is not None:  # Cohere multiplies, Granite divides
        scale_attr, op = model.spec.logit_scale
        factor = getattr(text_config(model.hf_model.config), scale_attr)
        logits = logits * factor if op == "mul" else logits / factor
    attr = model.spec.final_logit_softcap
    cap = getattr(text_config(model.hf_model.config), attr, None) if attr else None
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
