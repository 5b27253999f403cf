"""hooklens views in VS Code's notebook widget host, ``@vscode/jupyter-ipywidgets8``, offline.

VS Code itself is not run by the tests; its webview's widget host is. ``hosts/vscode.html``
loads the npm package's ``dist/ipywidgets.js`` the way VS Code's notebook webview does
(require.js, then ``activate()`` / ``vscIPyWidgets8.load()`` and the package's
``WidgetManager``) and takes anywidget's front end from the kernel's ``nbextensions`` folder, as
VS Code does for a local kernel. The page is served from 127.0.0.1 (an ES module cannot load
from ``file:``); the network guard fails the test on any other request.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import hooklens as hl
from tests.vis.tiny import IMG, SCRIPT, tiny_gpt2

from .conftest import TOKEN, GuardedPage, _start_server, _stop_server
from .test_screenshots import _shoot
from .views_helpers import assert_canvas_shows, assert_saved_views_painted, dataset

REPO = Path(__file__).resolve().parents[2]
HOSTS = Path(__file__).parent / "hosts"
IPYWIDGETS8 = REPO / "node_modules/@vscode/jupyter-ipywidgets8/dist/ipywidgets.js"
REQUIRE_JS = REPO / "node_modules/requirejs/require.js"
ESBUILD = REPO / "node_modules/.bin/esbuild"
NBEXTENSIONS = Path(sys.prefix) / "share/jupyter/nbextensions"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IDS = [[2, IMG, SCRIPT, 3]]


def _views(model: Any) -> list[Any]:
    """Every kind of view, and a stock ipywidgets one (a saved notebook holds those too, e.g. a
    model loader's progress bar), which the host must render beside them."""
    import ipywidgets

    ids = torch.tensor(IDS)
    return [
        ipywidgets.FloatProgress(value=1.0, max=1.0, description="Loading"),
        hl.AttentionView(model, ids, head=1),
        hl.ResidualView(model, ids, k=3),
        hl.PatchingView(
            model,
            clean="The capital of Ireland is",
            corrupted="The capital of France is",
            answer="Dublin",
            wrong="Paris",
        ),
        hl.vis.attention_heads(torch.rand(2, 4, 4), ["a", "b", "c", "d"]),
        hl.vis.colored_tokens(["a", "\n", "b"], [1.0, -0.5, 0.25]),
    ]


def _saved_notebook(views: list[Any]) -> dict[str, Any]:
    """What VS Code reads of a notebook saved with its widget state: ``metadata.widgets`` (the
    widget-state mime bundle) and each output's widget-view bundle. Built here with ipywidgets'
    own embedding (the same JSON a kernel's notebook holds, all traits, buffers base64) rather
    than by executing a notebook, which starts a kernel and takes a minute on a busy machine."""
    from ipywidgets.embed import dependency_state, embed_data

    data = embed_data(views, drop_defaults=False, state=dependency_state(views, False))
    return {"widgets": {WIDGET_STATE: data["manager_state"]}, "outputs": data["view_specs"]}


def _host_files() -> dict[str, Path]:
    for path, fix in [
        (IPYWIDGETS8, "run `npm ci` (package.json lists @vscode/jupyter-ipywidgets8)"),
        (REQUIRE_JS, "run `npm ci`"),
        (NBEXTENSIONS / "anywidget/index.js", "install anywidget into this environment"),
    ]:
        if not path.is_file():
            pytest.fail(f"{path} is missing: {fix}")
    return {"ipywidgets.js": IPYWIDGETS8, "require.js": REQUIRE_JS}


def _place_host(root: Path) -> None:
    """The page, the host package, require.js and the kernel's local nbextensions (where VS
    Code finds a widget's front end offline) in the served folder."""
    for name, source in _host_files().items():
        shutil.copy(source, root / name)
    for name in ("vscode.html", "vscode_host.js"):
        shutil.copy(HOSTS / name, root / name)
    shutil.copytree(NBEXTENSIONS / "anywidget", root / "nbextensions/anywidget")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1 (quietly) and its URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_saved_notebook_renders_in_vscode_widget_host(
    tmp_path: Path, served: tuple[Path, str], guarded_page: GuardedPage
) -> None:
    """Every view's first screen, from a saved notebook's widget state, with no kernel."""
    root, url = served
    _place_host(root)
    model = tiny_gpt2(tmp_path / "gpt2", n_layers=2, n_heads=3)
    notebook = _saved_notebook(_views(model))
    (root / "notebook.json").write_text(json.dumps(notebook), encoding="utf-8")
    page: Any = guarded_page.page
    page.goto(f"{url}/vscode.html")
    page.wait_for_function("() => window.__host?.done", timeout=60_000)
    host = page.evaluate("() => window.__host")
    assert host["errors"] == [], host["errors"]
    # The package's manager asked for anywidget's front end and got the local copy.
    assert any(line.startswith("script source requested: anywidget@") for line in host["log"])
    for view in ("attention", "residual", "patching", "colored_tokens"):
        page.wait_for_selector(f'.hooklens[data-view="{view}"][data-renders]', timeout=30_000)
    assert_saved_views_painted(page, model, IDS)
    # The stock widget beside them (ipywidgets' controls, bundled in the host) rendered too.
    assert page.locator(".widget-hprogress .progress-bar").count() == 1
    _shoot(page, "#outputs", "host_vscode.png")


def test_live_kernel_through_vscode_widget_host(
    tmp_path: Path,
    served: tuple[Path, str],
    guarded_page: GuardedPage,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same host with a kernel: the manager gets a live kernel connection (VS Code gives it
    a proxy of one), the view is created by the kernel's comm messages and a layer switch is a
    request answered by the kernel."""
    root, url = served
    _place_host(root)
    if not ESBUILD.is_file():
        pytest.fail(f"{ESBUILD} is missing: run `npm ci`")
    subprocess.run(
        [str(ESBUILD), str(HOSTS / "services.js"), "--bundle", "--format=esm", "--log-level=error",
         f"--outfile={root / 'services.js'}"],
        check=True,
    )  # fmt: skip
    model = tiny_gpt2(tmp_path / "gpt2", n_layers=2, n_heads=3)
    process, server = _start_server(
        tmp_path_factory.mktemp("jupyter-server"), "lab", [f"--ServerApp.allow_origin={url}"]
    )
    try:
        page: Any = guarded_page.page
        page.goto(f"{url}/vscode.html?server={server.url}&token={TOKEN}")
        page.wait_for_function("() => window.__run || window.__host?.done", timeout=60_000)
        code = (
            "import torch\nimport hooklens as hl\n"
            f"model = hl.HookedModel.from_pretrained({str(tmp_path / 'gpt2')!r})\n"
            f"hl.AttentionView(model, torch.tensor({IDS!r}), head=1)"
        )
        assert page.evaluate("(code) => window.__run(code)", code) == "ok"
        attention = '.hooklens[data-view="attention"]'
        page.wait_for_selector(f"{attention}[data-renders]", timeout=60_000)
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.tensor(IDS))
        heatmap = f"{attention} canvas.hl-heatmap"
        want = cache["blocks.0.attn.hook_pattern"][0, 1].numpy()
        assert_canvas_shows(page, heatmap, want, mask_upper=True)
        page.locator(f"{attention} select.hl-layer-select").select_option("1")
        page.wait_for_selector(f'{attention}[data-layer="1"]', timeout=30_000)
        assert dataset(page, attention, "lastReply")["layer"] == 1  # answered by the kernel
        want = cache["blocks.1.attn.hook_pattern"][0, 1].numpy()
        assert_canvas_shows(page, heatmap, want, mask_upper=True)
        host = page.evaluate("() => window.__host")
        assert host["errors"] == [], host["errors"]
        assert page.locator(".hooklens[data-error]").count() == 0
    finally:
        _stop_server(process)
