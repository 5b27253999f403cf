"""PatchingView opens on attribution-patching estimates (exported and live): the pixels are the
estimates, a click shows the exact value beside the estimate, a sweep replaces them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import hooklens as hl

from .conftest import GuardedPage, JupyterServer, run_all_cells
from .test_patching_view import CLEAN, CORRUPTED, _tiny_model
from .views_helpers import assert_canvas_shows

ROOT = ".hooklens-standalone"
VIEW = '.hooklens[data-view="patching"]'


def _estimate(model: Any, point: str) -> np.ndarray:
    metric = hl.metrics.logit_diff(model, "mary", "john")
    result = hl.patching.sweep(model, CLEAN, CORRUPTED, metric, point, method="attribution",
                               progress=False)  # fmt: skip
    return result.values.numpy()


def test_export_opens_on_the_estimates(tmp_path: Path, guarded_page: GuardedPage) -> None:
    model = _tiny_model(tmp_path / "gpt2")
    view = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, answer="mary", wrong="john")
    path = hl.export_html(view, tmp_path / "patching.html")
    page: Any = guarded_page.page
    page.goto(path.as_uri())
    page.wait_for_function(f"() => document.querySelector('{ROOT}')?.dataset.heatmap")
    heat = json.loads(page.locator(ROOT).get_attribute("data-heatmap"))
    want = _estimate(model, "resid_pre")
    assert heat["filled"] == 0 and heat["estimated"] == want.size
    np.testing.assert_allclose(np.reshape(heat["estimate"], want.shape), want, atol=1e-4)
    assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", want)
    legend = page.locator(f"{ROOT} .hl-legend").first.text_content()
    assert "attribution-patching estimates" in legend
    assert [m for m in guarded_page.console if "error" in m.lower()] == []


def test_live_click_shows_exact_and_estimate_and_sweep_replaces(
    jupyter_lab: JupyterServer, guarded_page: GuardedPage, tmp_path: Path
) -> None:
    folder = tmp_path / "gpt2"
    model = _tiny_model(folder)
    cells = [
        f"import hooklens as hl\nmodel = hl.HookedModel.from_pretrained({str(folder)!r})\n"
        f"view = hl.PatchingView(model, clean={CLEAN!r}, corrupted={CORRUPTED!r}, "
        "answer='mary', wrong='john')\nview"
    ]
    name = jupyter_lab.write_notebook("estimates.ipynb", cells)
    page: Any = guarded_page.page
    run_all_cells(page, jupyter_lab, name)
    page.wait_for_function(
        f"() => document.querySelector('{VIEW}')?.dataset.heatmap", timeout=120_000
    )
    want = _estimate(model, "resid_pre")
    assert_canvas_shows(page, f"{VIEW} canvas.hl-heatmap", want)
    # Click cell (1, 4): the exact patch, shown beside the estimate of that cell.
    root = page.locator(VIEW).first
    cell = int(root.locator("canvas.hl-heatmap").get_attribute("data-cell"))
    root.locator("canvas.hl-overlay").click(position={"x": 4.5 * cell, "y": 1.5 * cell})
    page.wait_for_function(f"() => document.querySelector('{VIEW}').dataset.patchedEstimate")
    assert abs(float(root.get_attribute("data-patched-estimate")) - want[1, 4]) < 1e-5
    patched = json.loads(root.get_attribute("data-patched"))
    metric = hl.metrics.logit_diff(model, "mary", "john")
    exact = hl.patching.sweep(model, CLEAN, CORRUPTED, metric, "resid_pre", progress=False)
    assert (
        patched["normalized"] == np.float32(exact.values[1, 4])
        or abs(patched["normalized"] - float(exact.values[1, 4])) < 1e-4
    )
    assert "estimate was" in root.locator('.hl-pred[data-which="patched"]').text_content()
    # Run sweep: exact values replace the estimates.
    root.locator("button.hl-run").click()
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{VIEW}').dataset.heatmap).estimated === 0",
        timeout=60_000,
    )
    assert_canvas_shows(page, f"{VIEW} canvas.hl-heatmap", exact.values.numpy())
