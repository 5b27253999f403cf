"""Attribution patching: each cell is the first-order change of the metric under that cell's
patch (checked by finite differences in float64), from two forwards and one backward."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import hooklens as hl
from hooklens import patching
from hooklens.metrics import TokenMetric

from .conftest import prompt_pair, tiny_config

METRIC = TokenMetric("logit_diff", 5, 9)


def _diff64(logits: torch.Tensor) -> torch.Tensor:
    """The logit difference in the model's own float64 (TokenMetric computes in float32)."""
    return logits[:, -1, 5] - logits[:, -1, 9]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model64(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    folder = Path(tmp_path_factory.mktemp(f"{request.param}64"))
    AutoModelForCausalLM.from_config(tiny_config(request.param)).save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.NoTokenizerWarning)
        return hl.HookedModel.from_pretrained(str(folder), dtype=torch.float64)


def _moved_metric(model: Any, base: Any, source_cache: Any, name: str, index: Any,
                  eps: float) -> float:  # fmt: skip
    """The metric with the activation at ``index`` moved ``eps`` of the way to the source's."""

    def move(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act = act.clone()
        act[index] += eps * (source_cache[name][index] - act[index])
        return act

    return float(_diff64(model.run_with_hooks(base, fwd_hooks=[(name, move)]))[0])


@pytest.mark.parametrize("point", ["resid_pre", "attn_out", "mlp_out", "z", "pattern", "v"])
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_each_cell_is_the_first_order_change(model64: Any, point: str, direction: str) -> None:
    clean, corrupted = prompt_pair()
    assert next(model64.hf_model.parameters()).dtype == torch.float64
    result = patching.sweep(model64, clean, corrupted, _diff64, point=point, normalize=False,
                            direction=direction, method="attribution")  # fmt: skip
    assert result.method == "attribution" and result.raw.shape == (4, result.raw.shape[1])
    base, source = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    base_value = result.corrupted_value if direction == "denoise" else result.clean_value
    template, axis = patching.POINTS[point]
    names = [template.format(layer=layer) for layer in result.rows]
    with torch.no_grad():
        _, source_cache = model64.run_with_cache(source, names_filter=names)
    # Norms compute in float32 even in a float64 model: a step of 1e-2 keeps their rounding
    # far below the slope, and the central difference's error is O(eps^2).
    eps = 1e-2
    for i, j in [(0, 1), (2, 0), (3, result.raw.shape[1] - 1)]:
        name = template.format(layer=result.rows[i])
        column = result.columns[j]
        if axis == "pos":
            index: Any = (slice(None), column)
        elif point == "pattern":
            index = (slice(None), column)
        else:
            index = (slice(None), slice(None), column)
        with torch.no_grad():  # central difference, both sides through the same hooks
            ahead = _moved_metric(model64, base, source_cache, name, index, eps)
            behind = _moved_metric(model64, base, source_cache, name, index, -eps)
        slope = (ahead - behind) / (2 * eps)
        estimate = result.raw[i, j].item() - base_value
        assert estimate == pytest.approx(slope, rel=1e-3, abs=1e-5)


def test_sweep_all_gives_every_point_from_one_pass(model64: Any) -> None:
    clean, corrupted = prompt_pair()
    every = patching.sweep_all(model64, clean, corrupted, METRIC)
    assert set(every) == {p for p in patching.POINTS if p != "resid_mid"} or "resid_mid" in every
    for point, result in every.items():
        alone = patching.sweep(model64, clean, corrupted, METRIC, point=point,
                               method="attribution")  # fmt: skip
        torch.testing.assert_close(result.values, alone.values)
        exact = patching.sweep(model64, clean, corrupted, METRIC, point=point, progress=False)
        assert result.values.shape == exact.values.shape
        assert result.column_labels == exact.column_labels
        assert (result.clean_value, result.corrupted_value) == pytest.approx(
            (exact.clean_value, exact.corrupted_value)
        )


def test_a_metric_without_a_gradient_is_refused(model64: Any) -> None:
    clean, corrupted = prompt_pair()
    rank = hl.metrics.TokenMetric("rank", 5)
    with pytest.raises(ValueError, match="carries no gradient"):
        patching.sweep(model64, clean, corrupted, rank, method="attribution", normalize=False)
    with pytest.raises(ValueError, match="gradient is zero everywhere"):
        patching.sweep(model64, clean, corrupted, lambda x: x[:, -1, 5] * 0.0,
                       method="attribution", normalize=False)  # fmt: skip
    with pytest.raises(ValueError, match="carries no gradient"):
        patching.sweep(model64, clean, corrupted, lambda x: x[:, -1, 5].detach(),
                       method="attribution", normalize=False)  # fmt: skip
    with pytest.raises(ValueError, match="method must be"):
        patching.sweep(model64, clean, corrupted, METRIC, method="fast")  # type: ignore[arg-type]
    before = [len(p.fns) for p in model64.hook_dict.values()]
    assert sum(before) == 0 and not model64.owner.busy
    assert all(p.grad is None for p in model64.hf_model.parameters())
