"""Patching on the real SmolLM2-135M with an IOI-style prompt pair."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import hooklens as hl

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When John and Mary went to the store, Mary gave a drink to"
LAYERS = [0, 9, 18, 29]

pytestmark = pytest.mark.slow


def test_ioi_sweep_equals_one_forward_per_patch(smollm2: Any) -> None:
    metric = hl.metrics.logit_diff(smollm2, answer=" Mary", wrong=" John")
    assert repr(metric) == "hl.metrics.logit_diff(model, answer=' Mary', wrong=' John')"
    result = hl.patching.sweep(smollm2, CLEAN, CORRUPTED, metric, layers=LAYERS, progress=False)
    assert result.clean_value > 0 > result.corrupted_value  # the model does the task
    n_tokens = smollm2.to_tokens(CLEAN).shape[1]
    assert result.values.shape == (len(LAYERS), n_tokens)
    assert result.column_labels == smollm2.to_str_tokens(CORRUPTED)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in LAYERS]
    _, clean_cache = smollm2.run_with_cache(CLEAN, names_filter=names)
    loop = torch.empty_like(result.raw)
    for i in range(len(LAYERS)):
        for j in range(n_tokens):
            logits = hl.patching.patch(smollm2, CORRUPTED, clean_cache, result.patches(i, j))
            loop[i, j] = metric(logits)[0]
    torch.testing.assert_close(result.raw, loop, atol=1e-4, rtol=0)
    # The names' positions carry the information at layer 0; the shared prefix "When" cannot.
    first_layer = result.values[0]
    assert abs(float(first_layer[1])) < 1e-4
    assert float(first_layer.abs().max()) > 0.1


def test_per_head_sweep_on_gqa_heads(smollm2: Any) -> None:
    metric = hl.metrics.logit_diff(smollm2, answer=" Mary", wrong=" John")
    z = hl.patching.sweep(smollm2, CLEAN, CORRUPTED, metric, point="z", layers=[20], progress=False)
    v = hl.patching.sweep(smollm2, CLEAN, CORRUPTED, metric, point="v", layers=[20], progress=False)
    assert z.values.shape == (1, 9) and z.column_labels[0] == "H0"
    assert v.values.shape == (1, 3)  # key/value heads


def test_answers_must_be_single_tokens(smollm2: Any) -> None:
    with pytest.raises(ValueError, match=r"answer ' Mary had' is 2 tokens"):
        hl.metrics.logit_diff(smollm2, answer=" Mary had", wrong=" John")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        hl.metrics.prob(smollm2, answer=10**9)
