"""PatchingView live in JupyterLab behind the network guard: clicks and sweeps vs the engine."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl

from .conftest import GuardedPage, JupyterServer, run_all_cells
from .views_helpers import assert_canvas_shows

REPO = Path(__file__).resolve().parents[2]
CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPTED = "when john and mary went to the store mary gave a drink to"
VIEWS = '.hooklens[data-view="patching"]'


def _dataset(page: Any, index: int, key: str) -> Any:
    """``dataset[key]`` of the ``index``-th patching view, JSON-decoded when it is JSON."""
    raw = page.evaluate(
        "([sel, i, key]) => document.querySelectorAll(sel)[i]?.dataset[key] ?? null",
        [VIEWS, index, key],
    )
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _wait(page: Any, index: int, condition: str, timeout: int = 60_000) -> None:
    """Wait until ``condition`` (JS over ``d``, the view's dataset) holds."""
    page.wait_for_function(
        "([sel, i]) => { const el = document.querySelectorAll(sel)[i]; if (!el) return false;"
        f" const d = el.dataset; try {{ return Boolean({condition}); }}"
        " catch (e) { return false; } }",
        arg=[VIEWS, index],
        timeout=timeout,
    )


def _click_cell(page: Any, index: int, row: int, col: int, shift: bool = False) -> None:
    root = page.locator(VIEWS).nth(index)
    cell = int(root.locator("canvas.hl-heatmap").get_attribute("data-cell"))
    root.locator("canvas.hl-overlay").click(
        position={"x": (col + 0.5) * cell, "y": (row + 0.5) * cell},
        modifiers=["Shift"] if shift else [],
    )


def _tiny_model(folder: Path) -> hl.HookedModel:
    from tests.engine.conftest import _tokenizer, build_hf

    build_hf("gpt2").save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hl.HookedModel.from_pretrained(str(folder))


def _notebook(folder: Path) -> list[str]:
    setup = (
        f"import sys, time\nsys.path.insert(0, {str(REPO)!r})\nimport hooklens as hl\n"
        f"model = hl.HookedModel.from_pretrained({str(folder)!r})\n"
        f"CLEAN, CORRUPTED = {CLEAN!r}, {CORRUPTED!r}"
    )
    return [
        setup,
        "view = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, answer='mary', "
        "wrong='john', batch_size=2)\nview",
        # A slow metric makes the sweep last long enough to click and cancel during it.
        "base = hl.metrics.logit_diff(model, 'mary', 'john')\n"
        "def slow(logits):\n    time.sleep(0.15)\n    return base(logits)\n"
        "slow_view = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, metric=slow, "
        "batch_size=1)\nslow_view",
        # A cache without the patched points: every click is a kernel error.
        "broken = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, answer='mary', "
        "wrong='john')\nbroken.source_cache = {}\nbroken",
    ]


@pytest.mark.parametrize("app", ["jupyter_lab", "jupyter_notebook"])
def test_patching_view_live(
    app: str, guarded_page: GuardedPage, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: JupyterServer = request.getfixturevalue(app)
    model = _tiny_model(tmp_path / "gpt2")
    metric = hl.metrics.logit_diff(model, "mary", "john")
    name = server.write_notebook("patching.ipynb", _notebook(tmp_path / "gpt2"))
    page: Any = guarded_page.page
    run_all_cells(page, server, name)
    page.wait_for_function(
        f"() => document.querySelectorAll('{VIEWS}').length === 3 && "
        f"[...document.querySelectorAll('{VIEWS}')].every(e => e.dataset.renders && "
        "e.dataset.predictions)",
        timeout=120_000,
    )
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(CLEAN)
        clean_value = float(metric(model(CLEAN)))
        corrupted_value = float(metric(model(CORRUPTED)))

    def patched(patches: list[tuple[str, dict[str, int]]]) -> float:
        with torch.no_grad():
            return float(metric(hl.patching.patch(model, CORRUPTED, clean_cache, patches)))

    shown = _dataset(page, 0, "predictions")
    assert shown["clean"] == pytest.approx(clean_value, abs=1e-5)
    assert shown["corrupted"] == pytest.approx(corrupted_value, abs=1e-5)

    # Click a cell: the kernel runs that patch; the view shows what `patch` gives.
    _click_cell(page, 0, 1, 4)
    _wait(page, 0, "d.patched && JSON.parse(d.patched).cells.length === 1")
    assert _dataset(page, 0, "lastClicked") == {
        "point": "resid_pre", "row": 1, "col": 4, "shift": False,
    }  # fmt: skip
    want = patched([("blocks.1.hook_resid_pre", {"pos": 4})])
    assert float(_dataset(page, 0, "patchedValue")) == pytest.approx(want, abs=1e-5)
    metric_text = page.locator(VIEWS).nth(0).locator('.hl-pred[data-which="patched"] .hl-metric')
    assert float(metric_text.text_content().split()[1]) == pytest.approx(want, abs=1e-5)
    code = page.locator(VIEWS).nth(0).locator("pre.hl-code").text_content()
    assert "patches=[('blocks.1.hook_resid_pre', {'pos': 4})]" in code

    # Shift-click adds a cell; both patches apply together.
    _click_cell(page, 0, 0, 2, shift=True)
    _wait(page, 0, "JSON.parse(d.patched).cells.length === 2")
    want2 = patched(
        [("blocks.1.hook_resid_pre", {"pos": 4}), ("blocks.0.hook_resid_pre", {"pos": 2})]
    )
    assert float(_dataset(page, 0, "patchedValue")) == pytest.approx(want2, abs=1e-5)

    # Two quick clicks: the second waits for the first and is not lost.
    _click_cell(page, 0, 0, 5)
    _click_cell(page, 0, 1, 7)
    _wait(page, 0, "JSON.parse(d.patched).cells[0]?.col === 7 && !JSON.parse(d.queue).queued")
    want3 = patched([("blocks.1.hook_resid_pre", {"pos": 7})])
    assert float(_dataset(page, 0, "patchedValue")) == pytest.approx(want3, abs=1e-5)

    # Run the sweep from the button: the drawn heatmap equals `sweep`.
    page.locator(VIEWS).nth(0).locator("button.hl-run").click()
    _wait(page, 0, "JSON.parse(d.sweep).status === 'done'")
    with torch.no_grad():
        result = hl.patching.sweep(model, CLEAN, CORRUPTED, metric, progress=False)
    heat = _dataset(page, 0, "heatmap")
    rows, cols = result.values.shape
    assert (heat["rows"], heat["cols"], heat["filled"]) == (rows, cols, rows * cols)
    np.testing.assert_allclose(
        np.asarray(heat["values"]).reshape(rows, cols), result.values, atol=1e-5
    )
    canvas = f"{VIEWS} canvas.hl-heatmap"  # the first view's
    scale = assert_canvas_shows(page, canvas, result.values.numpy())
    assert scale["kind"] == "diverging" and scale["lo"] == -scale["hi"]  # centred on 0
    assert _dataset(page, 0, "sweepProgress") == f"{rows * cols}/{rows * cols}"

    # Pick another point: a layers x heads grid, swept from the button too.
    page.locator(VIEWS).nth(0).locator("select.hl-point-select").select_option("z")
    _wait(page, 0, "d.point === 'z'")
    page.locator(VIEWS).nth(0).locator("button.hl-run").click()
    _wait(page, 0, "JSON.parse(d.sweep).status === 'done' && JSON.parse(d.sweep).point === 'z'")
    _wait(page, 0, "JSON.parse(d.heatmap).filled === 8")
    with torch.no_grad():
        z = hl.patching.sweep(model, CLEAN, CORRUPTED, metric, point="z", progress=False)
    heat = _dataset(page, 0, "heatmap")
    np.testing.assert_allclose(np.asarray(heat["values"]).reshape(2, 4), z.values, atol=1e-5)

    # Slow view: cells fill in during the sweep; a click then runs between two of its batches
    # (the kernel holds the model one batch at a time) and answers mid-sweep; Cancel stops it.
    page.locator(VIEWS).nth(1).locator("button.hl-run").click()
    _wait(page, 1, "JSON.parse(d.sweep).status === 'running' && JSON.parse(d.sweep).done >= 1")
    partial = _dataset(page, 1, "heatmap")
    assert 0 < partial["filled"] < rows * cols
    _click_cell(page, 1, 1, 3)
    _wait(page, 1, "d.patchedValue !== undefined")
    want4 = patched([("blocks.1.hook_resid_pre", {"pos": 3})])
    assert float(_dataset(page, 1, "patchedValue")) == pytest.approx(want4, abs=1e-5)
    assert _slow_done(page) < rows * cols  # answered before the sweep ended
    page.locator(VIEWS).nth(1).locator("button.hl-cancel").click()
    _wait(page, 1, "JSON.parse(d.sweep).status === 'cancelled'")
    assert _slow_done(page) < rows * cols

    # A kernel error shows in the widget, not as a silent no-op.
    _click_cell(page, 2, 0, 1)
    _wait(page, 2, "d.error")
    error = page.locator(VIEWS).nth(2).locator(".hl-error")
    assert error.is_visible() and "source cache has no" in error.text_content()


def _slow_done(page: Any) -> int:
    return int(_dataset(page, 1, "sweep")["done"])


def test_patching_export_shows_the_last_heatmap(tmp_path: Path, guarded_page: GuardedPage) -> None:
    model = _tiny_model(tmp_path / "gpt2")
    base = hl.metrics.logit_diff(model, "mary", "john")
    # Once `hold` is set, the metric waits for `release`: the resid_pre sweep is certainly still
    # running when it is cancelled, however fast the machine.
    hold, release = threading.Event(), threading.Event()

    def gated(logits: torch.Tensor) -> torch.Tensor:
        if hold.is_set():
            release.wait(timeout=60)
        return base(logits)

    view = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, metric=gated)
    view.send = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no front end here
    z = view.run_sweep("z")
    result = view.run_sweep("attn_out")
    assert result is not None and z is not None
    hold.set()
    view.run_sweep("resid_pre", wait=False)
    view.cancel_sweep()
    release.set()
    view.wait()
    view.point = "attn_out"
    assert view.swept_points == ["z", "attn_out", "resid_pre"]
    path = hl.export_html(view, tmp_path / "patching.html")
    page: Any = guarded_page.page
    page.goto(path.as_uri())
    root = ".hooklens-standalone"
    page.wait_for_function(
        f"() => document.querySelector('{root}')?.dataset.heatmap && "
        f"document.querySelector('{root}').dataset.predictions",
        timeout=20_000,
    )
    heat = json.loads(page.locator(root).get_attribute("data-heatmap"))
    rows, cols = result.values.shape
    assert heat["point"] == "attn_out" and heat["filled"] == rows * cols
    np.testing.assert_allclose(
        np.asarray(heat["values"]).reshape(rows, cols), result.values, atol=1e-5
    )
    assert_canvas_shows(page, f"{root} canvas.hl-heatmap", result.values.numpy())
    # The status is the shown heatmap's; every finished sweep is in the page.
    status = page.locator(f"{root} .hl-sweep-status").text_content()
    assert status.startswith("swept attn_out"), status
    page.locator(f"{root} select.hl-point-select").select_option("z")
    page.wait_for_function(f"() => document.querySelector('{root}').dataset.point === 'z'")
    assert_canvas_shows(page, f"{root} canvas.hl-heatmap", z.values.numpy())
    assert page.locator(f"{root} .hl-sweep-status").text_content().startswith("swept z")
    page.locator(f"{root} select.hl-point-select").select_option("resid_pre")
    page.wait_for_function(f"() => document.querySelector('{root}').dataset.point === 'resid_pre'")
    assert "cancelled resid_pre" in page.locator(f"{root} .hl-sweep-status").text_content()
    held = page.evaluate(
        f"() => [...document.querySelectorAll('{root} select.hl-point-select option')]"
        ".filter((o) => !o.disabled).map((o) => o.value)"
    )
    assert sorted(held) == ["attn_out", "resid_pre", "z"]
    # Not interactive: no sweep buttons, a click sends nothing.
    assert page.locator(f"{root} button.hl-run").is_hidden()
    page.locator(f"{root} canvas.hl-overlay").click(position={"x": 3, "y": 3})
    page.wait_for_timeout(200)
    assert page.locator(root).get_attribute("data-patched") is None
    assert page.locator(root).get_attribute("data-error") is None
    assert [m for m in guarded_page.console if "error" in m.lower()] == []
