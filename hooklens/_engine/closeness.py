"""How close the check at load (`verify.py`) holds the wrapped model's numbers to the model's own.

Differences are relative to the reference's scale, so half-precision models compare fairly, and
a model's own two attention implementations (eager and its default) set how far rounding alone
takes its logits: a deep float32 model's, or one whose top-k choices flip in half precision.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["eager_spread", "gap", "scaled"]


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of a and b, relative to b's scale (so bf16 models compare fairly)."""
    return float((a.float() - b.float()).abs().max() / (1.0 + b.float().abs().max()))


def scaled(like: torch.Tensor, dims: slice, f: float) -> torch.Tensor:
    """(d,) on `like`'s device, d its last dimension: `f` on `dims`, 1 elsewhere."""
    scale = torch.ones(like.shape[-1], device=like.device)
    scale[dims] = f
    return scale


def eager_spread(hf: Any, tokens: torch.Tensor, ref: torch.Tensor) -> float:
    """How far the model's logits with its eager attention are from `ref` (its default's): the
    rounding of its own two implementations; 0 where eager is the default."""
    default = hf.config._attn_implementation
    if default == "eager":
        return 0.0
    try:
        hf.set_attn_implementation("eager")
        with torch.no_grad():
            eager = hf(input_ids=tokens, use_cache=False).logits
    finally:
        hf.set_attn_implementation(default)
    return gap(eager, ref)
