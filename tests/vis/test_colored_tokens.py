from __future__ import annotations

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._wire import decode_tensor


def test_state_holds_strings_and_binary_values() -> None:
    widget = hl.vis.colored_tokens(tokens=["a", " b", "\n"], values=torch.tensor([0.5, -1.0, 2.0]))
    assert widget.view == "colored_tokens"
    assert widget.tokens == ["a", " b", "\n"]
    assert isinstance(widget.values["data"], memoryview)
    np.testing.assert_array_equal(decode_tensor(widget.values), [0.5, -1.0, 2.0])


@pytest.mark.parametrize("ids", [torch.tensor([[1, 2, 3]]), [1, 2, 3], np.array([1, 2, 3])])
def test_token_ids_get_an_error_that_says_how_to_convert(ids: object) -> None:
    with pytest.raises(TypeError, match=r"model\.to_str_tokens"):
        hl.vis.colored_tokens(tokens=ids, values=[0.0, 0.0, 0.0])


def test_value_count_must_match_token_count() -> None:
    with pytest.raises(ValueError, match="3 entries but there are 2 tokens"):
        hl.vis.colored_tokens(tokens=["a", "b"], values=[1, 2, 3])
