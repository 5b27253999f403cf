"""Run machinery: the hooks that write patches, `patch` (one full forward), and `Patcher`, which
runs batches of patch sets from the lowest patched layer and first patched position on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .._engine.partial import RecordedRun
from .._engine.points import head_axis_of
from ._inputs import single_prompt, str_tokens
from ._types import Patch, PatchLike, as_patch

#: hook name -> [(batch element, patch), ...]: what one forward pass writes at each point.
PatchGroups = dict[str, list[tuple[int, Patch]]]


def group_patches(patch_sets: Sequence[Sequence[Patch]]) -> PatchGroups:
    """Patch set ``i`` goes to batch element ``i``; grouped by the hook they write."""
    groups: PatchGroups = {}
    for element, patches in enumerate(patch_sets):
        for one in patches:
            groups.setdefault(one.name, []).append((element, one))
    return groups


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
        if patch.pos is None:
            target[head] = src[head][..., pos_offset:, :]
        else:
            target[head, patch.pos - pos_offset] = src[head, patch.pos]
    elif patch.pos is None:
        target[:, head] = src[pos_offset:, head]
    else:
        target[patch.pos - pos_offset, head] = src[patch.pos, head]


def patch_hooks(groups: PatchGroups, source: Any,
                pos_offset: int) -> list[tuple[str, Callable[..., Any]]]:  # fmt: skip
    """One hook per patched point, writing every (batch element, patch) of that point."""
    for name in groups:
        if name not in source:
            raise KeyError(
                f"the source cache has no {name!r}: cache it with "
                f"run_with_cache(source, names_filter=[{name!r}, ...])"
            )
    hooks = []
    for name, writes in groups.items():

        def hook(act: torch.Tensor, hook: Any, writes: Any = writes, name: str = name,
                 axis: int | None = head_axis_of(name)) -> torch.Tensor:  # fmt: skip
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
    tokens = single_prompt(model, base)
    groups = group_patches([[as_patch(item) for item in patches]])
    return model.run_with_hooks(tokens, fwd_hooks=patch_hooks(groups, source_cache, 0))


def start_of(model: Any, patches: Sequence[Patch]) -> tuple[int, int] | None:
    """(layer, position) from which a run with ``patches`` can differ from the unpatched run;
    None when a patch is outside the blocks (e.g. ``hook_embed``)."""
    layers = [model.hook_dict[p.name].layer() for p in patches]
    if any(layer is None for layer in layers):
        return None
    # A patch at position p changes nothing before p (causal attention); without a position
    # it changes every position.
    return min(layers), min(0 if p.pos is None else p.pos for p in patches)


class Patcher:
    """Applies patch sets to one base prompt, doing only the work a patch set can change.

    ``Patcher(model, base, source_cache)(patches)`` returns the same logits (1, pos, d_vocab) as
    ``patch(model, base, source_cache, patches)``, but runs from the lowest patched layer and
    the first patched position on, reusing the base run's residual stream and keys/values.
    Built once per prompt pair (one forward pass to prepare), it makes clicks cheap; sweeps run
    their batches through ``run`` too.
    """

    def __init__(self, model: Any, base: Any, source_cache: Any) -> None:
        self.model = model
        self.source_cache = source_cache
        with model.owner.hold():
            self.base = RecordedRun(model, single_prompt(model, base))

    @property
    def base_strings(self) -> list[str]:
        """The base prompt's tokens as strings (the column labels of per-position sweeps)."""
        return str_tokens(self.model, self.base.tokens)

    def __call__(self, patches: Iterable[PatchLike]) -> torch.Tensor:
        return self.run([[as_patch(item) for item in patches]])

    def run(self, patch_sets: Sequence[Sequence[Patch]], token_ids: list[int] | None = None,
            last_only: bool = False) -> torch.Tensor:  # fmt: skip
        """Logits with patch set ``i`` applied to batch element ``i``: (n, pos, d_vocab), or
        (n, 1, ...) with ``last_only``, or (..., len(token_ids)) of those tokens only."""
        model, base, n = self.model, self.base, len(patch_sets)
        starts = [start_of(model, list(s)) for s in patch_sets if s]
        if not starts:
            logits = base.logits.expand(n, -1, -1)
            logits = logits[:, -1:] if last_only else logits
            return logits if token_ids is None else logits[..., token_ids]
        known = [s for s in starts if s is not None]
        skip = base.skips and len(known) == len(starts)
        layer = min(s[0] for s in known) if skip else 0
        pos0 = min(s[1] for s in known) if skip else 0
        groups = group_patches(patch_sets)
        with torch.no_grad(), model.hooks(patch_hooks(groups, self.source_cache, pos0)):
            if not skip:  # a model-level patch, or a family partial runs cannot re-target
                logits = model.forward(base.tokens.expand(n, -1))
                logits = logits[:, -1:] if last_only else logits
                return logits if token_ids is None else logits[..., token_ids]
            resid = base.resid_pre(layer)[:, pos0:].expand(n, -1, -1)
            normed = base.run_blocks(resid, layer, pos0, last_only=last_only)
        logits = base.logits_from(normed, token_ids)
        if not last_only and pos0 > 0:
            # Positions before pos0 are unchanged by every patch in this batch.
            prefix = base.logits[:, :pos0]
            prefix = prefix if token_ids is None else prefix[..., token_ids]
            prefix = prefix.to(logits.device, logits.dtype).expand(n, -1, -1)
            logits = torch.cat([prefix, logits], dim=1)
        return logits
