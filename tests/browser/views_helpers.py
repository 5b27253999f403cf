"""Page-side helpers for the view tests: read canvases, hover cells, wait for replies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

READ_PIXELS = """(canvas, [cell, rows, cols]) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const high = Number(canvas.dataset.cellHeight || cell);
  const out = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    // centre pixel of each cell
    const x = c * cell + Math.floor(cell / 2), y = r * high + Math.floor(high / 2);
    const i = (y * canvas.width + x) * 4;
    out.push([data[i], data[i + 1], data[i + 2], data[i + 3]]);
  }
  return {pixels: out, colormap: JSON.parse(canvas.dataset.colormap)};
}"""

PAINTED = """(canvases) => canvases.map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = new Set();
  for (let i = 0; i < d.length; i += 4) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return {view: c.closest('.hooklens').dataset.view, width: c.width, colours: colours.size};
})"""

HOVER_CELL = """async ([selector, cell, row, col]) => {
  const canvas = document.querySelector(selector);
  const overlay = canvas.parentElement.querySelector('.hl-overlay');
  const box = canvas.getBoundingClientRect();
  const sx = box.width / canvas.width, sy = box.height / canvas.height;
  const init = { bubbles: true, clientX: box.left + (col + 0.5) * cell * sx,
                 clientY: box.top + (row + 0.5) * cell * sy };
  overlay.dispatchEvent(new MouseEvent('mousemove', init));
  // Views handle moves once per frame, in the frame: wait until that frame has run.
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return init;
}"""

# The colour painted behind each token of an attention view's strip (ui/strip.ts paints the
# backgrounds of the tokens in view on one canvas under the spans): RGBA at the centre of each
# span's part in view (transparent for a token scrolled out of view).
STRIP_COLOURS = """(root) => {
  const strip = document.querySelector(`${root} .hl-token-strip`);
  const canvas = strip.querySelector('canvas.hl-strip-canvas');
  const at = canvas.getBoundingClientRect();
  const ctx = canvas.getContext('2d');
  return [...strip.querySelectorAll('.hl-token')].map((s) => {
    // The centre of the part of the span in view (the canvas covers the strip's visible area).
    const box = s.getBoundingClientRect();
    const [l, r] = [Math.max(box.left, at.left), Math.min(box.right, at.right)];
    const [t, b] = [Math.max(box.top, at.top), Math.min(box.bottom, at.bottom)];
    if (l >= r || t >= b) return [0, 0, 0, 0];
    const x = Math.floor((l + r) / 2 - at.left), y = Math.floor((t + b) / 2 - at.top);
    return Array.from(ctx.getImageData(x, y, 1, 1).data);
  });
}"""


def value_of_color(scale: dict[str, Any], rgb: np.ndarray) -> np.ndarray:
    """Invert ``js/ui/colormap.ts``: pixels ``(..., 3)`` -> the values drawn (clipped ones read
    as the range's end). Masked/missing colours read as NaN."""
    rgb = np.asarray(rgb, dtype=np.float64)[..., :3]
    background = np.asarray(scale["background"], dtype=np.float64)

    def along(target: list[int]) -> np.ndarray:
        to = np.asarray(target, dtype=np.float64)
        best = int(np.argmax(np.abs(to - background)))
        span = to[best] - background[best]
        return np.clip((rgb[..., best] - background[best]) / span, 0, 1)

    t_pos = along(scale["positive"])
    inverse = 1.0 / scale["gamma"]
    if scale["kind"] == "sequential":
        values = scale["lo"] + t_pos**inverse * (scale["hi"] - scale["lo"])
    else:
        t_neg = along(scale["negative"])
        pos = background + t_pos[..., None] * (np.asarray(scale["positive"]) - background)
        neg = background + t_neg[..., None] * (np.asarray(scale["negative"]) - background)
        closer_pos = np.abs(pos - rgb).sum(-1) <= np.abs(neg - rgb).sum(-1)
        values = np.where(closer_pos, t_pos**inverse * scale["hi"], t_neg**inverse * scale["lo"])
    for special in ("masked", "missing"):
        hit = np.all(np.abs(rgb - np.asarray(scale[special])) < 1, axis=-1)
        values = np.where(hit, np.nan, values)
    return values


def canvas_pixels(page: Any, selector: str, rows: int, cols: int) -> tuple[np.ndarray, dict]:
    """Centre pixel RGBA of every cell ``(rows, cols, 4)`` and the canvas' colour scale (found
    as Playwright finds it: also inside an open shadow root, where marimo renders views)."""
    canvas = page.locator(selector).first
    cell = int(canvas.get_attribute("data-cell"))
    read = canvas.evaluate(READ_PIXELS, [cell, rows, cols])
    return np.asarray(read["pixels"], dtype=np.float64).reshape(rows, cols, 4), read["colormap"]


def painted_heatmaps(page: Any) -> list[dict[str, Any]]:
    """Each view's heatmap canvas (also inside shadow roots): its view, width and how many
    colours it holds (1 for a canvas never painted)."""
    return list(page.locator(".hooklens canvas.hl-heatmap").evaluate_all(PAINTED))


def canvas_values(page: Any, selector: str, rows: int, cols: int) -> np.ndarray:
    """The values a heatmap canvas shows, read back from its pixels' colours: ``(rows, cols)``.

    Tolerance: one colour byte over the channel that moves most (about 1/200 of the range).
    """
    pixels, scale = canvas_pixels(page, selector, rows, cols)
    assert np.all(pixels[..., 3] == 255), "heatmap pixels are opaque (blended, not transparent)"
    return value_of_color(scale, pixels)


def hover_cell(page: Any, selector: str, row: int, col: int) -> None:
    cell = int(page.locator(selector).first.get_attribute("data-cell"))
    page.evaluate(HOVER_CELL, [selector, cell, row, col])


def dataset(page: Any, root: str, key: str) -> Any:
    """``el.dataset[key]`` (camelCase) of the first element matching ``root``, JSON-decoded."""
    attribute = "".join(f"-{ch.lower()}" if ch.isupper() else ch for ch in key)
    value = page.locator(root).first.get_attribute(f"data-{attribute}")
    return None if value is None else json.loads(value)


def install_alert_trap(page: Any) -> None:
    page.add_init_script("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")


def assert_canvas_shows(
    page: Any, selector: str, want: np.ndarray, *, mask_upper: bool = False
) -> dict[str, Any]:
    """The heatmap at ``selector`` shows ``want`` ``(rows, cols)``: each cell's colour reads back
    to its value clipped to the scale's range, masked cells (key after query) to the masked
    colour and NaN to the missing one. Returns the canvas' colour scale."""
    rows, cols = want.shape
    pixels, scale = canvas_pixels(page, selector, rows, cols)
    assert np.all(pixels[..., 3] == 255), "heatmap pixels are opaque (blended, not transparent)"
    got = value_of_color(scale, pixels)
    expected = np.clip(want.astype(np.float64), scale["lo"], scale["hi"])
    if scale["kind"] == "sequential":
        expected = np.maximum(expected, scale["lo"])
    if mask_upper:
        expected = np.where(np.triu(np.ones((rows, cols), bool), 1), np.nan, expected)
    # One colour byte over the channel that moves most: about 1/200 of the range, plus gamma.
    span = scale["hi"] - min(scale["lo"], 0.0)
    np.testing.assert_allclose(got, expected, atol=span / 150 + 1e-3, equal_nan=True)
    return scale


def assert_saved_views_painted(page: Any, model: Any, ids: list[int]) -> None:
    """A saved notebook's AttentionView x2 (one of them `head=1`), ResidualView, PatchingView
    and colored_tokens (3 tokens), rendered from the widget state alone: every heatmap painted,
    the attention map equal to the model's pattern, predictions shown, no view in error."""
    import torch

    page.wait_for_function(
        "() => document.querySelectorAll('.hooklens[data-view=\"attention\"][data-renders]')"
        ".length === 2"
    )
    painted = painted_heatmaps(page)
    # attention x2, residual norms + contributions, patching (its heatmap: not swept yet).
    assert sorted(p["view"] for p in painted) == [
        "attention", "attention", "patching", "residual", "residual",
    ]  # fmt: skip
    assert all(p["width"] > 0 and p["colours"] > 1 for p in painted), painted
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor(ids))
    want = cache["blocks.0.attn.hook_pattern"][0, 1].numpy()
    assert_canvas_shows(
        page, '.hooklens[data-view="attention"] canvas.hl-heatmap', want, mask_upper=True
    )
    assert page.locator('.hooklens[data-view="patching"]').get_attribute("data-predictions")
    assert page.locator('.hooklens[data-view="colored_tokens"] .hl-token').count() == 3
    errors = page.evaluate(
        "() => [...document.querySelectorAll('.hooklens')].map((e) => e.dataset.error)"
        ".filter(Boolean)"
    )
    assert errors == []
