from __future__ import annotations

import numpy as np
import pytest
import torch

from hooklens.vis._wire import decode_tensor, encode_tensor


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_keeps_shape_and_values(dtype: str) -> None:
    values = torch.linspace(-2, 2, 24).reshape(2, 3, 4)
    encoded = encode_tensor(values, dtype=dtype)  # type: ignore[arg-type]
    assert isinstance(encoded["data"], memoryview)
    assert encoded["shape"] == [2, 3, 4]
    assert len(encoded["data"]) == values.numel() * (4 if dtype == "float32" else 2)
    np.testing.assert_allclose(decode_tensor(encoded), values.numpy(), atol=1e-3)


def test_unknown_wire_dtype_is_rejected() -> None:
    with pytest.raises(ValueError, match="wire dtype must be one of"):
        encode_tensor([1.0], dtype="float64")  # type: ignore[arg-type]
