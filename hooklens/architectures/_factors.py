"""Factors a block applies to one of its parts outside that part's module (`ArchSpec.factors`),
and those the model applies to the token embedding outside its module (`embed_factor`,
`embed_affine`).

Falcon-H1 (µP) multiplies attention's input and output, its keys, its mixer's output and its
MLP's gate projection by numbers it holds as attributes of the block, the attention module and
the MLP. `block_factors` finds them by their names (`FACTORS` in `_names.py`); the engine puts
each into the point that sits where it applies, so the points hold what the model computes.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from ._names import EMBED_AFFINE, EMBED_SCALE_ATTR, FACTORS
from ._spec import ArchSpec, FactorRole, text_config

__all__ = ["block_factors", "embed_affine", "embed_factor"]


def scale_of(config: Any, attr: str | None) -> float:
    """The factor a config attribute holds (1.0 for no attribute, or an unset one)."""
    value = getattr(text_config(config), attr, None) if attr else None
    return float(value) if isinstance(value, int | float) else 1.0


def module_scale(model: Any, path: str | None) -> float:
    """The embedding factor a module of `model` holds (1.0 for no module): its attribute named
    in `EMBED_SCALE_ATTR` (Marian's decoder's `embed_scale`, RecurrentGemma's `normalizer`)."""
    owner = model.get_submodule(path) if path is not None else None
    attr = next((a for a in EMBED_SCALE_ATTR if hasattr(owner, a)), None)
    value = getattr(owner, attr) if attr is not None else None
    return float(value) if isinstance(value, int | float | torch.Tensor) else 1.0


def embed_factor(model: Any, spec: ArchSpec) -> float:
    """What multiplies the token embedding module's output outside it, as `hook_embed` holds
    it: a config attribute's value (Granite), a module's attribute (Marian, RecurrentGemma),
    and the square root of a config attribute (CTRL)."""
    root = scale_of(model.config, spec.embed_scale_sqrt) ** 0.5
    held = module_scale(model, spec.embed_scale_at)
    return scale_of(model.config, spec.embed_scale) * held * root


def embed_affine(model: Any, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(shift, scale), each (d_model,): parameters of the blocks' parent (`EMBED_AFFINE`) by
    which the model maps the token embedding to `(embedding + shift) * scale` before block 0
    (ZAYA), or None."""
    parent_path = spec.blocks.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    shift, scale = (getattr(parent, a, None) for a in EMBED_AFFINE)
    if not (isinstance(shift, torch.Tensor) and isinstance(scale, torch.Tensor)):
        return None
    return shift, scale


def block_factors(
    block: nn.Module, attn: str | None, mlp: str | None
) -> tuple[tuple[FactorRole, str], ...]:
    """(role, block path of the number attribute) for each factor `block` holds."""
    where = {"block": "", "attn": attn, "mlp": mlp}
    found: list[tuple[FactorRole, str]] = []
    for role, (at, names) in FACTORS.items():
        owner = where[at]
        if owner is None or (owner and not isinstance(getattr(block, owner, None), nn.Module)):
            continue
        mod: Any = block.get_submodule(owner) if owner else block
        name = next((n for n in names if isinstance(getattr(mod, n, None), int | float)), None)
        if name is not None:
            found.append((cast(FactorRole, role), f"{owner}.{name}" if owner else name))
    return tuple(found)
