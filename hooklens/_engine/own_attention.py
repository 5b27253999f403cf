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

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import module_hooks


class ForwardSwaps:
    """Run `fn` as `module`'s forward for each (module, fn) while installed (`module_hooks.py`: the
    module's hooks still run around it), and the module's own forward again once removed."""

    def __init__(self, swaps: Sequence[tuple[nn.Module, Callable[..., Any]]]) -> None:
        self._swaps = list(swaps)
        self._handles: list[module_hooks.HookHandle] = []

    def install(self) -> None:
        self._handles = [module_hooks.swap_forward(module, fn) for module, fn in self._swaps]

    def remove(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()


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
