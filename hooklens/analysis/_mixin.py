"""`WeightsMixin`: TransformerLens's weight attributes on `HookedModel`, delegating to `Weights`.

`model.W_Q`, ..., `model.OV`, `model.QK`, `model.all_composition_scores(mode)` and
`model.processed_weights(...)`. Nothing is stored on the model: each access reads the HF modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._factored import FactoredMatrix, composition_scores
from ._processing import ProcessedWeights, process_weights
from ._weights import Weights

if TYPE_CHECKING:
    from .._engine.model import HookedModel


def _stacked(name: str, shape: str) -> property:
    def get(self: WeightsMixin) -> torch.Tensor:
        return getattr(self.weights, name)

    get.__doc__ = f"{shape}: `model.weights.{name}` (a stack over layers: a copy)."
    return property(get)


class WeightsMixin:
    """Weights in TransformerLens's names and shapes (see `hooklens.analysis.Weights`)."""

    @property
    def weights(self) -> Weights:
        """Every weight in TransformerLens's names; `weights.layer(l)` for one block's views."""
        return Weights(self._as_model())

    def _as_model(self) -> HookedModel:
        return self  # type: ignore[return-value]

    W_Q = _stacked("W_Q", "(n_layers, n_heads, d_model, d_head)")
    W_K = _stacked("W_K", "(n_layers, n_heads, d_model, d_head), KV heads expanded")
    W_V = _stacked("W_V", "(n_layers, n_heads, d_model, d_head), KV heads expanded")
    W_O = _stacked("W_O", "(n_layers, n_heads, d_head, d_model)")
    b_Q = _stacked("b_Q", "(n_layers, n_heads, d_head)")
    b_K = _stacked("b_K", "(n_layers, n_heads, d_head)")
    b_V = _stacked("b_V", "(n_layers, n_heads, d_head)")
    b_O = _stacked("b_O", "(n_layers, d_model)")
    W_in = _stacked("W_in", "(n_layers, d_model, d_mlp)")
    W_gate = _stacked("W_gate", "(n_layers, d_model, d_mlp)")
    W_out = _stacked("W_out", "(n_layers, d_mlp, d_model)")
    b_in = _stacked("b_in", "(n_layers, d_mlp)")
    b_out = _stacked("b_out", "(n_layers, d_model)")

    @property
    def W_E(self) -> torch.Tensor:
        """(d_vocab, d_model): the token embedding (a view; see `Weights.W_E`)."""
        return self.weights.W_E

    @property
    def W_pos(self) -> torch.Tensor:
        """(n_ctx, d_model): learned position embeddings (a view)."""
        return self.weights.W_pos

    @property
    def W_U(self) -> torch.Tensor:
        """(d_model, d_vocab): the unembedding (a transposed view of the HF weight)."""
        return self.weights.W_U

    @property
    def b_U(self) -> torch.Tensor:
        """(d_vocab,): the unembedding bias (zeros when there is none)."""
        return self.weights.b_U

    @property
    def QK(self) -> FactoredMatrix:
        """W_Q @ W_K^T per head, (n_layers, n_heads, d_model, d_model), factored: the bilinear
        form from the (normalized) query-side stream to the key-side stream, before rotary and
        the score scale (and before any q/k norm, on families with one)."""
        w = self.weights
        return FactoredMatrix(w.W_Q, w.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """W_V @ W_O per head, (n_layers, n_heads, d_model, d_model), factored (where
        attention's output is gated, without the gate: a per-position factor between them)."""
        w = self.weights
        return FactoredMatrix(w.W_V, w.W_O)

    def all_composition_scores(self, mode: str) -> torch.Tensor:
        """Composition scores of every head pair, (n_layers, n_heads, n_layers, n_heads).

        `mode` "Q", "K" or "V": how much head (l1, h1)'s OV output feeds head (l2, h2)'s query,
        key or value side (Elhage et al. 2021). Pairs with l2 <= l1 are 0, as in TransformerLens.
        """
        left = self.OV
        if mode == "Q":
            right = self.QK
        elif mode == "K":
            right = self.QK.T
        elif mode == "V":
            right = self.OV
        else:
            raise ValueError(f"mode must be one of 'Q', 'K', 'V', not {mode!r}")
        scores = composition_scores(left, right, broadcast_dims=True)
        n = self._as_model().cfg.n_layers
        layers = torch.arange(n, device=scores.device)
        mask = layers[:, None, None, None] < layers[None, None, :, None]
        return torch.where(mask, scores, torch.zeros_like(scores))

    def processed_weights(
        self,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        fold_value_biases: bool = False,
    ) -> ProcessedWeights:
        """A processed *copy* of the weights (TransformerLens's processing; the model is never
        changed): see `hooklens.analysis.ProcessedWeights`."""
        return process_weights(
            self._as_model(), fold_ln, center_writing_weights, center_unembed, fold_value_biases
        )
