"""Text tinted by one neuron's activations (CircuitsVis' ``text_neuron_activations``).

The activations stay in the kernel; the front end asks for the sample, layer and neuron it
shows (``activations`` request), so a model's worth of neurons never crosses at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import traitlets

from .._engine.kwargs import checked
from ._port import PortedView, dimension_labels
from ._tokens import as_token_strings
from ._widget import index_param, rpc_method
from ._wire import as_numpy, encode_tensor


class TextNeuronActivations(PortedView):
    """Samples of text; pickers for the sample, the first dimension (layer) and the second
    (neuron); the sample's tokens tinted by that neuron's activation.

    Activations live in the kernel: one float32 ``(tokens, layers, neurons)`` array per sample.
    The colour scale is the minimum and maximum over all samples (as in CircuitsVis).
    """

    samples = traitlets.List(
        traitlets.List(traitlets.Unicode()), help="The token strings of each sample."
    ).tag(sync=True)
    first_dimension_name = traitlets.Unicode("Layer", help="Name of the first dimension.").tag(
        sync=True
    )
    second_dimension_name = traitlets.Unicode("Neuron", help="Name of the second dimension.").tag(
        sync=True
    )
    first_dimension_labels = traitlets.List(
        traitlets.Unicode(), help="One label per index of the first dimension."
    ).tag(sync=True)
    second_dimension_labels = traitlets.List(
        traitlets.Unicode(), help="One label per index of the second dimension."
    ).tag(sync=True)
    min_value = traitlets.Float(0.0, help="Smallest activation of all samples.").tag(sync=True)
    max_value = traitlets.Float(0.0, help="Largest activation of all samples.").tag(sync=True)
    sample = traitlets.Int(0, help="The sample shown.").tag(sync=True)
    first = traitlets.Int(0, help="Index in the first dimension (layer) shown.").tag(sync=True)
    second = traitlets.Int(0, help="Index in the second dimension (neuron) shown.").tag(sync=True)

    first_screen_traits = ("sample", "first", "second")

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [
            ("activations", {"sample": self.sample, "first": self.first, "second": self.second})
        ]

    def __init__(
        self, samples: list[list[str]], activations: list[np.ndarray], **kwargs: Any
    ) -> None:
        self._activations = activations
        super().__init__(
            view="text_neuron_activations",
            samples=samples,
            min_value=float(min(a.min() for a in activations)),
            max_value=float(max(a.max() for a in activations)),
            **kwargs,
        )

    @rpc_method("activations")
    def _rpc_activations(self, sample: int, first: int, second: int) -> dict[str, Any]:
        """``{"sample", "first", "second", "values": float32 (tokens,)}``."""
        index_param("sample", sample, len(self._activations))
        array = self._activations[sample]
        index_param("first", first, array.shape[1])
        index_param("second", second, array.shape[2])
        values = encode_tensor(array[:, first, second])
        return {"sample": sample, "first": first, "second": second, "values": values}

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every (sample, first, second): the whole array (4 bytes a value)."""
        return [
            ("activations", {"sample": s, "first": f, "second": n})
            for s, array in enumerate(self._activations)
            for f in range(array.shape[1])
            for n in range(array.shape[2])
        ]


@checked()
def text_neuron_activations(
    tokens: Any,
    activations: Any,
    first_dimension_name: str | None = "Layer",
    second_dimension_name: str | None = "Neuron",
    first_dimension_labels: list[str] | None = None,
    second_dimension_labels: list[str] | None = None,
) -> TextNeuronActivations:
    """CircuitsVis' ``text_neuron_activations``.

    ``tokens``: one sample's strings, or a list of samples; ``activations``: ``(tokens, layers,
    neurons)``, or a list of such arrays (one per sample; the same layers and neurons).
    """
    if isinstance(activations, list):
        arrays = [as_numpy(a).astype(np.float32) for a in activations]
        token_lists = tokens
    else:
        arrays = [as_numpy(activations).astype(np.float32)]
        token_lists = [tokens]
    if not arrays:
        raise ValueError("there are no activations to show")
    for array in arrays:
        if array.ndim != 3:
            raise ValueError(
                f"activations must be of shape [tokens x layers x neurons], got "
                f"{tuple(array.shape)}"
            )
    if len(token_lists) != len(arrays) or any(isinstance(t, str) for t in token_lists):
        raise ValueError(
            f"{len(arrays)} activation arrays need as many token lists; pass one list of "
            "strings per sample (a list of lists for several samples)."
        )
    samples = [as_token_strings(t) for t in token_lists]
    shape = arrays[0].shape[1:]
    for i, (strings, array) in enumerate(zip(samples, arrays, strict=True)):
        if array.shape[0] != len(strings):
            raise ValueError(
                f"sample {i}: {len(strings)} tokens but activations of shape "
                f"{tuple(array.shape)}; the first dimension is the tokens."
            )
        if array.shape[1:] != shape:
            raise ValueError(
                f"sample {i} has activations {tuple(array.shape)}, sample 0 "
                f"{tuple(arrays[0].shape)}; every sample needs the same layers and neurons."
            )
    return TextNeuronActivations(
        samples,
        arrays,
        first_dimension_name=first_dimension_name or "Layer",
        second_dimension_name=second_dimension_name or "Neuron",
        first_dimension_labels=dimension_labels(
            first_dimension_labels, shape[0], "first-dimension labels"
        ),
        second_dimension_labels=dimension_labels(
            second_dimension_labels, shape[1], "second-dimension labels"
        ),
    )
