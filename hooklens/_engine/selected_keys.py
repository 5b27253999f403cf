"""Sparse attention that selects keys per query (an indexer's top-k, passed as `indices`).

Models with an indexer (Dots3 Note's indexed attention layers) pick, for each query, the keys
it may attend to, and hand transformers' attention functions the choice as `indices`
(batch, q, top_k) where those functions take it; only their eager and sdpa paths turn it into
the mask themselves. hooklens's attention function joins it to the mask, so attention with
hooklens points attends to exactly the keys the model selects, whatever the sequence length.
"""

from __future__ import annotations

import torch

__all__ = ["select_keys"]


def select_keys(
    mask: torch.Tensor | None, indices: torch.Tensor, q_len: int, k_len: int
) -> torch.Tensor:
    """`mask` (None: causal) restricted to the keys `indices` (batch, q, top_k) selects: a
    boolean mask where `mask` is None or boolean, else the additive mask with the lowest value
    where a key is not selected."""
    selected = torch.zeros(
        (indices.shape[0], 1, q_len, k_len), dtype=torch.bool, device=indices.device
    ).scatter_(-1, indices.long()[:, None, -q_len:], True)
    if mask is None:
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=indices.device)
        return causal.tril_(k_len - q_len) & selected
    if mask.dtype == torch.bool:
        return mask[..., :k_len] & selected
    return mask[..., :k_len].masked_fill(~selected, torch.finfo(mask.dtype).min)
