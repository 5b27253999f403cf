"""Top and bottom activations as tables and sample lists (CircuitsVis' ``topk_tokens`` and
``topk_samples``). The data stays in the kernel; the front end fetches one page at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import traitlets

from .._engine.kwargs import checked
from ._port import PortedView, dimension_labels
from ._tokens import as_token_strings
from ._widget import index_param, rpc_method
from ._wire import as_numpy, encode_tensor


class TopkTokens(PortedView):
    """For a sample and a first-dimension index (layer): a table whose columns are the third
    dimension (neurons, a page at a time) and whose rows are the ``k`` highest and ``k`` lowest
    activating tokens, each with its value.

    Kernel data per sample: top/bottom values and token indices, ``(layers, k, neurons)``.
    """

    samples = traitlets.List(
        traitlets.List(traitlets.Unicode()), help="The token strings of each sample."
    ).tag(sync=True)
    sample_labels = traitlets.List(traitlets.Unicode(), help="One label per sample.").tag(sync=True)
    first_dimension_name = traitlets.Unicode("Layer", help="Name of the first dimension.").tag(
        sync=True
    )
    third_dimension_name = traitlets.Unicode("Neuron", help="Name of the third dimension.").tag(
        sync=True
    )
    first_dimension_labels = traitlets.List(
        traitlets.Unicode(), help="One label per index of the first dimension."
    ).tag(sync=True)
    n_neurons = traitlets.Int(0, help="Size of the third dimension (the table's columns).").tag(
        sync=True
    )
    k = traitlets.Int(0, help="Rows of top (and of bottom) activations per column.").tag(sync=True)
    page_size = traitlets.Int(8, help="Columns a page of the table holds.").tag(sync=True)
    sample = traitlets.Int(0, help="The sample shown.").tag(sync=True)
    first = traitlets.Int(0, help="Index in the first dimension shown.").tag(sync=True)
    page = traitlets.Int(0, help="The page of columns shown.").tag(sync=True)

    first_screen_traits = ("sample", "first", "page")

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("topk_page", {"sample": self.sample, "first": self.first, "page": self.page})]

    def __init__(
        self, samples: list[list[str]], activations: list[np.ndarray], max_k: int, **kw: Any
    ) -> None:
        self._top: list[tuple[torch.Tensor, ...]] = []
        k = min(min(a.shape[1] for a in activations), int(max_k))
        for array in activations:
            tensor = torch.from_numpy(array)
            top = tensor.topk(k=k, dim=1)
            bottom = tensor.topk(k=k, dim=1, largest=False)
            self._top.append((top.values, top.indices, bottom.values, bottom.indices))
        super().__init__(
            view="topk_tokens",
            samples=samples,
            n_neurons=activations[0].shape[2],
            k=k,
            **kw,
        )

    def n_pages(self) -> int:
        return max(1, -(-self.n_neurons // self.page_size))

    @rpc_method("topk_page")
    def _rpc_page(self, sample: int, first: int, page: int) -> dict[str, Any]:
        """Columns ``[page * page_size, ...)`` of a sample's layer: ``top_values``/``top_indices``
        and ``bottom_values``/``bottom_indices`` of shape ``(k, columns)`` (bottom in ascending
        order, lowest first), ``start`` the first column."""
        index_param("sample", sample, len(self._top))
        top_values, top_indices, bottom_values, bottom_indices = self._top[sample]
        index_param("first", first, top_values.shape[0])
        index_param("page", page, self.n_pages())
        cols = slice(page * self.page_size, (page + 1) * self.page_size)
        return {
            "sample": sample,
            "first": first,
            "page": page,
            "start": page * self.page_size,
            "top_values": encode_tensor(top_values[first, :, cols]),
            "top_indices": encode_tensor(top_indices[first, :, cols], "int32"),
            "bottom_values": encode_tensor(bottom_values[first, :, cols]),
            "bottom_indices": encode_tensor(bottom_indices[first, :, cols], "int32"),
        }

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [
            ("topk_page", {"sample": s, "first": f, "page": p})
            for s, (values, *_rest) in enumerate(self._top)
            for f in range(values.shape[0])
            for p in range(self.n_pages())
        ]


@checked()
def topk_tokens(
    tokens: list[list[str]],
    activations: list[Any],
    max_k: int = 10,
    first_dimension_name: str = "Layer",
    third_dimension_name: str = "Neuron",
    sample_labels: list[str] | None = None,
    first_dimension_labels: list[str] | None = None,
) -> TopkTokens:
    """CircuitsVis' ``topk_tokens``: per sample, a table of the ``max_k`` highest and lowest
    activating tokens of each neuron.

    ``tokens``: one list of strings per sample; ``activations``: one array per sample of shape
    ``(n_layers, n_tokens, n_neurons)``.
    """
    if len(tokens) != len(activations):
        raise ValueError(
            f"tokens and activations must be same length ({len(tokens)} vs {len(activations)})"
        )
    if not activations:
        raise ValueError("there are no activations to show")
    arrays = [np.ascontiguousarray(as_numpy(a), dtype=np.float32) for a in activations]
    if any(a.ndim != 3 for a in arrays):
        raise ValueError("activations must be of the form [n_layers, n_tokens, n_neurons]")
    samples = [as_token_strings(t) for t in tokens]
    for i, (strings, array) in enumerate(zip(samples, arrays, strict=True)):
        if array.shape[1] != len(strings):
            raise ValueError(
                f"sample {i}: {len(strings)} tokens but activations {tuple(array.shape)}; "
                "expected (n_layers, n_tokens, n_neurons)."
            )
        if array.shape[0::2] != arrays[0].shape[0::2]:
            raise ValueError("every sample needs the same n_layers and n_neurons")
    if int(max_k) < 1:
        raise ValueError(f"max_k must be at least 1, got {max_k}")
    n_first = arrays[0].shape[0]
    return TopkTokens(
        samples,
        arrays,
        max_k,
        first_dimension_name=first_dimension_name,
        third_dimension_name=third_dimension_name,
        sample_labels=dimension_labels(sample_labels, len(samples), "sample labels"),
        first_dimension_labels=dimension_labels(
            first_dimension_labels, n_first, "first-dimension labels"
        ),
    )


class TopkSamples(PortedView):
    """For a zeroth (layer) and first (neuron) index: its samples as token strips, each tinted
    by its activations, in the order given (CircuitsVis expects them sorted, highest first).
    """

    zeroth_dimension_name = traitlets.Unicode("Layer", help="Name of the zeroth dimension.").tag(
        sync=True
    )
    first_dimension_name = traitlets.Unicode("Neuron", help="Name of the first dimension.").tag(
        sync=True
    )
    zeroth_dimension_labels = traitlets.List(
        traitlets.Unicode(), help="One label per index of the zeroth dimension."
    ).tag(sync=True)
    first_dimension_labels = traitlets.List(
        traitlets.Unicode(), help="One label per index of the first dimension."
    ).tag(sync=True)
    n_samples = traitlets.Int(0, help="Samples per (zeroth, first) index.").tag(sync=True)
    shown = traitlets.Int(5, help="How many samples are listed (at most n_samples).").tag(sync=True)
    zeroth = traitlets.Int(0, help="Index in the zeroth dimension shown.").tag(sync=True)
    first = traitlets.Int(0, help="Index in the first dimension shown.").tag(sync=True)

    first_screen_traits = ("zeroth", "first")

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("samples", {"zeroth": self.zeroth, "first": self.first})]

    def __init__(self, tokens: list[Any], values: list[Any], **kwargs: Any) -> None:
        self._tokens = tokens
        self._values = values
        super().__init__(view="topk_samples", n_samples=len(tokens[0][0]), **kwargs)
        self.shown = min(5, self.n_samples)

    @rpc_method("samples")
    def _rpc_samples(self, zeroth: int, first: int) -> dict[str, Any]:
        """``{"tokens": [[str]], "values": float32 (total,), "lengths": [int]}``: every sample of
        the index, its values concatenated, ``max`` over them for the scale."""
        index_param("zeroth", zeroth, len(self._tokens))
        index_param("first", first, len(self._tokens[zeroth]))
        samples = self._tokens[zeroth][first]
        values = np.concatenate([np.asarray(v, np.float32) for v in self._values[zeroth][first]])
        return {
            "zeroth": zeroth,
            "first": first,
            "tokens": samples,
            "lengths": [len(s) for s in samples],
            "values": encode_tensor(values),
            "max": float(values.max()) if values.size else 0.0,
        }

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [
            ("samples", {"zeroth": z, "first": f})
            for z in range(len(self._tokens))
            for f in range(len(self._tokens[z]))
        ]


@checked()
def topk_samples(
    tokens: list[list[list[list[str]]]],
    activations: list[list[list[list[float]]]],
    zeroth_dimension_name: str | None = "Layer",
    first_dimension_name: str | None = "Neuron",
    zeroth_dimension_labels: list[str] | None = None,
    first_dimension_labels: list[str] | None = None,
) -> TopkSamples:
    """CircuitsVis' ``topk_samples``: for a layer and neuron, its samples tinted by activation.

    ``tokens`` and ``activations``: nested lists ``[layers][neurons][samples][tokens]`` of the
    same shape (each sample may have its own length).
    """
    values: list[Any] = []
    strings: list[Any] = []
    if not tokens or len(tokens) != len(activations):
        raise ValueError("tokens and activations must be nested [layers][neurons][samples][tokens]")
    n_first = len(tokens[0])
    n_samples = len(tokens[0][0]) if n_first else 0
    for z, (layer_tokens, layer_values) in enumerate(zip(tokens, activations, strict=True)):
        if len(layer_tokens) != n_first or len(layer_values) != n_first:
            raise ValueError(f"layer {z}: every layer needs {n_first} neurons (tokens and values)")
        strings.append([])
        values.append([])
        for f, (samples, acts) in enumerate(zip(layer_tokens, layer_values, strict=True)):
            if len(samples) != n_samples or len(acts) != n_samples:
                raise ValueError(f"[{z}][{f}]: every neuron needs {n_samples} samples")
            for s, (sample_tokens, sample_values) in enumerate(zip(samples, acts, strict=True)):
                if len(sample_tokens) != len(sample_values):
                    raise ValueError(
                        f"[{z}][{f}][{s}]: {len(sample_tokens)} tokens but "
                        f"{len(sample_values)} activations"
                    )
            strings[-1].append([as_token_strings(t) for t in samples])
            values[-1].append([as_numpy(v).astype(np.float32).reshape(-1) for v in acts])
    if n_samples == 0:
        raise ValueError("there are no samples to show")
    return TopkSamples(
        strings,
        values,
        zeroth_dimension_name=zeroth_dimension_name or "Layer",
        first_dimension_name=first_dimension_name or "Neuron",
        zeroth_dimension_labels=dimension_labels(
            zeroth_dimension_labels, len(tokens), "zeroth labels"
        ),
        first_dimension_labels=dimension_labels(
            first_dimension_labels, n_first, "first-dimension labels"
        ),
    )
