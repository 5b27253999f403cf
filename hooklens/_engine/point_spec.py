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
    "per_layer_input", "final_norm", "adapter", "whole", "attn_inside", "skipped", "reused_kv",
    "streams", "rounded_kv",
]  # fmt: skip
#: The part of a block a point belongs to; a layer without that part (a state-space mixer layer
#: has no attention, a Mamba block no MLP) has none of its points.
Part = Literal["attention", "mixer", "mlp"]
#: The points of a block kept whole: what it reads and writes.
STREAM = ("hook_resid_pre", "hook_resid_post")
#: The points that are the residual stream itself, which a model with several parallel streams
#: (feature "streams") has none of.
RESID = (*STREAM, "hook_resid_mid", "hook_normalized_resid_post")
#: Attention's points computed inside the attention function (and the q/k projections): what a
#: block kept whole that calls attention off the stream has besides the stream's
#: (`LayerLayout.attends_inside`).
INTERNALS = (
    "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
)  # fmt: skip


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
        if "skipped" in features and self.suffix not in STREAM:  # not run: the stream alone
            return NO_PART["skipped"]
        if "streams" in features and self.suffix in RESID:  # no one d_model-wide stream
            return NO_PART["streams"]
        if "reused_kv" in features and self.suffix == "attn.hook_k":  # an earlier layer's
            return NO_PART["reused_kv"]
        if {"reused_kv", "rounded_kv"} <= features and self.suffix == "attn.hook_v":
            return NO_PART["reused_rounded_v"]  # before the rounding: an earlier layer's
        inside = "attn_inside" in features and self.suffix in INTERNALS
        if "whole" in features and self.suffix not in STREAM and not inside:
            # a block kept whole has the stream's points alone (and attention's internals
            # where it calls attention off the stream)
            return NO_PART["inside" if "attn_inside" in features else "whole"]
        if self.part is not None and self.part not in features and not inside:
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
