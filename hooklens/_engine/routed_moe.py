"""The points of a mixture of experts whose experts module takes the router's choices as
inputs (Mixtral's layout): the router's logits, the chosen experts and their weights, and each
chosen expert's output. Other layouts: `scored_moe.py` (Llama 4), `grouped_moe.py` (JetMoE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._errors import MSG_READ_ONLY, HookError
from . import module_hooks
from .sites import _first, _with_first

if TYPE_CHECKING:
    from .sites import Builder

__all__ = ["expert_out_site", "experts_site", "router_site"]


def router_site(b: Builder, module: nn.Module, layer: int, logits_at: int = 0) -> None:
    """`mlp.hook_router_logits`: the router's output `logits_at` (tokens, n_experts) (its
    first, or its only one), read-only."""
    site = b._site(lambda: [module_hooks.forward_hook(module, hook)])
    point = b._new("mlp.hook_router_logits", layer, site)
    assert point is not None
    bpd = b._bpd

    def hook(mod: nn.Module, args: Any, out: Any) -> None:
        logits = bpd(out[logits_at] if isinstance(out, tuple | list) else out)
        if point.fire_computed(logits) is not None:  # returned, or written into
            raise HookError(MSG_READ_ONLY.format(name=point.name), point.name)


def experts_site(b: Builder, module: nn.Module, layer: int) -> None:
    """`mlp.hook_expert_indices` / `hook_expert_weights` (batch, pos, top_k): the experts
    module's inputs (hidden states (tokens, d_model), chosen ids, their weights)."""
    site = b._site(lambda: [module_hooks.pre_hook(module, hook, with_kwargs=True)])
    idx_pt = b._new("mlp.hook_expert_indices", layer, site)
    w_pt = b._new("mlp.hook_expert_weights", layer, site)
    assert idx_pt is not None and w_pt is not None
    bpd = b._bpd
    keys = ("hidden_states", "top_k_index", "top_k_weights")

    def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        values = [*args, *(kwargs[k] for k in keys[len(args) :] if k in kwargs)]
        changed = False
        for i, pt in ((1, idx_pt), (2, w_pt)):
            if pt.fns:
                t = values[i]
                v = bpd(t)
                new = pt.fire(v)
                if new is not v:
                    values[i] = new.reshape(t.shape)
                    changed = True
        if not changed:
            return None
        rest = {k: v for k, v in kwargs.items() if k not in keys}
        return tuple(values), rest


def expert_out_site(b: Builder, module: nn.Module, layer: int) -> None:
    """`mlp.hook_expert_out` (batch, pos, top_k, d_model): each chosen expert's output,
    recomputed one choice at a time with weight 1; an edit replaces the experts' output by
    the weighted sum of the edited outputs."""
    site = b._site(lambda: [module_hooks.forward_hook(module, hook, with_kwargs=True)])
    point = b._new("mlp.hook_expert_out", layer, site)
    assert point is not None
    keys = ("hidden_states", "top_k_index", "top_k_weights")
    frame = b.frame

    def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        hidden, index, weights = [*args, *(kwargs[k] for k in keys[len(args) :])][:3]
        one = torch.ones_like(weights[:, :1])
        own = module_hooks.own_forward(mod)  # its forward, not the one running this hook
        flat = hidden.reshape(-1, hidden.shape[-1])  # some take (batch, pos, d_model) (DBRX)
        outs = torch.stack(
            [
                own(flat, index[:, k : k + 1], one).reshape(flat.shape)
                for k in range(index.shape[1])
            ],
            1,
        )  # (tokens, top_k, d_model)
        view = outs.view(frame.batch, -1, *outs.shape[1:])
        new = point.fire_computed(view)  # the outputs are recomputed for the point
        if new is None:
            return None
        mixed = (new.flatten(0, 1) * weights[..., None].to(new.dtype)).sum(1)
        first = _first(out)
        return _with_first(out, mixed.reshape(first.shape).to(first.dtype))
