"""Layers whose attention reuses the keys and values an earlier layer computed (Gemma 4's KV
sharing: its last `num_kv_shared_layers` layers have no key/value projections and read those
the last earlier layer of their kind handed on).

Which layer a reusing layer reads from: where the config gives each layer a kind
(`layer_types`), the last earlier layer of its kind that computes its own (transformers'
convention), a guess the check at load tests (a reusing layer's `hook_rot_k` and `hook_v` must
be its source's); else one forward of a few tokens, comparing the tensors each layer's
attention hands the attention function: the source's are the very same tensors.

What the points mean there (the README's "Layers that reuse keys and values"):
- the computing layer's `hook_k` and `hook_v` are read where it computes them, before they are
  handed on, so an edit there reaches every layer that reuses them, as in the model;
- a reusing layer has no `hook_k` (its keys are never there before the rotation); its
  `hook_v`, `hook_rot_k`, scores, pattern and z are what its own attention reads and makes, and
  an edit there changes that layer alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._attn_probe import run_probed
from ._layer_checks import has_module
from ._names import V_SOURCE
from ._run_order import attention_probe, layout_of
from ._spec_parts import Proj

__all__ = ["by_kind", "kv_sharing", "reused_kv", "value_source"]


def kv_sharing(
    model: nn.Module, blocks: Sequence[nn.Module], attending: Sequence[int], attn: str,
    k_source: Proj | None, text: Any,
) -> tuple[tuple[tuple[int, int], ...], Proj | None]:  # fmt: skip
    """(`reused_kv`, `value_source`) where some attending layer lacks block 0's key module
    `k_source` and reads an earlier layer's keys and values; ((), None) otherwise (also when
    those layers read keys from nowhere hooklens can tell: the template's check refuses them).
    `text`: the language model's config."""
    if k_source is None:
        return (), None
    lacking = [i for i in attending if not has_module(blocks[i], k_source.module)]
    if not lacking:
        return (), None
    reused = by_kind(text, attending, lacking) or reused_kv(model, blocks, attending, attn, lacking)
    attn_mod = blocks[attending[0]].get_submodule(attn) if reused else None
    v_source = value_source(model, attn_mod, attn) if attn_mod is not None else None
    return (reused, v_source) if reused and v_source is not None else ((), None)


def by_kind(
    text: Any, attending: Sequence[int], lacking: Sequence[int]
) -> tuple[tuple[int, int], ...] | None:
    """(layer, source) for each layer of `lacking`: the last earlier attending layer of its kind
    (the config's `layer_types`) that computes its own keys; None without kinds, or where a
    layer has no such source."""
    kinds = getattr(text, "layer_types", None)
    if not isinstance(kinds, list | tuple) or len(kinds) <= max(attending):
        return None
    computing = [j for j in attending if j not in lacking]
    found = []
    for layer in lacking:
        same = [j for j in computing if j < layer and kinds[j] == kinds[layer]]
        if not same:
            return None
        found.append((layer, same[-1]))
    return tuple(found)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape)


def reused_kv(
    model: nn.Module, blocks: Sequence[nn.Module], attending: Sequence[int], attn: str,
    lacking: Sequence[int],
) -> tuple[tuple[int, int], ...] | None:  # fmt: skip
    """(layer, layer it reads keys and values from) for each layer of `lacking` (attending
    layers without block 0's key modules), found in one forward of a few tokens; None when some
    layer of `lacking` is handed keys or values no earlier layer computed (then the template
    does not fit it)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layer_of = {id(blocks[i].get_submodule(attn)): i for i in attending}
    handed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def probe(module: nn.Module, query: Any, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        layer = layer_of.get(id(module))
        if layer is not None:
            handed.setdefault(layer, (key, value))
        return sdpa_attention_forward(module, query, key, value, *args, **kw)

    last = blocks[lacking[-1]].get_submodule(attn)  # no need to run what comes after it
    run_probed(model, blocks[attending[0]].get_submodule(attn), probe, stop_after=last)
    found = []
    for layer in lacking:
        kv = handed.get(layer)
        source = next(
            (
                j
                for j in attending
                if j < layer and j not in lacking and kv is not None and j in handed
                and _same(handed[j][0], kv[0]) and _same(handed[j][1], kv[1])
            ),
            None,
        )  # fmt: skip
        if source is None:
            return None
        found.append((layer, source))
    return tuple(found)


def value_source(model: nn.Module, attn_mod: nn.Module, attn: str) -> Proj | None:
    """Where a computing layer's values are read before they are handed on: the value norm's
    output, else the value projection's (block 0's attention `attn_mod`, at block path `attn`),
    with its layout; None when it has neither."""
    names = dict(attn_mod.named_children())
    name = next((n for n in V_SOURCE if n in names), None)
    if name is None:
        return None
    probe = attention_probe(model, attn_mod)
    out = probe["outputs"].get(name)
    layout = layout_of(tuple(out.shape) if out is not None else None, probe["n_pos"])
    if layout not in ("flat", "bphd", "bhpd"):
        return None
    return Proj(f"{attn}.{name}", layout)
