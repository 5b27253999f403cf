"""Run machinery: the hooks that write patches, `patch` (one full forward), and `Patcher`, which
runs batches of patch sets from the lowest patched layer and first patched position on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch

from .._engine.kwargs import checked
from .._engine.partial import RecordedRun
from .._engine.points import head_axis_of
from .._engine.tokens import token_strings
from ._inputs import prompt_batch
from ._types import Patch, PatchLike, as_patch

#: hook name -> [(patch set index, patch), ...]: what one forward pass writes at each point.
PatchGroups = dict[str, list[tuple[int, Patch]]]


def group_patches(patch_sets: Sequence[Sequence[Patch]]) -> PatchGroups:
    """Patch set ``i`` goes to the ``i``-th copy of the prompt batch; grouped by hook."""
    groups: PatchGroups = {}
    for index, patches in enumerate(patch_sets):
        for one in patches:
            groups.setdefault(one.name, []).append((index, one))
    return groups


def _write(target: torch.Tensor, patch: Patch, src: torch.Tensor, pos_offset: int,
           head_axis: int | None) -> None:  # fmt: skip
    """In place: ``target`` (prompts, ...) takes ``src`` (the source run's activation, same
    prompts or one) where ``patch`` says. ``target`` covers positions ``pos_offset..``, ``src``
    all of them."""
    src = src.to(target.device, target.dtype)
    if head_axis is None:  # (batch, pos, ...) residual-like activation
        if patch.pos is None:
            target[:] = src[:, pos_offset:]
        else:
            target[:, patch.pos - pos_offset] = src[:, patch.pos]
        return
    head = slice(None) if patch.head is None else patch.head
    if head_axis == 1:  # pattern-like: (batch, heads, q, k)
        key = slice(None) if patch.src_pos is None else patch.src_pos
        if patch.pos is None:
            target[:, head, :, key] = src[:, head, pos_offset:, key]
        else:
            target[:, head, patch.pos - pos_offset, key] = src[:, head, patch.pos, key]
    elif patch.pos is None:  # (batch, pos, heads, d_head)
        target[:, :, head] = src[:, pos_offset:, head]
    else:
        target[:, patch.pos - pos_offset, head] = src[:, patch.pos, head]


def patch_hooks(groups: PatchGroups, source: Any, prompts: int,
                pos_offset: int) -> list[tuple[str, Callable[..., Any]]]:  # fmt: skip
    """One hook per patched point, writing every patch of that point: patch set ``i`` into
    batch elements ``i * prompts .. (i + 1) * prompts - 1``."""
    for name in groups:
        if name not in source:
            raise KeyError(
                f"the source cache has no {name!r}: cache it with "
                f"run_with_cache(source, names_filter=[{name!r}, ...])"
            )
        if source[name].shape[0] not in (1, prompts):
            raise ValueError(
                f"the source cache holds {source[name].shape[0]} prompts at {name!r} but the "
                f"run patched into has {prompts}: cache the same number of prompts (with their "
                "batch dimension, i.e. not remove_batch_dim=True)"
            )
        if head_axis_of(name) != 1 and any(one.src_pos is not None for _, one in groups[name]):
            raise ValueError(
                f"a patch of {name!r} names src_pos: only attention patterns "
                "(attn.hook_pattern, attn.hook_attn_scores) have a key position"
            )
    hooks = []
    for name, writes in groups.items():

        def hook(act: torch.Tensor, hook: Any, writes: Any = writes, name: str = name,
                 axis: int | None = head_axis_of(name)) -> torch.Tensor:  # fmt: skip
            act = act.clone()
            for index, one in writes:
                target = act[index * prompts : (index + 1) * prompts]
                _write(target, one, source[name], pos_offset, axis)
            return act

        hooks.append((name, hook))
    return hooks


@checked()
def patch(model: Any, base: Any, source_cache: Any, patches: Iterable[PatchLike]) -> torch.Tensor:
    """Run ``base`` (text or ids (1, pos)) with ``patches`` from ``source_cache`` applied together.

    ``source_cache`` is an ``ActivationCache`` of the source run (with its batch dimension, as
    ``run_with_cache`` returns it) holding every patched point. Denoising patches a clean cache
    into the corrupted prompt; noising, a corrupted cache into the clean prompt. ``base`` may be
    a batch of prompts (batch, pos) patched from a cache of as many.
    Returns logits (batch, pos, d_vocab).
    """
    tokens = prompt_batch(model, base)
    groups = group_patches([[as_patch(item) for item in patches]])
    hooks = patch_hooks(groups, source_cache, int(tokens.shape[0]), 0)
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


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

    @checked()
    def __init__(self, model: Any, base: Any, source_cache: Any) -> None:
        self.model = model
        self.source_cache = source_cache
        with model.owner.hold():
            self._base = RecordedRun(model, prompt_batch(model, base))
            self._moves = model.moves
        self._base_values: dict[str, torch.Tensor] = {}  # base run's activations, by hook name
        self._first_change: dict[Patch, int | None] = {}  # see `first_changes`

    @property
    def base(self) -> RecordedRun:
        """The recorded base run. After ``model.to(...)`` its block arguments, keys and values
        are on the old device or dtype, so it is recorded again first (the source cache is
        converted as each patch is written)."""
        if self._moves != self.model.moves:
            with self.model.owner.hold():
                skips = self._base.skips
                self._base = RecordedRun(self.model, self._base.tokens.to(self.model.cfg.device))
                self._base.skips = self._base.skips and skips
                self._moves = self.model.moves
                self._base_values, self._first_change = {}, {}
        return self._base

    def first_changes(self, patches: Sequence[Patch],
                      on_wait: Callable[[], None] | None = None) -> list[int | None]:  # fmt: skip
        """For each patch, the first position at which it writes a value other than the base
        run's there (bit for bit), or None where it writes the base run's values everywhere:
        its patched run is the base run, so it needs no pass. A patch of every position
        (a head's ``z``) whose source and base values agree before the prompts' first
        differing token changes nothing before it, so `run` starts there.

        Reads the base run's activations at the patches' points with one forward pass, once
        per point (``on_wait()`` is called if another call holds the model)."""
        base = self.base
        names = {p.name for p in patches if p.name in self.source_cache}
        missing = sorted(names - set(self._base_values))
        if missing:
            with self.model.owner.hold(on_wait), torch.no_grad():
                _, cache = self.model.run_with_cache(base.tokens, names_filter=missing)
            self._base_values.update({name: cache[name] for name in missing})
        firsts: list[int | None] = []
        for one in patches:
            if one.name not in names:
                firsts.append(0)  # the patched run says what is missing
                continue
            if one not in self._first_change:
                values = self._base_values[one.name]
                written = values.clone()
                axis = head_axis_of(one.name)
                _write(written, one, self.source_cache[one.name], 0, axis)
                pos_axis = 2 if axis == 1 else 1  # pattern-like: (batch, heads, query, key)
                changed = written.ne(values).movedim(pos_axis, 0).flatten(1).any(1)
                where = changed.nonzero()
                self._first_change[one] = int(where[0, 0]) if len(where) else None
            firsts.append(self._first_change[one])
        return firsts

    def _start(self, patches: Sequence[Patch]) -> tuple[int, int] | None:
        """`start_of` a patch set, later where `first_changes` found its first change."""
        start = start_of(self.model, patches)
        if start is None:
            return None
        known = [self._first_change.get(p) for p in patches]
        if all(first is not None for first in known):
            return start[0], min(cast(int, first) for first in known)
        return start

    @property
    def base_strings(self) -> list[str]:
        """The (first) base prompt's tokens as strings (a per-position sweep's column labels)."""
        return token_strings(self.model, self.base.tokens[:1])

    def __call__(self, patches: Iterable[PatchLike]) -> torch.Tensor:
        return self.run([[as_patch(item) for item in patches]])

    @checked()
    def run(self, patch_sets: Sequence[Sequence[Patch]], token_ids: list[int] | None = None,
            last_only: bool = False) -> torch.Tensor:  # fmt: skip
        """Logits with patch set ``i`` applied to the ``i``-th copy of the base prompts
        (elements ``i * prompts ..``): (n * prompts, pos, d_vocab), or (..., 1, ...) with
        ``last_only``, or (..., len(token_ids)) of those tokens only."""
        model, base = self.model, self.base
        starts = [self._start(list(s)) if s else None for s in patch_sets]
        if not any(patch_sets):
            logits = base.logits.repeat(len(patch_sets), 1, 1)
            logits = logits[:, -1:] if last_only else logits
            return logits if token_ids is None else logits[..., token_ids]
        known = [s for s in starts if s is not None]
        skip = base.skips and len(known) == sum(1 for s in patch_sets if s)
        layer = min(s[0] for s in known) if skip else 0
        pos0 = min(s[1] for s in known) if skip else 0
        if not skip:  # a model-level patch, or a family partial runs cannot re-target
            hooks = patch_hooks(group_patches(patch_sets), self.source_cache, base.batch, 0)
            with torch.no_grad(), model.hooks(hooks):
                logits = model.forward(base.tokens.repeat(len(patch_sets), 1))
            logits = logits[:, -1:] if last_only else logits
            return logits if token_ids is None else logits[..., token_ids]
        # Each patch set runs from its own lowest layer: sets join the batch at that block,
        # in order of layer (and come back in the caller's order).
        entry = [layer if s is None else s[0] for s in starts]  # (None: an empty set)
        order = sorted(range(len(patch_sets)), key=entry.__getitem__)
        groups = group_patches([patch_sets[i] for i in order])
        hooks = patch_hooks(groups, self.source_cache, base.batch, pos0)
        joining = Counter(entry)
        joins = {j: base.resid_pre(j)[:, pos0:].repeat(n, 1, 1) for j, n in joining.items()}
        resid = joins.pop(layer)
        with torch.no_grad(), model.hooks(hooks):
            normed = base.run_blocks(resid, layer, pos0, last_only=last_only, joins=joins)
            logits = base.logits_from(normed, token_ids)
        if order != sorted(order):
            rows = torch.tensor(order).repeat_interleave(base.batch) * base.batch
            rows += torch.arange(base.batch).repeat(len(order))
            logits = torch.empty_like(logits).index_copy_(0, rows.to(logits.device), logits)
        if not last_only and pos0 > 0:
            # Positions before pos0 are unchanged by every patch in this batch.
            prefix = base.logits[:, :pos0]
            prefix = prefix if token_ids is None else prefix[..., token_ids]
            prefix = prefix.to(logits.device, logits.dtype).repeat(len(patch_sets), 1, 1)
            logits = torch.cat([prefix, logits], dim=1)
        return logits
