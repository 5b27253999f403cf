"""The wire between kernel and browser: message kinds, request keys, tensors as bytes.

A leaf module (it imports nothing from hooklens), mirrored by ``js/codec.ts`` and ``js/rpc.ts``.

Messages are ipywidgets custom messages::

    {"kind": "hl:request", "id": "<client>:<n>", "method": "attention", "params": {"layer": 3}}
    {"kind": "hl:response", "id": ..., "ok": true,  "result": <json with buffer placeholders>}
    {"kind": "hl:response", "id": ..., "ok": false, "error": {"type": "ValueError", "message": ...}}
    {"kind": "hl:sweep", ...}  # pushed by a running PatchingView sweep

A tensor crosses as ``{"data": memoryview, "dtype": str, "shape": [...]}``. Binary leaves
(``bytes`` / ``memoryview``) never go into the JSON: :func:`pack_buffers` replaces each with
``{"$buffer": i}`` and sends it as the i-th binary buffer of the message.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import torch

REQUEST = "hl:request"
RESPONSE = "hl:response"
SWEEP = "hl:sweep"
BUFFER_KEY = "$buffer"

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


def pack_buffers(
    value: Any, buffers: list[memoryview] | None = None
) -> tuple[Any, list[memoryview]]:
    """Split binary leaves out of ``value``: returns (json value with placeholders, buffers).

    Placeholders index ``buffers``; pass a list already holding buffers to append to it (the
    placeholders then count from its current length).
    """
    out = [] if buffers is None else buffers
    if isinstance(value, (bytes, bytearray, memoryview)):
        out.append(memoryview(value).cast("B"))
        return {BUFFER_KEY: len(out) - 1}, out
    if isinstance(value, dict):
        return {str(k): pack_buffers(v, out)[0] for k, v in value.items()}, out
    if isinstance(value, (list, tuple)):
        return [pack_buffers(v, out)[0] for v in value], out
    return value, out


def unpack_buffers(value: Any, buffers: list[Any]) -> Any:
    """Inverse of :func:`pack_buffers` (buffers as memoryviews)."""
    if isinstance(value, dict):
        if set(value) == {BUFFER_KEY}:
            return memoryview(buffers[int(value[BUFFER_KEY])])
        return {k: unpack_buffers(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack_buffers(v, buffers) for v in value]
    return value


def request_key(method: str, params: dict[str, Any]) -> str:
    """Canonical key of a request; ``js/rpc.ts`` computes the same string (``requestKey``)."""
    return method + "?" + json.dumps(params, sort_keys=True, separators=(",", ":"))
