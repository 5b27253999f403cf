"""The routing points of a mixture of experts whose router scores the experts' inputs (Llama 4).

Most mixtures of experts (Mixtral, Qwen-MoE, ...) call their experts module with the hidden
states, the chosen experts' ids and their weights, and weight each chosen expert's output
(`routed_moe.py`). Llama 4's router returns (scores, logits): `scores` (tokens, n_experts) is
the sigmoid of each chosen expert's logit and 0 for the others. Its MoE multiplies one copy of
the tokens per expert by that expert's score, and the experts module returns each copy's output,
rows ordered (expert, token); the MoE sums them over the experts (and adds its shared expert's
output). So here (`ArchSpec.moe_weights_at == "inputs"`):

- `mlp.hook_expert_indices` are the top_k of the router's logits (the router's own choice);
- `mlp.hook_expert_weights` are the chosen experts' scores, which scale their *inputs*; an edit
  of either rebuilds the scores the MoE reads (the weights at the chosen experts, 0 elsewhere);
- `mlp.hook_expert_out` is each chosen expert's output on its scored input (its weight is
  already inside, and the expert is nonlinear in it); the experts' part of `hook_mlp_out` is
  the plain sum of these outputs, and an edit replaces those rows of the experts' output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._errors import HookError
from . import module_hooks

if TYPE_CHECKING:
    from .hooks import HookPoint
    from .sites import Builder

__all__ = ["routing_points", "scored_experts_site"]


def routing_points(
    b: Builder, layer: int, router: nn.Module, experts: nn.Module, hooks: tuple[Any, Any],
    kept: list[torch.Tensor],
) -> tuple[HookPoint, HookPoint, HookPoint]:  # fmt: skip
    """`mlp.hook_expert_indices`, `hook_expert_weights` and `hook_expert_out` of `layer`, on one
    site whose forward hooks are `hooks` (on the router's output, on the experts' output);
    `kept`, what the router hook keeps for the experts hook, is emptied when they attach."""

    def install() -> list[Any]:
        kept.clear()
        return [
            module_hooks.forward_hook(router, hooks[0]),
            module_hooks.forward_hook(experts, hooks[1]),
        ]

    site = b._site(install)
    points = [b._new(f"mlp.hook_expert_{x}", layer, site) for x in ("indices", "weights", "out")]
    idx_pt, w_pt, out_pt = points
    assert idx_pt is not None and w_pt is not None and out_pt is not None
    return idx_pt, w_pt, out_pt


def scored_experts_site(b: Builder, router: nn.Module, experts: nn.Module, layer: int) -> None:
    """`mlp.hook_expert_indices`, `hook_expert_weights` and `hook_expert_out` of `layer`, read
    at the router's output and the experts module's output."""
    chosen: list[torch.Tensor] = []  # the indices the experts ran with, in this forward
    top_k, frame, bpd = int(b.cfg.top_k), b.frame, b._bpd

    def on_router(mod: nn.Module, args: Any, out: Any) -> Any:
        scores, logits = out[0], out[1]
        index = torch.topk(logits, top_k, dim=-1).indices
        weights = scores.gather(-1, index)
        edited = idx_pt.active or w_pt.active
        if idx_pt.active:
            index = idx_pt.fire(bpd(index)).reshape(weights.shape)
            if bool((index.sort(-1).values.diff(dim=-1) == 0).any()):
                raise HookError(
                    f"{idx_pt.name}: this mixture of experts gives each expert one copy of the "
                    "tokens, scaled by its score, so a token cannot choose one expert twice; "
                    "to weigh an expert more, edit its entry of hook_expert_weights",
                    idx_pt.name,
                )
        if w_pt.active:
            weights = w_pt.fire(bpd(weights)).reshape(index.shape)
        chosen[:] = [index]
        if not edited:  # nothing else can have changed them: the router's own scores stand
            return None
        # rebuilt even when unchanged (an in-place edit leaves no other trace); unchanged, it
        # equals the router's scores exactly (the scores of experts not chosen are 0)
        rebuilt = torch.zeros_like(scores).scatter(-1, index, weights.to(scores.dtype))
        return (rebuilt, *out[1:])

    def on_out(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
        if not out_pt.active or not chosen:
            return None
        index = chosen[0]
        rows = out.view(-1, index.shape[0], out.shape[-1])  # (expert, token, d_model)
        tokens = torch.arange(index.shape[0], device=index.device)[:, None]
        picked = rows[index, tokens]  # (token, top_k, d_model)
        view = picked.view(frame.batch, -1, *picked.shape[1:])
        new = out_pt.fire_computed(view)
        if new is None:
            return None
        replaced = rows.clone()
        replaced[index, tokens] = new.reshape(picked.shape).to(rows.dtype)
        return replaced.reshape(out.shape)

    # the hooks read these points when they run
    idx_pt, w_pt, out_pt = routing_points(b, layer, router, experts, (on_router, on_out), chosen)
