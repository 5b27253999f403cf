"""Tensors to bytes for the widget channel.

A tensor crosses to the browser as ``{"data": memoryview, "dtype": str, "shape": [...]}``;
ipywidgets sends the memoryview as a binary buffer (never as a JSON list) and
``js/codec.ts`` decodes it once.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

WireDType = Literal["float32", "float16", "int32", "uint8"]

_NUMPY_DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "uint8": np.uint8,
}


def as_numpy(values: Any) -> np.ndarray:
    """Any tensor-like (torch tensor on any device, numpy array, nested lists) as a numpy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values)


def encode_tensor(values: Any, dtype: WireDType = "float32") -> dict[str, Any]:
    """Encode ``values`` (any shape) for the wire as ``dtype``, row-major."""
    if dtype not in _NUMPY_DTYPES:
        raise ValueError(f"wire dtype must be one of {sorted(_NUMPY_DTYPES)}, got {dtype!r}")
    array = np.ascontiguousarray(as_numpy(values), dtype=_NUMPY_DTYPES[dtype])
    return {"data": memoryview(array.tobytes()), "dtype": dtype, "shape": list(array.shape)}


def decode_tensor(encoded: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_tensor` (used by tests and by state round-trips)."""
    dtype = _NUMPY_DTYPES[encoded["dtype"]]
    return np.frombuffer(bytes(encoded["data"]), dtype=dtype).reshape(encoded["shape"])
