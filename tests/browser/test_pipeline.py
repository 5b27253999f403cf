"""The widget pipeline end to end: a Python trait reaches the browser DOM, with no network."""

from __future__ import annotations

import json
from typing import Any

from .conftest import GuardedPage, JupyterServer, run_all_cells

TOKENS = ["The", " capital", "\n", "<img src=x onerror=alert(1)>", "</script>"]
VALUES = [0.5, -1.0, 0.25, 2.0, 0.0]
UPDATED = ["hello", " world"]


def test_colored_tokens_render_and_follow_trait_updates(
    jupyter_lab: JupyterServer, guarded_page: GuardedPage
) -> None:
    name = jupyter_lab.write_notebook(
        "pipeline.ipynb",
        [
            "import hooklens as hl\n"
            f"widget = hl.vis.colored_tokens(tokens={TOKENS!r}, values={VALUES!r})\n"
            "widget",
            # A second cell changes the synced traits; the view must redraw from them.
            f"widget.tokens = {UPDATED!r}\n"
            f"widget.values = hl.vis.colored_tokens({UPDATED!r}, [1, 2]).values",
        ],
    )
    page: Any = guarded_page.page
    page.add_init_script("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")
    run_all_cells(page, jupyter_lab, name)
    page.wait_for_function(
        "() => document.querySelector('.hooklens')?.dataset.tokens === "
        f"{json.dumps(json.dumps(UPDATED, separators=(',', ':')))}",
        timeout=60_000,
    )
    root = page.locator(".hooklens").first
    assert int(root.get_attribute("data-renders")) >= 2
    spans = root.locator(".hl-token")
    assert spans.all_text_contents() == ["hello", "·world"]
    drawn_values = [float(spans.nth(i).get_attribute("data-value")) for i in range(2)]
    assert drawn_values == [1, 2]
    assert page.evaluate("() => window.__alerts") == 0
    assert page.locator(".hooklens img").count() == 0


def test_markup_tokens_show_as_text(jupyter_lab: JupyterServer, guarded_page: GuardedPage) -> None:
    name = jupyter_lab.write_notebook(
        "markup.ipynb",
        [f"import hooklens as hl\nhl.vis.colored_tokens(tokens={TOKENS!r}, values={VALUES!r})"],
    )
    page: Any = guarded_page.page
    page.add_init_script("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")
    run_all_cells(page, jupyter_lab, name)
    page.wait_for_selector(".hooklens .hl-token", timeout=60_000)
    texts = page.locator(".hooklens .hl-token").all_text_contents()
    assert texts == ["The", "·capital", "⏎", "<img·src=x·onerror=alert(1)>", "</script>"]
    assert page.locator(".hooklens img").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
