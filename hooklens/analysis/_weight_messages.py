"""Why a weight in TransformerLens's shapes cannot be given: layers of different widths cannot
be stacked into one tensor (`Weights.W_Q` on Gemma 4), and a mixture of experts has no one
`W_in`/`W_out` (each expert has its own), and a layer that reuses an earlier layer's keys and
values has no W_K/W_V."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["MSG_EXPERTS", "MSG_REUSED_KV", "msg_uneven"]

MSG_EXPERTS = (
    "layer {layer}'s MLP is a mixture of experts: it has no one W_in, W_gate or W_out. Each "
    "expert's weights are in the block's {experts} module; its output on the tokens routed to "
    "it is blocks.{layer}.mlp.hook_expert_out."
)

MSG_REUSED_KV = (
    "layer {layer} reuses the keys and values layer {source} computed (KV sharing): it has no "
    "key or value projections, so it has no W_{x} (nor b_{x}, QK or OV, which pair them with "
    "this layer's queries and outputs). Layer {source}'s, model.weights.layer({source}).W_{x}, "
    "read layer {source}'s stream, not this layer's; the keys and values this layer reads are "
    "blocks.{layer}.attn.hook_rot_k and hook_v."
)


MSG_UNEVEN = """model.{name} stacks every layer's {name} into one tensor, but this model's layers
differ in {what}:
{widths}
so they cannot be stacked. Read one layer's with model.blocks[l].{part}.{name} (or
model.weights.layer(l).{name}), e.g. model.blocks[{last}].{part}.{name} {shape}."""


def msg_uneven(cfg: Any, name: str, parts: list[torch.Tensor]) -> str:
    """MSG_UNEVEN for stacked weight `name`, listing each group of layers and their widths."""
    mlp = name in ("W_in", "W_gate", "W_out", "b_in", "b_out")
    fields = ("d_mlp",) if mlp else ("n_kv_heads", "d_head", "d_head_qk")
    groups: dict[str, list[int]] = {}
    for i in range(len(parts)):
        layer = cfg.layer(i)
        words = ", ".join(f"{f} {getattr(layer, f)}" for f in fields)
        groups.setdefault(words, []).append(i)
    widths = "\n".join(
        f"  layer{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))}: {words}"
        for words, ls in groups.items()
    )
    what = "MLP width" if mlp else "head width or key/value heads"
    return MSG_UNEVEN.format(name=name, what=what, widths=widths, part="mlp" if mlp else "attn",
                             last=len(parts) - 1, shape=tuple(parts[-1].shape))  # fmt: skip
