"""Render the family x optional-hook-point table of README.md from the adapters and the point table.

`python -m hooklens.architectures._table` prints it; a test checks README.md contains it.
"""

from __future__ import annotations

from typing import Any

from .._engine.points import POINTS
from . import ADAPTERS

#: Config values that decide config-dependent features (GPT-NeoX's residual) for the table.
_DEFAULT_CONFIG: dict[str, Any] = {"use_parallel_residual": True}


class _Config:
    def __getattr__(self, name: str) -> Any:
        return _DEFAULT_CONFIG.get(name, False)


def optional_points_table() -> str:
    """A Markdown table: one row per family, one column per optional hook point."""
    optional = [p for p in POINTS if p.requires is not None]
    head = "| family | HF class | " + " | ".join(f"`{p.suffix}`" for p in optional) + " |"
    rule = "|---|---|" + "---|" * len(optional)
    rows = [head, rule]
    for spec in ADAPTERS:
        feats = spec.features(_Config())
        marks = [
            _PER_CONFIG.get(p.requires or "", "yes") if p.requires in feats else "—"
            for p in optional
        ]
        note = " (parallel by default)" if isinstance(spec.parallel_residual, str) else ""
        rows.append(f"| {spec.family}{note} | `{spec.hf_classes[0]}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)


def points_table() -> str:
    """A Markdown table of every hook point: name, shape, meaning, who has it."""
    rows = ["| hook point | shape | meaning | exists when |", "|---|---|---|---|"]
    for p in POINTS:
        name = f"blocks.{{l}}.{p.suffix}" if p.scope == "block" else p.suffix
        shape = "(" + ", ".join(p.shape) + ")"
        when = _WHEN[p.requires] if p.requires else "always"
        if p.part is not None:  # a hybrid's layers differ in their parts
            when = _PART[p.part] + ("" if when == "always" else f", and {when}")
        if p.on_demand:
            when += "; on demand (see below)"
        rows.append(f"| `{name}` | {shape} | {p.meaning} | {when} |")
    return "\n".join(rows)


_WHEN = {
    "learned_pos": "learned positions",
    "rotary": "rotary positions",
    "sequential": "sequential residual",
    "gated_mlp": "gated MLP",
    "ln1": "a norm before attention (post-LN blocks: after it)",
    "ln2": "a separate MLP norm",
    "mha": "as many key/value heads as query heads (no grouped-query attention)",
    "dense_mlp": "a dense MLP",
    "moe": "a mixture-of-experts MLP",
    "sinks": "a learned attention sink per head (GPT-OSS, Flint, Granite SWA)",
    "token_types": "token-type embeddings (BERT)",
    "post_ln": "post-LN blocks (BERT, BART)",
    "final_norm": "a final norm (not BART's post-LN decoders: the last block's ln2 is the last)",
    "gated_attn": "a gate on attention's output (o_proj reads z * gate)",
    "per_layer_input": "a per-layer embedding branch in each block (Gemma 3n / 4)",
    "adapter": "a language adapter after the MLP (X-MOD)",
    "rounded_kv": "an attention that rounds its keys and values before attending (Kolibri 1.1's "
    "sparse layers)",
}
#: which layers have a point of each part of a block
_PART = {
    "attention": "layers that attend",
    "mixer": "layers with another mixer (state-space, linear attention, convolution, recurrent)",
    "mlp": "layers with an MLP",
}
#: marks for features that a family's config decides, not its adapter
_PER_CONFIG = {"mha": "without GQA"}


if __name__ == "__main__":
    print(points_table())
    print()
    print(optional_points_table())
