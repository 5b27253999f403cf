"""CircuitsVis' ``circuitsvis.activations``, under the same names."""

from ._neurons import text_neuron_activations

__all__ = ["text_neuron_activations"]
