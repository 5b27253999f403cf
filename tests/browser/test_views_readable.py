"""Views read at a glance, checked on standalone pages (no kernel): labels, legends, scales,
CircuitsVis' colour arguments, long prompts, wrapping, dark pages."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

import hooklens as hl

from .conftest import GuardedPage
from .test_screenshots import _shoot
from .views_helpers import assert_canvas_shows, canvas_pixels, hover_cell

ROOT = ".hooklens-standalone"


def _open(page: Any, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_function(
        f"() => document.querySelector('{ROOT}')?.dataset.renders >= 1", timeout=30_000
    )


def _sink_pattern(n: int, heads: int, seed: int = 0) -> np.ndarray:
    """Causal patterns with most of each row's attention on position 0 (an attention sink)."""
    g = np.random.default_rng(seed)
    scores = np.tril(g.random((heads, n, n))) * 0.02
    scores[:, :, 0] = 1.0
    return scores / scores.sum(-1, keepdims=True)


def test_attention_heads_honours_circuitsvis_arguments(
    tmp_path: Path, guarded_page: GuardedPage
) -> None:
    tokens = ["a", "b", "c", "d"]
    attention = np.array(
        [[[0.1, 0.6, 0.0, 0.3], [0.25, 0.75, 0, 0], [0.2, 0.2, 0.6, 0], [1, 0, 0, 0]]]
    )
    view = hl.vis.attention_heads(
        attention, tokens, ["L3H7"], max_value=0.5, positive_color="red", mask_upper_tri=False
    )
    page = guarded_page.page
    _open(page, hl.export_html(view, tmp_path / "heads.html"))
    scale = assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", attention[0])
    assert (scale["lo"], scale["hi"], scale["positive"]) == (-1, 0.5, [255, 0, 0])
    pixels, _ = canvas_pixels(page, f"{ROOT} canvas.hl-heatmap", 4, 4)
    assert pixels[0, 1, :3].tolist() == [255, 0, 0]  # 0.6 > max_value: full red, not masked
    # The caption is the head's real label; no made-up layer.
    assert page.locator(f"{ROOT} .hl-head-title").text_content() == "L3H7"
    assert page.locator(f"{ROOT} .hl-legend-hi").first.text_content() == "0.5"
    # Masked (default): upper triangle in the masked colour, unlike zero.
    masked = hl.vis.attention_heads(attention, tokens)
    _open(page, hl.export_html(masked, tmp_path / "masked.html"))
    scale = assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", attention[0], mask_upper=True)
    pixels, _ = canvas_pixels(page, f"{ROOT} canvas.hl-heatmap", 4, 4)
    assert pixels[0, 2, :3].tolist() == scale["masked"] != scale["background"]
    assert pixels[2, 3, :3].tolist() == scale["masked"]
    assert "masked" in page.locator(f"{ROOT} .hl-legend").first.text_content()


def test_long_prompt_zooms_pools_and_labels(tmp_path: Path, guarded_page: GuardedPage) -> None:
    n = 1024
    attention = _sink_pattern(n, 2)
    attention[1, 700, 300] = 0.9  # one strong value, far from the sink
    tokens = [f"t{i}" for i in range(n)]
    page = guarded_page.page
    _open(page, hl.export_html(hl.vis.attention_heads(attention, tokens), tmp_path / "long.html"))
    drawn = json.loads(page.locator(ROOT).get_attribute("data-drawn"))
    assert drawn["cell"] >= 3  # a minimum cell size: the map scrolls inside its frame
    frame = page.locator(f"{ROOT} .hl-frame").first
    assert frame.evaluate("(f) => f.scrollHeight > f.clientHeight")
    # The default scale leaves the sink out: the other values are not washed out.
    assert abs(drawn["hi"] - float(attention[0][:, 1:].max())) < 2e-3
    # Labels: thinned to one a line apart, each with its index; the hovered one always shown.
    shown = page.evaluate(
        f"""() => [...document.querySelector('{ROOT} .hl-axis-rows').children]
        .filter((l) => !l.hidden).map((l) => [l.textContent, l.getBoundingClientRect().top])"""
    )
    assert shown[0][0] == "0 t0" and len(shown) < n
    assert min(b[1] - a[1] for a, b in itertools.pairwise(shown)) >= 11
    hover_cell(page, f"{ROOT} canvas.hl-heatmap", 701, 300)
    assert page.locator(f"{ROOT} .hl-axis-focus-rows .hl-axis-focus").text_content() == "701 t701"
    tip = page.locator(f"{ROOT} .hl-tooltip")
    assert tip.is_visible() and "query 701 t701" in tip.text_content()
    # Zoom in: bigger cells.
    page.locator(f"{ROOT} .hl-zoom-button", has_text="+").click()
    assert json.loads(page.locator(ROOT).get_attribute("data-drawn"))["cell"] > drawn["cell"]
    # Thumbnails keep the strongest value of the pixels they pool.
    thumb = page.locator(f'{ROOT} figure[data-head="1"] canvas')
    size = thumb.evaluate("(c) => [c.width, c.height]")
    assert size == [72, 72]
    rgb = thumb.evaluate(
        "(c) => Array.from(c.getContext('2d').getImageData(300 * 72 / 1024 | 0, "
        "700 * 72 / 1024 | 0, 1, 1).data)"
    )
    scale = json.loads(thumb.get_attribute("data-colormap"))
    assert rgb[:3] == scale["positive"]  # 0.9 >= the scale's top: full colour, not dropped
    _shoot(page, ROOT, "attention_long.png")


def test_dark_page_and_wrapping_tokens(tmp_path: Path, guarded_page: GuardedPage) -> None:
    page = guarded_page.page
    page.emulate_media(color_scheme="dark")
    tokens = [f"word{i}" for i in range(56)]
    tokens[20] = "\n"
    values = np.linspace(-1, 1, 56)
    _open(page, hl.export_html(hl.vis.colored_tokens(tokens, values), tmp_path / "t.html"))
    box = page.locator(f"{ROOT} .hl-colored-tokens").bounding_box()
    assert box is not None and box["width"] <= 1400  # wraps instead of widening the page
    tops = page.evaluate(
        f"() => [...document.querySelectorAll('{ROOT} .hl-token')].map((s) => s.offsetTop)"
    )
    assert len(set(tops)) >= 3 and tops[21] > tops[20]  # the newline token ends its line
    background = page.evaluate(
        f"() => getComputedStyle(document.querySelector('{ROOT}')).backgroundColor"
    )
    assert background == "rgb(30, 30, 30)"  # the export follows prefers-color-scheme
    span = page.locator(f"{ROOT} .hl-token").nth(27)  # a small negative value
    colour = span.evaluate("(s) => getComputedStyle(s).backgroundColor")
    assert colour != background and "rgba" not in colour  # blended, visible on dark
    span.hover()
    assert page.locator(f"{ROOT} .hl-tooltip").is_visible()
    _shoot(page, ROOT, "colored_tokens_dark.png")
    # Attention on a dark page: zero is the dark background, small values still visible.
    attention = _sink_pattern(12, 1)
    view = hl.vis.attention_heads(attention, [f"t{i}" for i in range(12)])
    _open(page, hl.export_html(view, tmp_path / "a.html"))
    scale = assert_canvas_shows(page, f"{ROOT} canvas.hl-heatmap", attention[0], mask_upper=True)
    assert scale["background"] == [30, 30, 30]
    _shoot(page, ROOT, "attention_sink_dark.png")


def test_patching_on_a_deep_model_fits_and_keeps_the_answer_in_sight(
    tmp_path: Path, guarded_page: GuardedPage
) -> None:
    from tests.vis.tiny import tiny_gpt2

    model = tiny_gpt2(tmp_path / "deep", n_layers=30, n_heads=2)
    a, b = model.to_single_token("Dublin"), model.to_single_token("Paris")
    view = hl.PatchingView(
        model,
        clean="The capital of Ireland is",
        corrupted="The capital of France is",
        # No gradient, so no attribution estimates: cells not swept yet stay empty.
        metric=lambda logits: (logits[:, -1, a] - logits[:, -1, b]).detach(),
    )
    view.send = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no front end
    view.run_sweep("resid_pre")
    view.run_sweep("attn_out", wait=False)
    view.cancel_sweep()
    view.wait()
    page = guarded_page.page
    _open(page, hl.export_html(view, tmp_path / "deep.html"))
    canvas = page.locator(f"{ROOT} canvas.hl-heatmap")
    box = canvas.bounding_box()
    assert box is not None and box["height"] <= 440  # 30 layers sized to fit
    side = page.locator(f"{ROOT} .hl-side").bounding_box()
    assert side is not None and side["x"] >= box["x"] + box["width"]  # beside the heatmap
    assert side["y"] < box["y"] + box["height"]
    # Column labels are whole (vertical when cells are narrow), the row labels name layers.
    clipped = page.evaluate(
        f"""() => [...document.querySelectorAll('{ROOT} .hl-axis-columns .hl-axis-label')]
        .filter((l) => !l.hidden && (l.scrollHeight > l.clientHeight + 1
                                     || l.scrollWidth > l.clientWidth + 1))
        .map((l) => l.textContent)"""
    )
    assert clipped == []
    rows = page.locator(f"{ROOT} .hl-axis-rows .hl-axis-label").all_text_contents()
    assert rows[0] == "L0" and len(rows) == 30
    # A point swept part-way: cells not swept yet are drawn unlike zero (hatched).
    page.locator(f"{ROOT} select.hl-point-select").select_option("attn_out")
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.point === 'attn_out'")
    pixels, scale = canvas_pixels(page, f"{ROOT} canvas.hl-heatmap", 30, 5)
    missing = np.all(pixels[..., :3] == scale["missing"], axis=-1)
    assert missing.any() and not np.all(pixels[missing][:, :3] == scale["background"])
    assert "not swept yet" in page.locator(f"{ROOT} .hl-legend").first.text_content()
    _shoot(page, ROOT, "patching_deep.png")
