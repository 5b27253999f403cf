"""PatchingView opens on attribution-patching estimates; exact values replace them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._wire import decode_tensor
from tests.engine.conftest import _tokenizer, build_hf

CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPTED = "when john and mary went to the store mary gave a drink to"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("gpt2")
    build_hf("gpt2").save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return hl.HookedModel.from_pretrained(str(folder))


@pytest.mark.parametrize("point", ["resid_pre", "z"])
def test_heatmap_opens_with_the_attribution_estimate(model: Any, point: str) -> None:
    view = hl.PatchingView(model, CLEAN, CORRUPTED, answer="mary", wrong="john", point=point)
    reply = view.call("heatmap", {"point": point})
    assert reply["estimate_error"] == ""
    assert np.isnan(decode_tensor(reply["values"])).all()  # nothing exact yet
    metric = hl.metrics.logit_diff(model, "mary", "john")
    want = hl.patching.sweep(model, CLEAN, CORRUPTED, metric, point, method="attribution",
                             progress=False)  # fmt: skip
    assert want.method == "attribution"
    np.testing.assert_allclose(decode_tensor(reply["estimate"]), want.values, atol=1e-5)


def test_exact_sweep_values_arrive_beside_the_estimate(model: Any) -> None:
    view = hl.PatchingView(model, CLEAN, CORRUPTED, answer="mary", wrong="john")
    view.send = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no front end
    result = view.run_sweep("attn_out")
    assert result is not None
    reply = view.call("heatmap", {"point": "attn_out"})
    np.testing.assert_allclose(decode_tensor(reply["values"]), result.values, atol=1e-6)
    assert reply["estimate"] is not None and reply["status"] == "done"


def test_a_metric_without_gradients_falls_back_to_exact_and_says_why(model: Any) -> None:
    def argmax_metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1].argmax(-1).float()  # no gradient flows

    view = hl.PatchingView(model, CLEAN, CORRUPTED, metric=argmax_metric)
    reply = view.call("heatmap", {"point": "resid_pre"})
    assert reply["estimate"] is None and reply["estimate_error"] != ""
