"""HeadMap and LogitAttributionView, exported and live: the map's pixels are the scores, a
click shows that head's pattern, the layer row is the per-component attribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hooklens as hl
from hooklens.vis._wire import decode_tensor
from tests.vis.tiny import TEXT, tiny_gpt2

from .conftest import GuardedPage, JupyterServer, run_all_cells
from .views_helpers import assert_canvas_shows, dataset, install_alert_trap

ROOT = ".hooklens-standalone"
DARK = "<style>body { background: #111; --jp-layout-color0: #111111; }</style></head>"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), n_layers=3, n_heads=4)


def _click_cell(page: Any, selector: str, row: int, col: int) -> None:
    canvas = page.locator(selector).first
    cell = int(canvas.get_attribute("data-cell"))
    box = canvas.bounding_box()
    scale = box["width"] / float(canvas.evaluate("c => c.width"))
    page.mouse.click(box["x"] + (col + 0.5) * cell * scale, box["y"] + (row + 0.5) * cell * scale)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_logit_attribution_export(
    model: Any, tmp_path: Path, guarded_page: GuardedPage, theme: str
) -> None:
    view = hl.vis.LogitAttributionView(model, TEXT, answer="Dublin", wrong="Paris")
    html = hl.vis.to_html(view)
    if theme == "dark":
        html = html.replace("</head>", DARK)
    path = tmp_path / "dla.html"
    path.write_text(html, encoding="utf-8")
    page = guarded_page.page
    install_alert_trap(page)
    page.goto(path.as_uri())
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.layers")
    heads = decode_tensor(view.call("scores", {"kind": "dla"})["values"])
    map_canvas = f"{ROOT} .hl-heads > .hl-plot-box canvas.hl-heatmap"
    scale = assert_canvas_shows(page, map_canvas, heads)
    assert scale["kind"] == "diverging" and scale["hi"] == pytest.approx(np.abs(heads).max())
    layers = dataset(page, ROOT, "layers")
    want = view.call("layers")
    assert layers["labels"] == want["labels"]
    np.testing.assert_allclose(layers["values"], decode_tensor(want["values"]), rtol=1e-6)
    assert_canvas_shows(
        page, f"{ROOT} .hl-layer-plot canvas.hl-heatmap", decode_tensor(want["values"])[None]
    )
    # One click from a head to its pattern.
    _click_cell(page, map_canvas, 2, 1)
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.pattern")
    assert dataset(page, ROOT, "pattern") == {"layer": 2, "head": 1}
    _, cache = model.run_with_cache(TEXT)
    pattern = cache["blocks.2.attn.hook_pattern"][0, 1].numpy()
    assert_canvas_shows(
        page, f"{ROOT} .hl-head-pattern canvas.hl-heatmap", pattern, mask_upper=True
    )
    # Another score is answered from the page.
    page.select_option(f"{ROOT} select.hl-pick-score", "previous_token")
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn).score"
        " === 'previous_token'"
    )
    previous = decode_tensor(view.call("scores", {"kind": "previous_token"})["values"])
    assert_canvas_shows(page, map_canvas, previous)
    assert [m for m in guarded_page.console if "error" in m.lower()] == []


def test_head_map_live_fetches_what_is_on_screen(
    jupyter_lab: JupyterServer, guarded_page: GuardedPage, tmp_path: Path
) -> None:
    folder = tmp_path / "gpt2"
    local = tiny_gpt2(folder, n_layers=3, n_heads=4)  # the kernel loads this folder
    cells = [
        "import hooklens as hl\n"
        f"model = hl.HookedModel.from_pretrained({str(folder)!r})\n"
        f"view = hl.vis.HeadMap(model, {TEXT!r})\nview",
    ]
    name = jupyter_lab.write_notebook("heads.ipynb", cells)
    page = guarded_page.page
    run_all_cells(page, jupyter_lab, name)
    root = ".hooklens:has(.hl-heads)"
    page.wait_for_function(
        f"() => document.querySelector('{root}')?.dataset.renders >= 1", timeout=90_000
    )
    view = hl.vis.HeadMap(local, TEXT)
    induction = decode_tensor(view.call("scores", {"kind": "induction"})["values"])
    canvas = f"{root} .hl-heads > .hl-plot-box canvas.hl-heatmap"
    assert_canvas_shows(page, canvas, induction)
    _click_cell(page, canvas, 1, 3)
    page.wait_for_function(f"() => document.querySelector('{root}').dataset.pattern")
    pattern = decode_tensor(view.call("pattern", {"layer": 1, "head": 3})["pattern"])
    assert_canvas_shows(
        page, f"{root} .hl-head-pattern canvas.hl-heatmap", pattern, mask_upper=True
    )
