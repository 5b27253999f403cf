"""One row of the hook-point table (`points.py`): a point's name, shape, meaning, and when a
family has it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .point_messages import NO_PART

Scope = Literal["model", "block", "final"]
Feature = Literal[
    "learned_pos", "rotary", "sequential", "gated_mlp", "ln1", "ln2", "dense_mlp", "moe", "mha",
    "sinks", "attention", "mixer", "mlp", "post_ln", "token_types", "gated_attn",
    "per_layer_input", "final_norm", "adapter", "whole", "skipped",
]  # fmt: skip
#: The part of a block a point belongs to; a layer without that part (a state-space mixer layer
#: has no attention, a Mamba block no MLP) has none of its points.
Part = Literal["attention", "mixer", "mlp"]


@dataclass(frozen=True)
class PointSpec:
    """One row of the table.

    `suffix` is the name inside its scope (`blocks.{l}.` is prepended for block points).
    `requires` names the family feature without which the point cannot exist, and `missing`
    explains why and what to use instead (formatted with `family` and `layer`). An `on_demand`
    point costs extra work whenever it is hooked (it is computed, not read), so, as in
    TransformerLens where such points need a config flag, caching every point
    (`names_filter=None`) leaves it out; name it (or match it with a predicate) to get it.
    """

    suffix: str
    scope: Scope
    shape: tuple[str, ...]
    meaning: str
    requires: Feature | None = None
    missing: str = ""
    on_demand: bool = False
    part: Part | None = None

    def lacking(self, features: frozenset[str]) -> str | None:
        """Why a layer (or model) with `features` has no such point (a template, formatted with
        `family`, `layer`, `mixer` and `attn_layers`), or None when it has it."""
        for kept in ("whole", "skipped"):  # a block kept whole, or skipped: the stream alone
            if kept in features and self.suffix not in ("hook_resid_pre", "hook_resid_post"):
                return NO_PART[kept]
        if self.part is not None and self.part not in features:
            return NO_PART[self.part]
        if self.requires is not None and self.requires not in features:
            return self.missing
        return None

    @property
    def head_axis(self) -> int | None:
        """The axis of the head dimension in `shape` (with batch), None for points without one."""
        for axis, symbol in enumerate(self.shape):
            if symbol in ("n_heads", "n_kv_heads"):
                return axis
        return None
