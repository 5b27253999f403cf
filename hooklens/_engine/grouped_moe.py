"""The routing points of a mixture of experts whose router groups its choices by expert (JetMoE).

JetMoE's router (`JetMoeTopKGating`, the ScatterMoE layout) returns its choices sorted by
expert rather than per token: `order` (tokens * top_k,), the flat (token, choice) positions in
expert order; the token of each; its weight; the number of tokens each expert gets; and the
logits. The MoE runs the experts' two parallel projections on the tokens in that order, so the
second projection's output (`ArchSpec.moe_experts`) is each (token, choice)'s expert output, in
expert order, before its weight. Here (`ArchSpec.moe_weights_at == "grouped"`):

- `mlp.hook_expert_indices` / `hook_expert_weights` (batch, pos, top_k) are the router's
  choices put back in token order; an edit regroups them exactly as the router does (sort the
  flat choices by expert, count the tokens per expert);
- `mlp.hook_expert_out` (batch, pos, top_k, d_model) is the output projection's output put back
  in token order; an edit is put back in expert order. The MoE weights it and sums over the
  choices (`hook_mlp_out` also holds the MoE's bias).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .scored_moe import routing_points

if TYPE_CHECKING:
    from .sites import Builder

__all__ = ["grouped_experts_site"]


def _in_token_order(order: torch.Tensor, grouped: torch.Tensor, top_k: int) -> torch.Tensor:
    """Rows `grouped` (tokens * top_k, ...) in expert order as (tokens, top_k, ...)."""
    flat = torch.empty_like(grouped)
    flat[order] = grouped
    return flat.view(-1, top_k, *grouped.shape[1:])


def grouped_experts_site(b: Builder, router: nn.Module, experts: nn.Module, layer: int) -> None:
    """`mlp.hook_expert_indices`, `hook_expert_weights` and `hook_expert_out` of `layer`, read
    at the router's output and the experts' output projection's."""
    orders: list[torch.Tensor] = []  # the expert order the experts ran in, in this forward
    top_k, n_experts, frame, bpd = int(b.cfg.top_k), int(b.cfg.n_experts), b.frame, b._bpd

    def on_router(mod: nn.Module, args: Any, out: Any) -> Any:
        order, _, gates, sizes, logits = out
        counts = torch.as_tensor(sizes, device=order.device)
        experts_of = torch.arange(n_experts, device=order.device).repeat_interleave(counts)
        index = _in_token_order(order, experts_of, top_k)  # (tokens, top_k)
        weights = _in_token_order(order, gates, top_k)
        edited = idx_pt.active or w_pt.active
        if idx_pt.active:
            index = idx_pt.fire(bpd(index)).reshape(weights.shape)
        if w_pt.active:
            weights = w_pt.fire(bpd(weights)).reshape(index.shape)
        if not edited:  # the router's own grouping stands
            orders[:] = [order]
            return None
        # regrouped as the router groups them (unchanged choices give its own tensors back)
        _, order = index.flatten().sort(0)
        sizes = torch.bincount(index.flatten(), minlength=n_experts).tolist()
        gates = weights.flatten()[order].to(gates.dtype)
        orders[:] = [order]
        return (order, order.div(top_k, rounding_mode="trunc"), gates, sizes, logits)

    def on_out(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
        if not out_pt.active or not orders:
            return None
        order = orders[0]
        picked = _in_token_order(order, out, top_k)  # (tokens, top_k, d_model)
        view = picked.view(frame.batch, -1, *picked.shape[1:])
        new = out_pt.fire_computed(view)
        if new is None:
            return None
        return new.reshape(-1, out.shape[-1])[order].to(out.dtype)

    # the hooks read these points when they run
    idx_pt, w_pt, out_pt = routing_points(b, layer, router, experts, (on_router, on_out), orders)
