"""The three views on the demo model in JupyterLab, photographed for the README.

The test asserts that each view rendered from the kernel's data; the screenshots land in
``tests/browser/artifacts/screenshots/`` on every run and, with ``HOOKLENS_UPDATE_SCREENSHOTS=1``,
replace the committed ones in ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .conftest import ARTIFACTS, GuardedPage, JupyterServer, run_all_cells, switch_theme

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

SETUP = """import string
import torch
import hooklens as hl
model = hl.demo_model()
torch.manual_seed(0)
characters = string.ascii_letters + string.digits + string.punctuation
span = "".join(characters[i] for i in torch.randint(0, len(characters), (24,)).tolist())
info = hl.demo_model_info()["induction_head"]"""
CELLS = [
    SETUP,
    "hl.AttentionView(model, span + span, layer=info['layer'], head=info['head'])",
    "hl.ResidualView(model, span + span[:12])",
    "k = 12\n"
    "view = hl.PatchingView(model, clean=span + span[:k],"
    " corrupted=span[:k] + '~' + span[k + 1:] + span[:k], answer=span[k], wrong='~')\n"
    "view.run_sweep(wait=True)\n"
    "view",
]


def _shoot(page: Any, selector: str, name: str) -> None:
    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.locator(selector).first.screenshot(path=str(shots / name))
    if os.environ.get("HOOKLENS_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / name, DOCS / name)


def test_views_on_the_demo_model(lab_light: JupyterServer, guarded_page: GuardedPage) -> None:
    jupyter_lab = lab_light
    page: Any = guarded_page.page
    name = jupyter_lab.write_notebook("screenshots.ipynb", CELLS)
    run_all_cells(page, jupyter_lab, name)
    attention = '.hooklens[data-view="attention"]'
    residual = '.hooklens[data-view="residual"]'
    patching = '.hooklens[data-view="patching"]'
    page.wait_for_selector(f"{attention}[data-loaded-layers]", timeout=90_000)
    page.wait_for_selector(f"{residual} td[data-prob]", timeout=90_000)
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{patching}')?.dataset.sweep ?? '{{}}')"
        ".status === 'done'",
        timeout=90_000,
    )
    # Click the cell that carries the answer (layer 1, the changed position 13) and wait for
    # the patched prediction.
    root = page.locator(patching).first
    cell = int(root.locator("canvas.hl-heatmap").get_attribute("data-cell"))
    root.locator("canvas.hl-overlay").click(position={"x": 13.5 * cell, "y": 1.5 * cell})
    page.wait_for_function(
        f"() => document.querySelector('{patching}')?.dataset.patchedValue !== undefined",
        timeout=60_000,
    )
    assert json.loads(root.get_attribute("data-last-clicked"))["col"] == 13
    assert float(root.get_attribute("data-patched-value")) > 0  # the answer is restored
    page.mouse.move(0, 0)
    _shoot(page, attention, "attention.png")
    _shoot(page, residual, "residual.png")
    _shoot(page, patching, "patching.png")
    # Dark theme: every canvas is redrawn on the new background (zero is the background).
    switch_theme(page, jupyter_lab, "dark")
    page.wait_for_function(
        f"""() => {{
        const c = document.querySelector('{attention} canvas.hl-heatmap');
        const scale = JSON.parse(c.dataset.colormap);
        return scale.background.reduce((a, b) => a + b, 0) < 200;
        }}""",
        timeout=20_000,
    )
    for view in (attention, residual, patching):
        scale = json.loads(
            page.locator(f"{view} canvas.hl-heatmap").first.get_attribute("data-colormap")
        )
        assert sum(scale["background"]) < 200, (view, scale)
    _shoot(page, attention, "attention_dark.png")
    _shoot(page, residual, "residual_dark.png")
    _shoot(page, patching, "patching_dark.png")
