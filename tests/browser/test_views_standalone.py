"""Standalone HTML exports opened from file:// in Chromium: no kernel, no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from tests.vis.tiny import IMG, NEWLINE, SCRIPT, SPACE, tiny_gpt2

from .conftest import GuardedPage
from .views_helpers import (
    STRIP_COLOURS,
    assert_canvas_shows,
    dataset,
    hover_cell,
    install_alert_trap,
    value_of_color,
)

IDS = torch.tensor([[2, IMG, SCRIPT, SPACE, NEWLINE, 3]])  # markup and whitespace tokens
ROOT = ".hooklens-standalone"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), n_layers=2, n_heads=3)


def _open(page: Any, path: Path) -> None:
    install_alert_trap(page)
    page.goto(path.as_uri())
    page.wait_for_function(
        f"() => document.querySelector('{ROOT}')?.dataset.renders >= 1", timeout=20_000
    )


def test_attention_export_renders_offline(
    model: Any, tmp_path: Path, guarded_page: GuardedPage
) -> None:
    view = hl.AttentionView(model, IDS, head=1)
    path = hl.export_html(view, tmp_path / "attention.html")
    page = guarded_page.page
    _open(page, path)
    _, cache = model.run_with_cache(IDS)
    want = cache["blocks.0.attn.hook_pattern"][0, 1].numpy()
    scale = assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", want, mask_upper=True)
    # Default scale: 0 to the largest value outside key 0 (the first token clips).
    assert scale["kind"] == "sequential" and scale["lo"] == 0
    assert abs(scale["hi"] - float(want[:, 1:].max())) < 1e-3
    # Tokens are text: nothing ran, no element was created from them.
    texts = page.locator(f"{ROOT} .hl-token-strip .hl-token").all_text_contents()
    assert texts[1:5] == ["<img/src=x/onerror=alert(1)>", "</script>", "·", "⏎"]
    assert page.locator(f"{ROOT} img").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
    # Hover shows the exact (float16) value.
    hover_cell(page, f"{ROOT} canvas.hl-heatmap", 4, 2)
    hover = dataset(page, ROOT, "hover")
    assert (hover["q"], hover["k"], hover["head"]) == (4, 2, 1)
    assert abs(hover["value"] - float(want[4, 2])) < 1e-3
    assert f"{hover['value']:.6f}" in page.locator(f"{ROOT} .hl-readout").text_content()
    # Switching layer is answered from the inlined replies.
    page.select_option(f"{ROOT} select.hl-layer-select", "1")
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.layer === '1'")
    assert dataset(page, ROOT, "lastReply")["layer"] == 1
    want1 = cache["blocks.1.attn.hook_pattern"][0, 1].numpy()
    assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", want1, mask_upper=True)
    assert [m for m in guarded_page.console if "error" in m.lower()] == []


def test_residual_export_renders_offline(
    model: Any, tmp_path: Path, guarded_page: GuardedPage
) -> None:
    view = hl.ResidualView(model, IDS, k=4)
    path = hl.export_html(view, tmp_path / "residual.html")
    page = guarded_page.page
    _open(page, path)
    cells = page.locator(f"{ROOT} td.hl-cell")
    rows, n = len(view.row_labels), len(view.tokens)
    assert cells.count() == rows * n
    # Click a cell: its top-k arrives from the inlined replies.
    page.locator(f'{ROOT} td.hl-cell[data-row="1"][data-position="3"]').click()
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.topk")
    topk = dataset(page, ROOT, "topk")
    assert topk["ids"] == view.lens.topk_ids[1, 3].tolist()
    np.testing.assert_allclose(topk["probs"], view.lens.topk_probs[1, 3], rtol=1e-6)
    items = page.locator(f"{ROOT} .hl-topk .hl-token").all_text_contents()
    assert len(items) == 4
    scale = assert_canvas_shows(page, f"{ROOT} canvas.hl-norms", view.lens.norms)
    # The range leaves position 0 out (its norm may be far larger).
    assert abs(scale["hi"] - float(view.lens.norms[:, 1:].max())) < 1e-3 * scale["hi"]
    assert page.locator(f"{ROOT} img").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
    assert json.loads(page.locator(ROOT).get_attribute("data-renders")) == 1
    # Rows labelled; the strips' columns line up with the table's position columns.
    labels = page.locator(f"{ROOT} .hl-strip-labels").nth(1).locator("div").all_text_contents()
    assert labels[:4] == ["embed", "pos_embed", "L0 attn", "L0 mlp"]
    lefts = page.evaluate(
        f"""() => {{
        const heads = [...document.querySelectorAll('{ROOT} thead th.hl-pos')];
        const canvas = document.querySelector('{ROOT} canvas.hl-contrib').getBoundingClientRect();
        const cell = Number(document.querySelector('{ROOT} canvas.hl-contrib').dataset.cell);
        return heads.map((th, p) => th.getBoundingClientRect().left - (canvas.left + p * cell));
        }}"""
    )
    assert len(lefts) == n and max(abs(x) for x in lefts) <= 1.5
    assert page.locator(ROOT).get_attribute("data-final-in-view") == "true"


def test_attention_heads_token_hover(tmp_path: Path, guarded_page: GuardedPage) -> None:
    tokens = ["a", " b", "<b>x</b>", "\n", "</script>"]
    g = np.random.default_rng(0)
    scores = np.tril(g.random((2, 5, 5))) + 1e-9
    attention = scores / scores.sum(-1, keepdims=True)
    path = hl.export_html(
        hl.vis.attention_heads(tokens=tokens, attention=attention), tmp_path / "p.html"
    )
    page = guarded_page.page
    _open(page, path)
    strip = page.locator(f"{ROOT} .hl-token-strip .hl-token")
    assert strip.all_text_contents() == ["a", "·b", "<b>x</b>", "⏎", "</script>"]
    strip.nth(3).hover()
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.strip === 'query:3'")
    colours = np.asarray(page.evaluate(STRIP_COLOURS, ROOT))
    assert np.all(colours[:, 3] == 255)  # opaque: blended towards the background
    colours = colours[:, :3]
    scale = json.loads(page.locator(f"{ROOT} canvas.hl-heatmap").get_attribute("data-colormap"))
    tinted = value_of_color(scale, np.asarray(colours))
    np.testing.assert_allclose(tinted, np.minimum(attention[0, 3], scale["hi"]), atol=0.01)
    # The value shows at the cursor at once, in the view's own tooltip.
    tip = page.locator(f"{ROOT} .hl-tooltip")
    assert tip.is_visible()
    assert abs(float(tip.locator("div").last.text_content()) - attention[0, 3, 3]) < 1e-3
    exact = [float(strip.nth(i).get_attribute("data-value")) for i in range(5)]
    np.testing.assert_allclose(exact, attention[0, 3], atol=1e-3)  # float16 on the wire
    assert page.locator(f"{ROOT} b").count() == 0
    # A narrower page wraps the strip: its colours follow the tokens to their new places.
    tops = "() => [...document.querySelectorAll('.hl-token-strip .hl-token')].map(s => s.offsetTop)"
    before = page.evaluate(tops)
    page.set_viewport_size({"width": 60, "height": 1000})
    page.wait_for_function(f"(before) => ({tops})().join() !== before.join()", arg=before)
    strip.nth(3).hover()  # the pointer may have left the token when the page rewrapped
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.strip === 'query:3'")
    page.wait_for_timeout(100)  # the strip is remeasured after the resize's layout
    wrapped = np.asarray(page.evaluate(STRIP_COLOURS, ROOT))[:, :3]
    np.testing.assert_allclose(value_of_color(scale, wrapped), tinted, atol=0.01)
