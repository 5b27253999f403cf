"""Batched patching on every causal-LM type hooklens wraps: a resid_pre sweep (partial forwards
from the patched layer and position, many cells per pass, only the logits the metric reads)
equals patching each cell by hand in a full forward."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

from .conftest import assert_resid_pre_sweep_equals_each_patch
from .test_registry import TYPES

CLEAN = torch.tensor([[5, 9, 17, 33, 41]])
CORRUPTED = torch.tensor([[5, 18, 17, 33, 41]])


def _metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, 7] - logits[:, -1, 8]


@pytest.mark.parametrize("model_type", TYPES)
def test_sweep_equals_patching_each_cell(registry, model_type):
    outcome, model = registry(model_type)
    if model is None:
        pytest.skip(f"{outcome.status}: {outcome.reason}")
    point = "resid_pre"
    if model.spec.streams is not None:  # several streams, no point on them: attention's output
        with pytest.raises(hl.HookNameError, match="parallel streams"):
            hl.patching.sweep(model, CLEAN, CORRUPTED, _metric, "resid_pre", progress=False)
        point = "attn_out"
    result = hl.patching.sweep(
        model, CLEAN, CORRUPTED, _metric, point, normalize=False, progress=False
    )
    assert_resid_pre_sweep_equals_each_patch(
        model, CLEAN, CORRUPTED, _metric, result.values, point=point
    )
