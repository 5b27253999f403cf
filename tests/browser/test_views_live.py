"""AttentionView and ResidualView live in JupyterLab 4 and Notebook 7, behind the network guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.vis.tiny import IMG, NEWLINE, SCRIPT, SPACE, tiny_gpt2

from .conftest import GuardedPage, JupyterServer, run_all_cells, switch_theme
from .views_helpers import assert_canvas_shows, dataset, hover_cell, install_alert_trap

# Markup and whitespace tokens, as ids (the word-level tokenizer splits text on whitespace).
IDS = [[2, IMG, SCRIPT, SPACE, NEWLINE, 3, 4]]
ATTN = '.hooklens[data-view="attention"]'
RESID = '.hooklens[data-view="residual"]'


def _setup_cell(folder: Path) -> str:
    return (
        "import torch\nimport hooklens as hl\n"
        f"model = hl.HookedModel.from_pretrained({str(folder)!r})\nIDS = torch.tensor({IDS!r})"
    )


@pytest.mark.parametrize("app", ["lab_light", "notebook_light"])  # the theme is checked below
def test_views_live(
    app: str, guarded_page: GuardedPage, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: JupyterServer = request.getfixturevalue(app)
    model = tiny_gpt2(tmp_path / "gpt2", n_layers=3, n_heads=4)  # the kernel loads this folder
    name = server.write_notebook(
        "views.ipynb",
        [
            _setup_cell(tmp_path / "gpt2"),
            "attn = hl.AttentionView(model, IDS, head=2)\nattn",
            "res = hl.ResidualView(model, IDS, k=5)\nres",
            "attn  # a second view of the same widget: its own requests, same synced state",
        ],
    )
    page: Any = guarded_page.page
    install_alert_trap(page)
    run_all_cells(page, server, name)
    page.wait_for_selector(f"{ATTN}[data-renders]", timeout=90_000)

    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.tensor(IDS))
    n = 7
    heat = f"{ATTN} canvas.hl-heatmap"
    want = cache["blocks.0.attn.hook_pattern"][0, 2].numpy()
    assert_canvas_shows(page, heat, want, mask_upper=True)
    assert dataset(page, ATTN, "lastReply")["dtype"] == "float16"

    # Hover: exact value and the highlighted row/column.
    hover_cell(page, heat, 5, 1)
    hover = dataset(page, ATTN, "hover")
    assert (hover["q"], hover["k"]) == (5, 1)
    assert abs(hover["value"] - float(want[5, 1])) < 1e-3

    # Switch layer in the UI: one new request, the new layer's pixels.
    page.locator(f"{ATTN} select.hl-layer-select").first.select_option("2")
    page.wait_for_function(f"() => document.querySelector('{ATTN}').dataset.layer === '2'")
    reply = dataset(page, ATTN, "lastReply")
    assert reply["layer"] == 2 and reply["shape"] == [4, n, n]
    assert dataset(page, ATTN, "rpcCount") == 2
    want2 = cache["blocks.2.attn.hook_pattern"][0, 2].numpy()
    assert_canvas_shows(page, heat, want2, mask_upper=True)

    # The second view of the same widget followed the synced layer and fetched it itself.
    second = '.hooklens[data-view="attention"] >> nth=1'
    page.wait_for_function(
        "() => document.querySelectorAll('.hooklens[data-view=\"attention\"]')[1]"
        "?.dataset.layer === '2'"
    )
    assert page.locator(second).get_attribute("data-rpc-count") == "2"

    # Click a head thumbnail: it is enlarged.
    page.locator(f'{ATTN} figure.hl-thumb[data-head="0"]').first.click()
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ATTN}').dataset.drawn).head === 0"
    )
    want20 = cache["blocks.2.attn.hook_pattern"][0, 0].numpy()
    assert_canvas_shows(page, heat, want20, mask_upper=True)

    # Residual view: grid, norms, click for top-k (a round trip through the kernel).
    page.wait_for_selector(f"{RESID}[data-renders]", timeout=30_000)
    assert page.locator(f"{RESID} td.hl-cell").count() == 4 * n
    page.locator(f'{RESID} td.hl-cell[data-row="3"][data-position="6"]').click()
    page.wait_for_function(f"() => document.querySelector('{RESID}').dataset.topk")
    topk = dataset(page, RESID, "topk")
    probs = logits[0, 6].softmax(-1)
    assert topk["ids"] == probs.topk(5).indices.tolist()
    np.testing.assert_allclose(topk["probs"], probs.topk(5).values.numpy(), rtol=1e-5)

    # Dark theme: the views' text follows the host's CSS variables (JupyterLab only here).
    if app == "lab_light":
        readout = f"getComputedStyle(document.querySelector('{ATTN} .hl-readout')).color"
        light = page.evaluate(f"() => {readout}")
        switch_theme(page, server, "dark")
        page.wait_for_function(f"() => {readout} !== {light!r}", timeout=90_000)

    # Markup tokens stayed text.
    strip = (
        page.locator(f"{ATTN} >> nth=0").locator(".hl-token-strip .hl-token").all_text_contents()
    )
    assert strip[1:5] == ["<img/src=x/onerror=alert(1)>", "</script>", "·", "⏎"]
    assert page.locator(".hooklens img").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
