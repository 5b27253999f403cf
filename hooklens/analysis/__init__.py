"""TransformerLens's toolkit over a wrapped model: weights in its shapes, `FactoredMatrix`,
composition scores, weight processing (as a copy) and per-head / per-neuron decompositions."""

from ._factored import FactoredMatrix, composition_scores
from ._heads import (
    accumulated_bias,
    compute_head_results,
    get_full_resid_decomposition,
    logit_attrs,
    stack_head_results,
    stack_neuron_results,
)
from ._mixin import WeightsMixin
from ._processing import ProcessedWeights, process_weights
from ._weights import LayerWeights, Weights

__all__ = [
    "FactoredMatrix",
    "LayerWeights",
    "ProcessedWeights",
    "Weights",
    "WeightsMixin",
    "accumulated_bias",
    "composition_scores",
    "compute_head_results",
    "get_full_resid_decomposition",
    "logit_attrs",
    "process_weights",
    "stack_head_results",
    "stack_neuron_results",
]
