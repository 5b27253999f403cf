"""Whether a mixture of experts scores its experts' inputs rather than weighting their outputs.

Llama 4's experts module takes only hidden states: its router returns (scores, logits), both
(tokens, n_experts), the scores 0 for the experts not chosen, and the MoE hands the experts one
copy of the tokens per expert, each multiplied by that expert's score. One forward of a few
tokens shows whether a model's MoE works this way (`ArchSpec.moe_weights_at == "inputs"`); what
the points mean then is in `_engine/scored_moe.py`, and the load check tests the rest.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["scores_experts_inputs"]


def scores_experts_inputs(model: nn.Module, router: nn.Module, experts: nn.Module) -> bool:
    """Whether `router` (one layer's) returns (scores, logits) over every expert, the scores
    non-negative, and `experts` then takes one copy of the tokens per expert."""
    seen: dict[str, Any] = {}
    handles = [
        router.register_forward_hook(lambda m, a, out: seen.setdefault("router", out)),
        experts.register_forward_pre_hook(lambda m, a: seen.setdefault("experts", a)),
    ]
    device = next(p.device for p in model.parameters())
    try:
        with torch.no_grad():
            model(input_ids=torch.arange(1, 4, device=device)[None], use_cache=False)
    finally:
        for h in handles:
            h.remove()
    out, args = seen.get("router"), seen.get("experts")
    if not isinstance(out, tuple) or len(out) < 2 or not args:
        return False
    scores, logits, hidden = out[0], out[1], args[0]
    if not all(isinstance(t, torch.Tensor) for t in (scores, logits, hidden)):
        return False
    return (
        scores.shape == logits.shape
        and scores.ndim == 2
        and bool((scores >= 0).all())
        and hidden.shape[0] == scores.shape[0] * scores.shape[1]
    )
