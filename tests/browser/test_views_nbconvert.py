"""A static nbconvert export rendered by html-manager + anywidget's AMD front end, offline.

The stand-in for VS Code's local-kernel path and for static notebook exports: no kernel, so the
views answer their requests from ``view.embed()``'s replies in the widget state. The AMD files
must sit beside the HTML: ``require.js`` (npm ``requirejs``), html-manager's ``embed-amd.js``
(npm ``@jupyter-widgets/html-manager``) and anywidget's ``nbextensions/anywidget/index.js``
(installed by the anywidget wheel). The two npm files are looked up in ``node_modules`` or in
``$HOOKLENS_AMD_DIR``; the test fails, saying which, when they are missing (npm ci installs them).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.vis.tiny import IMG, SCRIPT, tiny_gpt2

from .conftest import KERNELSPEC, GuardedPage
from .views_helpers import (
    assert_canvas_shows,
    assert_saved_views_painted,
    dataset,
    install_alert_trap,
)

REPO = Path(__file__).resolve().parents[2]
IDS = [[2, IMG, SCRIPT, 3]]  # markup tokens, as ids
AMD_FILES = {
    "require.js": "requirejs/require.js",
    "embed-amd.js": "@jupyter-widgets/html-manager/dist/embed-amd.js",
}


def _amd_files() -> dict[str, Path]:
    roots = [REPO / "node_modules"]
    if os.environ.get("HOOKLENS_AMD_DIR"):
        roots.insert(0, Path(os.environ["HOOKLENS_AMD_DIR"]))
    found = {}
    for name, relative in AMD_FILES.items():
        for root in roots:
            if (root / relative).is_file():
                found[name] = root / relative
                break
        else:
            pytest.fail(f"{relative} not found in {[str(r) for r in roots]}: run `npm ci`")
    anywidget = Path(sys.prefix) / "share/jupyter/nbextensions/anywidget/index.js"
    if not anywidget.is_file():
        pytest.fail(f"anywidget's AMD front end is missing: {anywidget}")
    found["anywidget.js"] = anywidget  # requirejs resolves module "anywidget" to ./anywidget.js
    return found


def _export(tmp: Path, folder: Path, views: list[str] | None = None) -> Path:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    cells = [
        "import torch\nimport hooklens as hl\n"
        f"model = hl.HookedModel.from_pretrained({str(folder)!r})\nIDS = torch.tensor({IDS!r})",
        *(
            views
            or [
                "hl.AttentionView(model, IDS, head=1).embed()",
                "hl.ResidualView(model, IDS, k=3).embed()",
            ]
        ),
    ]
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells], metadata={"kernelspec": KERNELSPEC}
    )
    NotebookClient(
        nb, store_widget_state=True, timeout=120, resources={"metadata": {"path": tmp}}
    ).execute()
    exporter = HTMLExporter(
        template_name="lab",
        require_js_url="require.js",
        widget_renderer_url="embed-amd.js",
        mathjax_url="",
        jquery_url="",
    )
    html, _ = exporter.from_notebook_node(nb)
    path = tmp / "export.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_nbconvert_export_renders_offline(tmp_path: Path, guarded_page: GuardedPage) -> None:
    files = _amd_files()
    model = tiny_gpt2(tmp_path / "gpt2", n_layers=2, n_heads=3)  # the kernel loads this folder
    path = _export(tmp_path, tmp_path / "gpt2")
    for name, source in files.items():
        shutil.copy(source, tmp_path / name)
    page: Any = guarded_page.page
    install_alert_trap(page)
    page.goto(path.as_uri())
    attn = '.hooklens[data-view="attention"]'
    page.wait_for_selector(f"{attn}[data-renders]", timeout=60_000)
    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.tensor(IDS))
    want = cache["blocks.0.attn.hook_pattern"][0, 1].numpy()
    assert_canvas_shows(page, f"{attn} canvas.hl-heatmap", want, mask_upper=True)
    page.locator(f"{attn} select.hl-layer-select").select_option("1")
    page.wait_for_function(f"() => document.querySelector('{attn}').dataset.layer === '1'")
    resid = '.hooklens[data-view="residual"]'
    page.wait_for_selector(f"{resid}[data-renders]", timeout=30_000)
    page.locator(f'{resid} td.hl-cell[data-row="2"][data-position="3"]').click()
    page.wait_for_function(f"() => document.querySelector('{resid}').dataset.topk")
    assert dataset(page, resid, "topk")["ids"] == logits[0, 3].topk(3).indices.tolist()
    assert page.locator(".hooklens img").count() == 0
    assert page.evaluate("() => window.__alerts") == 0


def test_saved_notebook_shows_every_view_without_embed(
    tmp_path: Path, guarded_page: GuardedPage
) -> None:
    """A notebook that only constructs the views, executed and exported: every view's first
    screen comes from the widget state (no kernel, no .embed())."""
    files = _amd_files()
    model = tiny_gpt2(tmp_path / "gpt2", n_layers=2, n_heads=3)
    path = _export(
        tmp_path,
        tmp_path / "gpt2",
        [
            "hl.AttentionView(model, IDS, head=1)",
            "hl.ResidualView(model, IDS, k=3)",
            "hl.PatchingView(model, clean='The capital of Ireland is', "
            "corrupted='The capital of France is', answer='Dublin', wrong='Paris')",
            "hl.vis.attention_heads(torch.rand(2, 4, 4), ['a', 'b', 'c', 'd'])",
            "hl.vis.colored_tokens(['a', '\\n', 'b'], [1.0, -0.5, 0.25])",
        ],
    )
    for name, source in files.items():
        shutil.copy(source, tmp_path / name)
    page: Any = guarded_page.page
    page.goto(path.as_uri())
    for view in ("attention", "residual", "patching"):
        page.wait_for_selector(f'.hooklens[data-view="{view}"][data-renders]', timeout=60_000)
    assert_saved_views_painted(page, model, IDS)
