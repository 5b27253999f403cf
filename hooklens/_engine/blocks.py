"""TransformerLens-shaped attribute access to a wrapped model: `model.blocks[l].attn.hook_z`.

Design. TransformerLens users reach hook points (and weights) as attributes of the module tree:
`model.hook_embed`, `model.blocks[3].attn.hook_z`, `model.blocks[3].mlp.hook_post`,
`model.ln_final.hook_normalized`, `model.blocks[3].attn.W_Q`. hooklens does not rebuild the
model as TransformerLens modules; instead these are light accessor objects over the one table
of hook points (`HookedModel.hook_dict`):

- `Namespace(model, prefix)` resolves `ns.hook_x` to the hook point `prefix + "hook_x"`, and
  `ns.child` to a `Namespace` for `prefix + "child."` when some hook point lives below it.
  So `model.blocks[0].ln1.hook_scale` is `model.hook_dict["blocks.0.ln1.hook_scale"]` (the same
  `HookPoint` object, with `add_hook`, `remove_hooks`, `name`, `layer()`).
- `BlockList(model)` is `model.blocks`: `len`, iteration, negative indices as in Python.
  `model.blocks[l]` is a `Block`, whose `attn` and `mlp` are `Attention` / `MLP` namespaces.
- Weight properties (`W_Q`, `W_O`, `W_in`...) are added to `Block`, `Attention` and `MLP` by the
  weights module; the accessors keep `model`, `layer` and the HF submodules (`hf_block`,
  `hf_attn`, `hf_mlp`) for that. Nothing here copies a tensor or caches state: an accessor is
  built on each attribute access and holds only references.

A name that is not a hook point raises `AttributeError` with the close names, so a typo in
`model.blocks[0].attn.hook_zz` is reported, not silently None.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from .hooks import HookPoint
    from .model import HookedModel


class Namespace:
    """Hook points under `prefix` (e.g. "blocks.0.attn."), reachable as attributes."""

    def __init__(self, model: HookedModel, prefix: str) -> None:
        self._model = model
        self._prefix = prefix

    @property
    def model(self) -> HookedModel:
        return self._model

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        points = self._model._points
        name = self._prefix + attr
        if name in points:
            return points[name]
        if any(n.startswith(name + ".") for n in points):
            return Namespace(self._model, name + ".")
        here = sorted(
            {n[len(self._prefix) :].split(".")[0] for n in points if n.startswith(self._prefix)}
        )
        close = difflib.get_close_matches(attr, here, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        where = self._prefix.rstrip(".") or "the model"
        raise AttributeError(
            f"{where} has no hook point or submodule {attr!r} on this "
            f"{self._model.spec.family} model.{hint} Available here: {', '.join(here)}"
        )

    def hook_points(self) -> list[HookPoint]:
        """The hook points under this namespace, in execution order."""
        return [p for n, p in self._model._points.items() if n.startswith(self._prefix)]

    def __dir__(self) -> list[str]:
        here = {
            n[len(self._prefix) :].split(".")[0]
            for n in self._model._points
            if n.startswith(self._prefix)
        }
        return sorted(set(super().__dir__()) | here)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._prefix.rstrip('.') or 'model'!r})"


#: Per-layer weights reachable from `model.blocks[l].attn` / `.mlp` (see `hooklens.analysis`).
_ATTN_WEIGHTS = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "_W_K", "_W_V", "_b_K",
                 "_b_V")  # fmt: skip
_MLP_WEIGHTS = ("W_in", "W_gate", "W_out", "b_in", "b_out")


class Attention(Namespace):
    """`model.blocks[l].attn`: the attention hook points of block `layer`, its weights in
    TransformerLens's shapes (`W_Q` (n_heads, d_model, d_head), ...) and `OV` / `QK`."""

    def __init__(self, model: HookedModel, layer: int) -> None:
        super().__init__(model, f"blocks.{layer}.attn.")
        self.layer = layer

    def __getattr__(self, attr: str) -> Any:
        if attr in _ATTN_WEIGHTS:
            return getattr(self._model.weights.layer(self.layer), attr)
        if attr in ("OV", "QK"):  # this layer's own (its heads may differ from other layers')
            return getattr(self._model.weights.layer(self.layer), attr)
        return super().__getattr__(attr)

    @property
    def hf_attn(self) -> nn.Module:
        """The Hugging Face attention module of this block."""
        return self._model.hf_model.get_submodule(
            f"{self._model.spec.blocks}.{self.layer}.{self._model.spec.attn}"
        )


class MLP(Namespace):
    """`model.blocks[l].mlp`: the MLP hook points of block `layer` and its weights (`W_in`
    (d_model, d_mlp), `W_gate`, `W_out`, `b_in`, `b_out`)."""

    def __init__(self, model: HookedModel, layer: int) -> None:
        super().__init__(model, f"blocks.{layer}.mlp.")
        self.layer = layer

    def __getattr__(self, attr: str) -> Any:
        if attr in _MLP_WEIGHTS:
            return getattr(self._model.weights.layer(self.layer), attr)
        return super().__getattr__(attr)

    @property
    def hf_mlp(self) -> nn.Module:
        """The module that holds the MLP's input projection (the MLP itself in most families)."""
        spec = self._model.spec
        path = spec.mlp_in.rpartition(".")[0] or spec.mlp_in
        return self._model.hf_model.get_submodule(f"{spec.blocks}.{self.layer}.{path}")


class Block(Namespace):
    """`model.blocks[l]`: block `layer`'s hook points; `attn`, `mlp`, `ln1`, `ln2` below it."""

    def __init__(self, model: HookedModel, layer: int) -> None:
        super().__init__(model, f"blocks.{layer}.")
        self.layer = layer

    @property
    def attn(self) -> Attention:
        return Attention(self._model, self.layer)

    @property
    def mlp(self) -> MLP:
        return MLP(self._model, self.layer)

    @property
    def hf_block(self) -> nn.Module:
        """The Hugging Face decoder layer."""
        return self._model.hf_model.get_submodule(f"{self._model.spec.blocks}.{self.layer}")

    def __repr__(self) -> str:
        return f"Block({self.layer})"


class BlockList:
    """`model.blocks`: one `Block` per layer; indexable (negative indices too) and iterable."""

    def __init__(self, model: HookedModel) -> None:
        self._model = model

    def __len__(self) -> int:
        return self._model.cfg.n_layers

    def __getitem__(self, layer: int) -> Block:
        n = len(self)
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise TypeError(f"model.blocks[...] takes a layer index (int), got {layer!r}")
        if not -n <= layer < n:
            raise IndexError(f"layer {layer} is out of range for a model with {n} layers")
        return Block(self._model, layer % n)

    def __iter__(self) -> Iterator[Block]:
        return (Block(self._model, i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"BlockList({len(self)} blocks)"


class ModelWeights:
    """`model.embed` / `model.pos_embed` / `model.unembed`: their weights as attributes."""

    def __init__(self, model: Any, names: tuple[str, ...]) -> None:
        self._model, self._names = model, names

    def __getattr__(self, attr: str) -> Any:
        if attr in self._names:
            return getattr(self._model, attr)
        raise AttributeError(f"{attr!r}: this has {', '.join(self._names)}")


class BlocksMixin:
    """`model.blocks`, `model.ln_final`, and model-level points (`model.hook_embed`...)."""

    _points: dict[str, HookPoint]

    @property
    def blocks(self) -> BlockList:
        """The blocks, TransformerLens style: `model.blocks[l].attn.hook_z`."""
        return BlockList(self)  # type: ignore[arg-type]

    @property
    def ln_final(self) -> Namespace:
        """The final norm's hook points: `model.ln_final.hook_normalized`, `.hook_scale`."""
        return Namespace(self, "ln_final.")  # type: ignore[arg-type]

    @property
    def embed(self) -> ModelWeights:
        """`model.embed.W_E` (d_vocab, d_model), as in TransformerLens."""
        return ModelWeights(self, ("W_E",))

    @property
    def pos_embed(self) -> ModelWeights:
        """`model.pos_embed.W_pos` (n_ctx, d_model) (families with learned positions)."""
        return ModelWeights(self, ("W_pos",))

    @property
    def unembed(self) -> ModelWeights:
        """`model.unembed.W_U` (d_model, d_vocab) and `.b_U`, as in TransformerLens."""
        return ModelWeights(self, ("W_U", "b_U"))

    @property
    def hook_embed(self) -> HookPoint:
        return self._points["hook_embed"]

    @property
    def hook_pos_embed(self) -> HookPoint:
        """Learned position embeddings (families with them; others raise, saying why)."""
        return self._point("hook_pos_embed")  # type: ignore[attr-defined]
