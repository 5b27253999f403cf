"""`from_pretrained(..., ungroup_grouped_query_attention=True)`: TransformerLens's load option.

A grouped-query model shares each key/value head among several query heads, so `hook_k` and
`hook_v` have `n_kv_heads` heads and one query head's keys or values cannot be patched alone.
With the option, each key/value projection is widened to `n_heads` heads by repeating every
head's rows for the query heads that share it (TransformerLens repeats the heads' activations;
the computation is the same). The attention then sees `n_heads` key/value heads, `hook_k` /
`hook_v` are (batch, pos, n_heads, d_head), `cfg.n_kv_heads == cfg.n_heads`, and the model's
outputs do not change. The widened projections are new parameters (the key/value weights take
`n_heads / n_kv_heads` times their memory); everything else is the loaded model.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from .._errors import ArgumentError
from ..architectures._spec import ArchSpec, text_config
from .linear import qkv_modules

MSG_LAYOUT = """ungroup_grouped_query_attention=True: hooklens widens separate key and value
projections (nn.Linear k_proj / v_proj); this {family} model's are laid out as {layout}. Load it
without the option (hook_k / hook_v then have n_kv_heads={n_kv} heads)."""

MSG_WRAPPED = """ungroup_grouped_query_attention=True with hf_model=: the option rewrites the
key/value projections of the model it loads, and would change the model you passed. Load by
name or path without hf_model=, or wrap your model without the option."""


def ungroup_kv_heads(hf_model: nn.Module, spec: ArchSpec) -> None:
    """Widen every attention layer's key/value projections of `hf_model` (in place) to one head
    per query head; a model whose heads are not grouped is left as it is."""
    config = text_config(hf_model.config)
    n_heads = int(getattr(config, "num_attention_heads", 0) or 0)
    n_kv = int(spec.n_kv_heads(config) or n_heads)
    if n_kv == n_heads:
        return
    blocks: Any = hf_model.get_submodule(spec.blocks)
    layers = spec.internals_layers(len(blocks))  # also attention off the stream (Zamba)
    plans = []
    for layer in layers:  # check every layer before changing any (nothing half-applied)
        mods = qkv_modules(spec, blocks[layer]) if spec.qkv is not None else []
        if (
            spec.qkv_layout != "flat"
            or spec.kv_heads is not None
            or len(mods) != 3
            or not all(isinstance(m, nn.Linear) for m in mods)
        ):
            layout = spec.qkv_layout if spec.qkv is not None else "not described"
            raise ArgumentError(MSG_LAYOUT.format(family=spec.family, layout=layout, n_kv=n_kv))
        k_proj, v_proj = cast(nn.Linear, mods[1]), cast(nn.Linear, mods[2])
        plans.append((blocks[layer].get_submodule(spec.attn), k_proj, v_proj))
    group = n_heads // n_kv
    for attn, k_proj, v_proj in plans:
        for proj in (k_proj, v_proj):
            _repeat_heads(proj, n_kv, group)
        if hasattr(attn, "num_key_value_groups"):  # transformers' sdpa/eager expand by it
            attn.num_key_value_groups = 1
        for attr in ("num_key_value_heads", "num_kv_heads"):
            if isinstance(getattr(attn, attr, None), int):
                setattr(attn, attr, n_heads)
    config.num_key_value_heads = n_heads


def _repeat_heads(proj: nn.Linear, n_kv: int, group: int) -> None:
    """Rows of head h become rows of heads h*group ... h*group + group - 1."""
    with torch.no_grad():
        w = proj.weight
        rows = w.view(n_kv, -1, w.shape[1]).repeat_interleave(group, dim=0)
        proj.weight = nn.Parameter(rows.reshape(-1, w.shape[1]), requires_grad=w.requires_grad)
        if proj.bias is not None:
            b = proj.bias.view(n_kv, -1).repeat_interleave(group, dim=0).reshape(-1)
            proj.bias = nn.Parameter(b, requires_grad=proj.bias.requires_grad)
    proj.out_features = proj.weight.shape[0]
