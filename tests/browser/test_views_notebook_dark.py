"""Notebook 7 in its dark theme: a heatmap view and a token view follow the host's colours (the
canvas blended towards the host's background, text in the host's foreground, token tints that
read back to their values on dark)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import torch

from .conftest import GuardedPage, JupyterServer, run_all_cells
from .test_circuitsvis import _close, _drawn
from .test_screenshots import _shoot
from .views_helpers import STRIP_COLOURS, assert_canvas_shows, install_alert_trap, value_of_color

DATA = r"""
import numpy as np
import torch
import hooklens.vis as cv
rng = np.random.default_rng(1)
TOKENS = ["<b>x</b>", " cat", "\n", "</script>", "sat", " on", " the", " mat"]
N = len(TOKENS)
PATTERN = torch.from_numpy(rng.standard_normal((2, N, N))).float().softmax(-1).tril()
PATTERN = PATTERN / PATTERN.sum(-1, keepdim=True)
VALUES = rng.standard_normal(N).astype(np.float32)
"""
HEADS = '.hooklens[data-view="attention"]'
TOKENS_VIEW = '.hooklens[data-view="colored_tokens"]'
# The host's colour for a CSS variable, resolved by the browser in the view's place.
HOST_COLOUR = """(el, [name, property]) => {
  const probe = document.createElement('div');
  probe.style[property] = `var(${name})`;
  el.appendChild(probe);
  const colour = getComputedStyle(probe)[property];
  probe.remove();
  return colour;
}"""


def _rgb(css: str) -> list[int]:
    return [int(float(c)) for c in re.findall(r"[\d.]+", css)[:3]]


def _host(page: Any, root: str, name: str, prop: str = "backgroundColor") -> list[int]:
    return _rgb(page.locator(root).first.evaluate(HOST_COLOUR, [name, prop]))


def test_views_follow_notebook7_dark(
    notebook_dark: JupyterServer, guarded_page: GuardedPage
) -> None:
    server = notebook_dark
    name = server.write_notebook(
        "dark_views.ipynb",
        [
            DATA,
            "cv.attention.attention_heads(attention=PATTERN, tokens=TOKENS)",
            "cv.tokens.colored_tokens(TOKENS, VALUES)",
        ],
    )
    page: Any = guarded_page.page
    install_alert_trap(page)
    run_all_cells(page, server, name)  # waits until the page shows the dark theme
    page.wait_for_selector(f"{HEADS}[data-drawn]", timeout=120_000)
    page.wait_for_selector(f"{TOKENS_VIEW}[data-renders]", timeout=60_000)
    data: dict[str, Any] = {}
    exec(DATA, data)  # the same seeded data as the kernel's
    pattern16 = data["PATTERN"].to(torch.float16).float().numpy()

    # The host really is dark: its background is Notebook 7's dark layout colour.
    background = _host(page, HEADS, "--jp-layout-color0")
    foreground = _host(page, HEADS, "--jp-ui-font-color1", "color")
    assert sum(background) < 150 and sum(foreground) > 450, (background, foreground)

    # Heatmap: every cell reads back to its value through a scale blended towards the host's
    # own background (zero is the background; small values stay visible, not transparent).
    scale = assert_canvas_shows(page, f"{HEADS} canvas.hl-heatmap", pattern16[0], mask_upper=True)
    assert scale["background"] == background
    assert scale["masked"] != background  # the masked triangle is drawn unlike zero
    # Text in the host's foreground, the legend's bar on the same dark scale.
    caption = page.locator(f"{HEADS} .hl-legend-label").first
    assert _rgb(caption.evaluate("(e) => getComputedStyle(e).color")) == foreground
    bar = page.locator(f"{HEADS} canvas.hl-legend-bar").first.evaluate(
        "(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, 1).data)"
    )
    ends = np.asarray(bar, float).reshape(-1, 4)[[0, -1], :3]
    np.testing.assert_allclose(value_of_color(scale, ends), [scale["lo"], scale["hi"]], atol=0.01)

    # Token strip: hovering a token tints the others by its attention row, blended on dark.
    strip = page.locator(f"{HEADS} .hl-token-strip .hl-token")
    strip.nth(5).hover()
    page.wait_for_function(f"() => document.querySelector('{HEADS}').dataset.strip === 'query:5'")
    colours = np.asarray(page.evaluate(STRIP_COLOURS, HEADS))
    assert np.all(colours[:, 3] == 255)  # opaque
    tinted = value_of_color(scale, colours[:, :3])
    np.testing.assert_allclose(tinted, np.minimum(pattern16[0, 5], scale["hi"]), atol=0.01)
    assert _rgb(strip.nth(5).evaluate("(e) => getComputedStyle(e).color")) == foreground

    # colored_tokens: the backgrounds read back to the values on a dark diverging scale; the
    # text is the host's light foreground on them.
    spans = f"{TOKENS_VIEW} .hl-token"
    values = data["VALUES"]
    token_scale = json.loads(page.locator(TOKENS_VIEW).get_attribute("data-colormap"))
    assert token_scale["background"] == background and token_scale["kind"] == "diverging"
    _close(_drawn(page, spans, TOKENS_VIEW), values, values.min(), values.max())
    assert _rgb(page.locator(spans).first.evaluate("(e) => getComputedStyle(e).color")) == (
        foreground
    )

    # Tokens stayed text; nothing ran.
    assert page.locator(".hooklens b").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
    assert page.locator(".hooklens[data-error]").count() == 0
    _shoot(page, HEADS, "notebook7_dark_attention.png")  # token 5 hovered in the strip
    page.mouse.move(0, 0)
    _shoot(page, TOKENS_VIEW, "notebook7_dark_colored_tokens.png")
