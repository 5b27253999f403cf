"""Where a model's block list can be: not inside another tower of a multimodal model.

A captioning or vision-language model holds a vision (or audio) encoder beside its language
model, and that encoder has its own list of layers, sometimes as many as the language model's.
Such a tower is a nested model with its own config (the vision config); the language model's
blocks are elsewhere (in the model itself, or in a nested model whose config is the text config).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._spec import text_config


def _other_towers(model: nn.Module) -> list[str]:
    """Prefixes (`name.`) of nested modules whose config is neither the model's nor its text
    model's."""
    own: Any = getattr(model, "config", None)
    mine = {id(own), id(text_config(own))} if own is not None else set()
    towers = []
    for name, module in model.named_modules():
        config = getattr(module, "config", None)
        if name and hasattr(config, "to_dict") and id(config) not in mine:
            towers.append(f"{name}.")
    return towers


def block_list_candidates(model: nn.Module, embed: str) -> list[tuple[str, nn.Module]]:
    """The model's modules that may hold its blocks, outside other towers, those next to the
    token embedding (`embed`, a path) first."""
    near = embed.rpartition(".")[0]
    towers = _other_towers(model)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if not any(name.startswith(t) for t in towers)
    ]
    return sorted(candidates, key=lambda nm: not nm[0].startswith(f"{near}."))
