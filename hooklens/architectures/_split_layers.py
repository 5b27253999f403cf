"""Models whose layers are not modules: the views hooklens gives them, and why it refuses others.

hooklens places a layer's points on one module per layer, the block, and finds its parts by
their paths inside it (`ArchSpec` paths are relative to one block). XLM keeps no such module:
the model holds one list per part (`attentions`, `layer_norm1`, `ffns`, `layer_norm2`), each
with one entry per layer, and its own forward runs entry i of each in turn, adding and
normalizing the stream between them.

An adapter that says so (`ArchSpec.layer_lists`) gets one `LayerView` per layer: a module
holding that layer's parts under the adapter's names, kept in an attribute of the lists'
parent that torch does not register (`LAYER_VIEWS`: not in `named_modules`, `state_dict` or
`load_state_dict`, so saving, loading and moving the model are as before). The adapter's paths
(`{parent}.{LAYER_VIEWS}.{i}.attention`) resolve through it. The model's forward never calls a
view, so the block's own points sit on its parts (`_engine/wiring.py`) and partial forwards,
which call blocks, run full passes instead (`_engine/partial.py`).

A model with such lists and no adapter describing them is refused: `split_layers_reason`
recognizes it (two or more sibling lists with one entry per layer) and says so, instead of the
derivation's guess that one of the lists is the blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from ._spec import text_config

if TYPE_CHECKING:
    from ._spec import ArchSpec

#: the attribute of the lists' parent that holds the layer views
LAYER_VIEWS = "hooklens_layers"

MSG_SPLIT_LAYERS = (
    "its layers are not modules: {parent} keeps each layer's parts in parallel lists ({lists}, "
    "one entry per layer) and its own forward runs entry i of each in turn, so there is no "
    "block module per layer for hook_resid_pre/hook_resid_post to sit on and no block in "
    "which hooklens's adapter paths could name attention, norms and MLP"
)

MSG_NOT_RUN = (
    "layer {layer} of this model is a view hooklens made of its parts ({parts}); the model's "
    "own forward runs them, and nothing calls the view"
)


class LayerView(nn.Module):
    """One layer of a model whose layers are parallel lists: that layer's parts as children,
    under the adapter's names. Not part of the model's module tree; never run."""

    def __init__(self, layer: int, parts: dict[str, nn.Module]) -> None:
        super().__init__()
        self.layer = layer
        for name, part in parts.items():
            self.add_module(name, part)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(MSG_NOT_RUN.format(layer=self.layer, parts=", ".join(self._modules)))


def attach_layer_views(model: nn.Module, spec: ArchSpec) -> None:
    """Give `model` one `LayerView` per layer at `spec.blocks` (`{parent}.{LAYER_VIEWS}`, the
    parent holding the lists `spec.layer_lists` names); again only where the parts changed (a
    part replaced since is seen)."""
    parent_path, _, attr = spec.blocks.rpartition(".")
    if attr != LAYER_VIEWS or spec.layer_lists is None:
        raise ValueError(f"{spec.family}: blocks={spec.blocks!r} does not name layer views")
    parent = model.get_submodule(parent_path)
    columns = {name: parent.get_submodule(lst) for name, lst in spec.layer_lists}
    counts = {len(c) for c in columns.values()}  # type: ignore[arg-type]
    if len(counts) != 1:
        sizes = (f"{lst}: {len(columns[n])}" for n, lst in spec.layer_lists)  # type: ignore[arg-type]
        found = ", ".join(sizes)
        raise ValueError(f"{parent_path}'s layer lists differ in length ({found})")
    rows = [
        {name: column[i] for name, column in columns.items()}  # type: ignore[index]
        for i in range(counts.pop())
    ]
    kept = parent.__dict__.get(LAYER_VIEWS)
    if isinstance(kept, nn.ModuleList) and [dict(v.named_children()) for v in kept] == rows:
        return
    views = nn.ModuleList(LayerView(i, row) for i, row in enumerate(rows))
    # set past nn.Module.__setattr__: an attribute torch does not register as a child
    object.__setattr__(parent, LAYER_VIEWS, views)


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


__all__ = ["LAYER_VIEWS", "LayerView", "attach_layer_views", "split_layers_reason"]
