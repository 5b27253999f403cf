"""Run machinery: patch hooks, the reused base run, `patch`, `Patcher`, one batch of cells."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from .._engine.points import head_axis_of
from .._engine.tokens import one_prompt
from ..metrics import Metric
from ._inputs import check_metric_value
from ._plan import _Cell
from ._types import Patch, PatchLike, as_patch


def _write(act: torch.Tensor, element: int, patch: Patch, src: torch.Tensor,
           pos_offset: int, head_axis: int | None) -> None:  # fmt: skip
    """In place: ``act[element]`` takes ``src`` (the source run's activation, batch 1) where
    ``patch`` says. ``act`` covers positions ``pos_offset..``; ``src`` all positions."""
    src = src[0].to(act.device, act.dtype)
    target = act[element]
    if head_axis is None:  # (pos, ...) residual-like activation
        if patch.pos is None:
            target[...] = src[pos_offset:]
        else:
            target[patch.pos - pos_offset] = src[patch.pos]
        return
    # Per-head activations: (pos, heads, d_head), or (heads, q, k) for patterns.
    axis = head_axis - 1
    head = slice(None) if patch.head is None else patch.head
    if axis == 0:  # pattern: (heads, q, k)
        q = slice(None) if patch.pos is None else patch.pos
        q_src = src[head] if patch.pos is None else src[head, q]
        if patch.pos is None:
            target[head] = q_src[..., pos_offset:, :]
        else:
            target[head, patch.pos - pos_offset] = q_src
    elif patch.pos is None:
        target[:, head] = src[pos_offset:, head]
    else:
        target[patch.pos - pos_offset, head] = src[patch.pos, head]


def _patch_hooks(model: Any, groups: dict[str, list[tuple[int, Patch]]],
                 source: Any, pos_offset: int) -> list[tuple[str, Callable[..., Any]]]:  # fmt: skip
    """One hook per patched point, writing every (batch element, patch) of that point."""
    hooks = []
    for name, writes in groups.items():
        axis = head_axis_of(name)

        def hook(act: torch.Tensor, hook: Any, writes: Any = writes, name: str = name,
                 axis: int | None = axis) -> torch.Tensor:  # fmt: skip
            act = act.clone()
            for element, one in writes:
                _write(act, element, one, source[name], pos_offset, axis)
            return act

        hooks.append((name, hook))
    return hooks


def patch(model: Any, base: Any, source_cache: Any, patches: Iterable[PatchLike]) -> torch.Tensor:
    """Run ``base`` (text or ids (1, pos)) with ``patches`` from ``source_cache`` applied together.

    ``source_cache`` is an ``ActivationCache`` of the source run (with its batch dimension, as
    ``run_with_cache`` returns it) holding every patched point. Denoising patches a clean cache
    into the corrupted prompt; noising, a corrupted cache into the clean prompt.
    Returns logits (1, pos, d_vocab).
    """
    tokens = one_prompt(model, base)
    groups: dict[str, list[tuple[int, Patch]]] = {}
    for item in patches:
        one = as_patch(item)
        if one.name not in source_cache:
            raise KeyError(
                f"the source cache has no {one.name!r}: cache it with "
                f"run_with_cache(source, names_filter=[{one.name!r}, ...])"
            )
        groups.setdefault(one.name, []).append((0, one))
    return model.run_with_hooks(tokens, fwd_hooks=_patch_hooks(model, groups, source_cache, 0))


class _BaseRun:
    """What every batch reuses from the run being patched into: the residual stream entering
    each layer, the logits, and the keys/values of every layer (of which a batch starting at
    position ``p`` reuses positions ``< p``: with causal attention they equal the prefix's)."""

    def __init__(self, model: Any, tokens: torch.Tensor) -> None:
        self.model = model
        self.tokens = tokens
        self._resid_pre: dict[int, torch.Tensor] = {}

        def keep(resid: torch.Tensor, hook: Any) -> None:
            self._resid_pre[hook.layer()] = resid.detach()

        names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
        # One forward pass gives the logits, the residual stream and the keys/values.
        with torch.no_grad(), model.hooks([(name, keep) for name in names]):
            self.logits, kv = model._forward_with_kv(tokens)
        # (keys, values) per layer, each (1, n_kv_heads, pos, d_head).
        self._keys_values = [(layer.keys, layer.values) for layer in kv.layers]

    def resid_pre(self, layer: int) -> torch.Tensor:
        """(1, pos, d_model) entering block ``layer``."""
        return self._resid_pre[layer]

    def kv_for(self, prefix_len: int, batch: int) -> Any:
        """A fresh key/value cache of the first ``prefix_len`` positions for ``batch`` elements."""
        from transformers import DynamicCache

        pairs = [
            (keys[:, :, :prefix_len].expand(batch, -1, -1, -1),
             values[:, :, :prefix_len].expand(batch, -1, -1, -1))
            for keys, values in self._keys_values
        ]  # fmt: skip
        return DynamicCache(ddp_cache_data=pairs, config=self.model.hf_model.config)


class Patcher:
    """Applies patch sets to one base prompt, doing only the work a patch set can change.

    ``Patcher(model, base, source_cache)(patches)`` returns the same logits (1, pos, d_vocab) as
    ``patch(model, base, source_cache, patches)``, but runs from the lowest patched layer and
    the first patched position on, reusing the base run's residual stream and keys/values.
    Built once per prompt pair (one forward pass to prepare), it makes clicks cheap.
    """

    def __init__(self, model: Any, base: Any, source_cache: Any) -> None:
        self.model = model
        self.source_cache = source_cache
        self.base = _BaseRun(model, one_prompt(model, base))

    def __call__(self, patches: Iterable[PatchLike]) -> torch.Tensor:
        chosen = [as_patch(item) for item in patches]
        layers: list[int | None] = [self.model.hook_dict[p.name].layer() for p in chosen]
        block_layers = [layer for layer in layers if layer is not None]
        if not chosen or len(block_layers) < len(layers):
            # No patch, or a model-level point (e.g. hook_embed): no block to start from.
            return patch(self.model, self.base.tokens, self.source_cache, chosen)
        layer0 = min(block_layers)
        pos0 = min(0 if p.pos is None or p.head is not None else p.pos for p in chosen)
        for one in chosen:
            if one.name not in self.source_cache:
                raise KeyError(f"the source cache has no {one.name!r}")
        groups: dict[str, list[tuple[int, Patch]]] = {}
        for one in chosen:
            groups.setdefault(one.name, []).append((0, one))
        kv = self.base.kv_for(pos0, 1) if pos0 > 0 else None
        resid = self.base.resid_pre(layer0)[:, pos0:]
        with (
            torch.no_grad(),
            self.model.hooks(_patch_hooks(self.model, groups, self.source_cache, pos0)),
        ):
            logits = self.model._run_from_layer(resid, layer0, kv_cache=kv)
        prefix = self.base.logits[:, :pos0].to(logits.device, logits.dtype)
        return torch.cat([prefix, logits], dim=1)


def _run_tile(model: Any, tile: list[_Cell], base: _BaseRun, source: Any,
              metric: Metric, only_last: bool) -> torch.Tensor:  # fmt: skip
    """Metric values (len(tile),) with each cell's patch applied to its own batch element."""
    layer0 = min(c.layer for c in tile)
    pos0 = min(c.start_pos for c in tile)
    n = len(tile)
    resid = base.resid_pre(layer0)[:, pos0:].expand(n, -1, -1)
    groups: dict[str, list[tuple[int, Patch]]] = {}
    for element, cell in enumerate(tile):
        groups.setdefault(cell.patch.name, []).append((element, cell.patch))
    kv = base.kv_for(pos0, n) if pos0 > 0 else None
    with model.hooks(_patch_hooks(model, groups, source, pos0)):
        logits = model._run_from_layer(
            resid, layer0, kv_cache=kv, logits_to_keep=1 if only_last else 0
        )
    if not only_last and pos0 > 0:
        # Positions before pos0 are unchanged by every patch in this tile.
        prefix = base.logits[:, :pos0].to(logits.device, logits.dtype).expand(n, -1, -1)
        logits = torch.cat([prefix, logits], dim=1)
    return check_metric_value(metric, logits)


@contextlib.contextmanager
def _unembed_only(model: Any, token_ids: list[int]) -> Iterator[None]:
    """While open, the model's unembedding computes only the logits of ``token_ids``, in that
    order: (..., d_model) -> (..., len(token_ids)). The full module is restored on exit."""
    parent_path, _, attribute = model.spec.unembed.rpartition(".")
    parent = model.hf_model.get_submodule(parent_path)
    full = getattr(parent, attribute)
    ids = torch.tensor(token_ids, device=full.weight.device)
    rows = torch.nn.Linear(full.in_features, len(token_ids), bias=full.bias is not None,
                           device=full.weight.device, dtype=full.weight.dtype)  # fmt: skip
    with torch.no_grad():
        rows.weight.copy_(full.weight[ids])
        if full.bias is not None:
            rows.bias.copy_(full.bias[ids])
    setattr(parent, attribute, rows)
    try:
        yield
    finally:
        setattr(parent, attribute, full)
