"""The CircuitsVis-port notebook run in JupyterLab: every view renders from the kernel, and each
is photographed (``tests/browser/artifacts/screenshots/``; with ``HOOKLENS_UPDATE_SCREENSHOTS=1``
also ``docs/screenshots/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import GuardedPage, JupyterServer, copy_tree, run_all_cells
from .test_screenshots import _shoot

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
VIEWS = [
    "attention",
    "attention_patterns",
    "colored_tokens",
    "colored_tokens_multi",
    "text_neuron_activations",
    "topk_tokens",
    "topk_samples",
    "token_log_probs",
    "heads",
]


def _root(view: str) -> str:
    # colored_tokens does not name itself in data-view: find it by its strip.
    if view == "colored_tokens":
        return ".hooklens:has(> .hl-colored-tokens)"
    return f'.hooklens[data-view="{view}"]'


def test_circuitsvis_port_notebook_renders(
    lab_light: JupyterServer, guarded_page: GuardedPage
) -> None:
    jupyter_lab = lab_light  # photographed in the light theme (test_screenshots does dark)
    copy_tree(NOTEBOOKS, jupyter_lab.root)
    page: Any = guarded_page.page
    run_all_cells(page, jupyter_lab, "circuitsvis_port.ipynb")
    page.wait_for_function(
        "() => document.querySelectorAll('.hooklens[data-view=\"heads\"][data-renders]').length"
        " === 2 && document.querySelector('.hooklens[data-layers]')",
        timeout=120_000,
    )
    for view in VIEWS:
        page.wait_for_selector(f"{_root(view)}[data-renders]", timeout=30_000)
    # The first attention view is attention_heads, the second attention_pattern.
    assert page.locator('.hooklens[data-view="attention"]').count() == 2
    assert page.locator(".hooklens[data-error]").count() == 0
    # Lock a token in attention_patterns and open a head's pattern in the head map.
    tokens = page.locator('.hooklens[data-view="attention_patterns"] .hl-token')
    tokens.nth(20).click()
    heads = page.locator('.hooklens[data-view="heads"]').first
    heads.locator(".hl-overlay").first.click(position={"x": 6, "y": 6})
    page.wait_for_function(
        "() => document.querySelector('.hooklens[data-view=\"heads\"]').dataset.pattern"
    )
    page.locator('.hooklens[data-view="token_log_probs"] .hl-token').nth(18).click()
    page.wait_for_selector('.hooklens[data-view="token_log_probs"][data-topk]')
    page.mouse.move(0, 0)
    for view in VIEWS:
        _shoot(page, _root(view), f"cv_{view}.png")
    _shoot(page, ".hooklens[data-layers]", "cv_logit_attribution.png")
