"""TransformerLens's shorthand hook names (`get_act_name`), checked against hooklens's table."""

from __future__ import annotations

import re

from .._errors import HookNameError
from .points import POINTS_BY_SUFFIX, split_name

_LAYER_TYPE_ALIAS = {
    "a": "attn",
    "m": "mlp",
    "b": "",
    "block": "",
    "blocks": "",
    "attention": "attn",
}
_ACT_NAME_ALIAS = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_ATTN = (
    "k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores", "sink", "rounded_v",
)  # fmt: skip
_MLP = ("pre", "post", "mid", "pre_linear")

# TransformerLens names hooklens has no point for, and why
_ABSENT = {
    "mlp.hook_mid": "hook_mid exists only in SoLU MLPs (TransformerLens's solu_ln models); no "
    "family hooklens wraps has one",
    "hook_scale": "a norm's scale needs the norm: pass layer_type 'ln1' or 'ln2', e.g. "
    "get_act_name('scale', {layer}, 'ln1') or cache['scale', {layer}, 'ln1']",
    "hook_normalized": "a norm's output needs the norm: pass layer_type 'ln1' or 'ln2', e.g. "
    "get_act_name('normalized', {layer}, 'ln2')",
}


def tl_act_name(name: str, layer: int | str | None = None, layer_type: str | None = None) -> str:
    """TransformerLens's `get_act_name`, unchecked: 'k6' -> 'blocks.6.attn.hook_k'."""
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    match = re.match(r"([a-z]+)(\d+)([a-z]?.*)", name)
    if match is not None:
        name, layer, layer_type = match.groups(0)  # type: ignore[assignment]
    name = _ACT_NAME_ALIAS.get(name, name)
    full = f"blocks.{layer}." if layer is not None else ""
    if name in _ATTN:
        layer_type = "attn"
    elif name in _MLP:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPE_ALIAS:
        layer_type = _LAYER_TYPE_ALIAS[layer_type]
    if layer_type:
        full += f"{layer_type}."
    full += f"hook_{name}"
    if name in ("scale", "normalized") and layer is None:
        full = f"ln_final.{full}"
    return full


def get_act_name(name: str, layer: int | str | None = None, layer_type: str | None = None) -> str:
    """The full hook name of a TransformerLens shorthand, e.g. `get_act_name("pattern", 0)` ->
    "blocks.0.attn.hook_pattern", `get_act_name("scale", 4, "ln1")`, `get_act_name("k6")`,
    `get_act_name("embed")` -> "hook_embed".

    Raises `HookNameError` for a name TransformerLens produces that hooklens has no point for,
    saying why. (Whether a given model has the point, e.g. `hook_rot_q`, is checked when it is
    used: `model.hook_names()` lists a model's points.)
    """
    full = tl_act_name(name, layer, layer_type)
    lyr, suffix = split_name(full)
    row = POINTS_BY_SUFFIX.get(suffix)
    if row is not None and (row.scope == "block") == (lyr is not None):
        return full
    why = _ABSENT.get(suffix)
    if why is None:
        why = (
            "it is not one of hooklens's hook points (see hooklens/_engine/points.py, or "
            "model.hook_names())"
        )
    raise HookNameError(
        f"get_act_name({name!r}, {layer!r}, {layer_type!r}) is {full!r} in TransformerLens, "
        f"which hooklens does not have: {why.format(layer=lyr if lyr is not None else 0)}."
    )
