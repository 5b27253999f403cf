"""How a projection module's output holds q, k or v (`Proj.layout`): split into per-head parts
(batch, pos, heads, d_head) for the points, and joined back into the output after an edit."""

from __future__ import annotations

from typing import Any

import torch

from ..architectures._spec import Layout


def split_parts(
    out: Any, layout: Layout, nh: int, nkv: int, dh: int, dq: int
) -> list[torch.Tensor]:
    """The per-head parts of `out`: one (q, k or v), or [q, k, v] (or [q, k]) where one
    module's output holds several. `nh`/`nkv` heads of `dh`; `dq` the width of a flat part."""
    if layout == "tuple_bphd":  # a module returning (q, k[, v]) per head (ZAYA's)
        return list(out)
    if layout == "flat":
        return [out.view(*out.shape[:-1], -1, dq)]
    if layout == "bphd":
        return [out]
    if layout == "bhpd":
        return [out.transpose(1, 2)]
    if layout == "concat_qkv":
        lead = out.shape[:-1]
        q_ = out[..., : nh * dh].view(*lead, nh, dh)
        k_ = out[..., nh * dh : (nh + nkv) * dh].view(*lead, nkv, dh)
        return [q_, k_, out[..., (nh + nkv) * dh :]]
    heads = out.view(*out.shape[:-1], nh, 3 * dh)  # per_head_qkv
    return [heads[..., :dh], heads[..., dh : 2 * dh], heads[..., 2 * dh :]]


def join_parts(out: Any, parts: list[torch.Tensor], layout: Layout) -> Any:
    """`out` with its parts replaced by `parts` (as `split_parts` gave them, some edited)."""
    if layout == "tuple_bphd":
        return type(out)(parts)
    if layout == "flat":
        return parts[0].reshape(out.shape)
    if layout == "bphd":
        return parts[0]
    if layout == "bhpd":
        return parts[0].transpose(1, 2).contiguous()
    if layout == "concat_qkv":
        lead = out.shape[:-1]
        return torch.cat([p.reshape(*lead, -1) for p in parts], dim=-1)
    return torch.cat(parts, dim=-1).reshape(out.shape)
