"""Models whose layers are not modules: why hooklens refuses them.

hooklens places a layer's points on one module per layer, the block, that runs its parts in
order: `hook_resid_pre` is the block's input, `hook_resid_post` its output, and its parts are
found by their paths inside it (`ArchSpec` paths are relative to one block). XLM (and
FlauBERT) keep no such module: the model holds one list per part (`attentions`,
`layer_norm1`, `ffns`, `layer_norm2`), each with one entry per layer, and its own forward
runs entry i of each in turn, adding and normalizing the stream between them. Nothing marks
where a layer begins or ends, so the block points would have no module to sit on, and
ArchSpec's block-relative paths cannot name a part. `split_layers_reason` recognizes such a
model (two or more sibling lists with one entry per layer) and says so, instead of the
derivation's guess that one of the lists is the blocks.
"""

from __future__ import annotations

from torch import nn

from ._spec import text_config

MSG_SPLIT_LAYERS = (
    "its layers are not modules: {parent} keeps each layer's parts in parallel lists ({lists}, "
    "one entry per layer) and its own forward runs entry i of each in turn, so there is no "
    "block module per layer for hook_resid_pre/hook_resid_post to sit on and no block in "
    "which hooklens's adapter paths could name attention, norms and MLP"
)


def split_layers_reason(model: nn.Module) -> str | None:
    """Why `model` cannot be wrapped when its layers' parts live in parallel per-part lists
    (None: no such lists)."""
    n_layers = getattr(text_config(getattr(model, "config", None)), "num_hidden_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        return None
    for name, module in model.named_modules():
        lists = [
            child
            for child, sub in module.named_children()
            if isinstance(sub, nn.ModuleList) and len(sub) == n_layers
        ]
        if len(lists) >= 2:
            return MSG_SPLIT_LAYERS.format(parent=name or "the model", lists=", ".join(lists))
    return None


__all__ = ["split_layers_reason"]
