"""Layers a text-only forward skips: their output is their input.

A vision-language model's language tower may hold layers that run only on image features
(Mllama's cross-attention layers, listed in its text config's `cross_attention_layers`); with
text alone its forward skips them. Such a layer keeps its place and number, and its points are
the stream's alone: `hook_resid_pre` and `hook_resid_post`, the same tensor, fired (in that
order) where the stream goes next (the next layer that runs, or the final norm). Any other
point of it raises, saying why (`LayerLayout("skipped")`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._names import TEXT_ONLY_SKIPS
from ._spec_parts import LayerLayout

MSG_SKIPPED = (
    "a text-only forward skips it: it is one of the layers the config lists in {attr}, which "
    "run only on image features"
)


def skipped_layers(text: Any, n_layers: int) -> dict[int, str]:
    """Layer index -> why a text-only forward skips it, from the text config `text`."""
    for attr in TEXT_ONLY_SKIPS:
        listed = getattr(text, attr, None)
        if isinstance(listed, (list, tuple)):
            why = MSG_SKIPPED.format(attr=attr)
            return {i: why for i in listed if isinstance(i, int) and 0 <= i < n_layers}
    return {}


def with_skipped(
    layers: tuple[LayerLayout, ...] | None,
    blocks: list[nn.Module],
    skipped: dict[int, str],
    attn: str | None,
) -> tuple[LayerLayout, ...] | None:
    """The layouts of every block: `layers` (those of the blocks that run, None where each
    attends with an MLP) with a skipped layout at each index of `skipped`."""
    if not skipped:
        return layers
    ran = [b for i, b in enumerate(blocks) if i not in skipped]
    if layers is None:
        if attn is None:
            return None
        cls = [type(b.get_submodule(attn)).__name__ for b in ran]
        layers = tuple(LayerLayout("attention", attn, c) for c in cls)
    found = iter(layers)
    return tuple(
        LayerLayout("skipped", "", type(b).__name__, mlp=False, opaque=skipped[i])
        if i in skipped
        else next(found)
        for i, b in enumerate(blocks)
    )
