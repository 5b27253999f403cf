"""Page-side helpers for the view tests: read canvases, hover cells, wait for replies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

READ_ALPHA = """([selector, cell, rows, cols]) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const out = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    // centre pixel of each cell
    const x = c * cell + Math.floor(cell / 2), y = r * cell + Math.floor(cell / 2);
    out.push(data[(y * canvas.width + x) * 4 + 3]);
  }
  return out;
}"""

HOVER_CELL = """([selector, cell, row, col]) => {
  const canvas = document.querySelector(selector);
  const overlay = canvas.parentElement.querySelector('.hl-overlay');
  const box = canvas.getBoundingClientRect();
  const sx = box.width / canvas.width, sy = box.height / canvas.height;
  const init = { bubbles: true, clientX: box.left + (col + 0.5) * cell * sx,
                 clientY: box.top + (row + 0.5) * cell * sy };
  overlay.dispatchEvent(new MouseEvent('mousemove', init));
  return init;
}"""


def canvas_values(page: Any, selector: str, rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
    """The values a heatmap canvas shows, read back from its pixels' alpha: ``(rows, cols)``."""
    cell = int(page.locator(selector).first.get_attribute("data-cell"))
    alpha = page.evaluate(READ_ALPHA, [selector, cell, rows, cols])
    return np.asarray(alpha, dtype=np.float32).reshape(rows, cols) / 255.0 * scale


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
