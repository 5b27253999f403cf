"""Attention modules that compute attention themselves, and how hooklens serves their internals.

Some families (GPT-Neo, BLOOM, ...) do not call transformers' attention interface: their
attention module multiplies q and k itself. Their adapter carries `attn_forward`, a
reimplementation of that module's forward that produces the same q, k, v and mask and hands them
to hooklens's attention function (`attention.attention_forward`), so q/k/v, scores, pattern and
z are served (and edited) there exactly as on every other family. The reimplementation is
installed as the module's `forward` only while an attention-internal point has a function
(`ForwardSwaps`, switched together with the attention implementation); otherwise the model runs
its own code. Whether the reimplementation reproduces the model is asserted per family by the
registry test (logits equal, with every point attached).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

_UNSET = object()


class ForwardSwaps:
    """Install `fn` as `module.forward` for each (module, fn), and restore what was there."""

    def __init__(self, swaps: Sequence[tuple[nn.Module, Callable[..., Any]]]) -> None:
        self._swaps = list(swaps)
        self._saved: list[Any] = []

    def install(self) -> None:
        self._saved = [m.__dict__.get("forward", _UNSET) for m, _ in self._swaps]
        for module, fn in self._swaps:
            module.forward = types.MethodType(fn, module)

    def remove(self) -> None:
        for (module, _), saved in zip(self._swaps, self._saved, strict=True):
            if saved is _UNSET:
                del module.forward
            else:
                module.forward = saved
        self._saved = []


def additive_mask(
    mask: torch.Tensor | None, q_len: int, k_len: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The model's attention mask as an additive float mask (.., q_len, k_len).

    `mask` is what the model passes to its layers: None (causal, the queries being the last
    `q_len` of `k_len` positions), boolean (True = attend) or already additive.
    """
    lowest = torch.finfo(dtype).min
    if mask is not None and mask.dtype != torch.bool:
        return mask[..., :k_len].to(dtype)
    if mask is None:
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril_(k_len - q_len)
    else:
        allowed = mask[..., :k_len]
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, lowest)


def split_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(batch, pos, n_heads * d_head) -> (batch, n_heads, pos, d_head)."""
    return t.view(*t.shape[:2], n_heads, -1).transpose(1, 2)


__all__ = ["ForwardSwaps", "additive_mask", "split_heads"]
