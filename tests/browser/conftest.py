"""Real-browser harness: a real JupyterLab on 127.0.0.1 and Debian's Chromium via Playwright.

Every page runs behind a network guard that lets through only loopback, ``file:``, ``data:``
and ``blob:`` requests and records anything else; a test fails if anything was blocked, which is
how the suite proves the widgets need no CDN.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_sync
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ALLOWED_PREFIXES = ("http://127.0.0.1:", "ws://127.0.0.1:", "file:", "data:", "blob:")
TOKEN = "hooklens-test-token"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterServer:
    """A running Jupyter server at ``url`` (``http://127.0.0.1:PORT``) serving ``root``."""

    url: str
    root: Path
    app: str  # "lab" or "notebook"
    settings: Path
    #: The theme pages opened from now on start in ("light" / "dark"); None: whatever the
    #: server's user settings hold (a page's theme switch writes them).
    theme: str | None = None

    def set_theme(self, theme: str) -> None:
        """Open later pages in ``theme`` ("light" or "dark"), whatever an earlier test or page
        switched the server to: the theme is a user setting, read from its file at page load."""
        folder = self.settings / "@jupyterlab" / "apputils-extension"
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"theme": THEMES[theme]})
        (folder / "themes.jupyterlab-settings").write_text(text, encoding="utf-8")
        self.theme = theme

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code ``cells`` into the served folder; return its name."""
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for source in cells
            ],
            "metadata": {"kernelspec": KERNELSPEC},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(notebook), encoding="utf-8")
        return name

    def tree_url(self, name: str) -> str:
        prefix = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.url}/{prefix}/{name}?token={TOKEN}&reset"


def _start_server(
    tmp: Path, app: str, extra_args: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], JupyterServer]:
    root, settings, workspaces = tmp / "root", tmp / "settings", tmp / "workspaces"
    for folder in (root, settings, workspaces):
        folder.mkdir(parents=True)
    # The news toast would cover the page.
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = dict(os.environ)
    for var, sub in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        env[var] = str(tmp / sub)
    env["HF_HUB_OFFLINE"] = "1"
    port = _free_port()
    app_class = "LabApp" if app == "lab" else "JupyterNotebookApp"
    command = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--port-retries=0", "--allow-root",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        f"--LabServerApp.user_settings_dir={settings}",
        f"--LabServerApp.workspaces_dir={workspaces}",
        f"--{app_class}.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly", "--LabApp.news_url=", *extra_args,
    ]  # fmt: skip
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited:\n{(tmp / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                break
        except OSError:
            time.sleep(0.25)
    else:
        os.killpg(process.pid, signal.SIGTERM)
        raise RuntimeError(f"jupyter {app} did not start:\n{(tmp / 'server.log').read_text()}")
    return process, JupyterServer(url=url, root=root, app=app, settings=settings)


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    # SIGTERM to the process group stops the server and its kernels.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A real JupyterLab 4 server on 127.0.0.1 serving a temporary folder."""
    process, server = _start_server(tmp_path_factory.mktemp("jupyter-lab"), "lab")
    try:
        yield server
    finally:
        _stop_server(process)


@pytest.fixture(scope="session")
def jupyter_notebook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A real Jupyter Notebook 7 server on 127.0.0.1 serving a temporary folder."""
    process, server = _start_server(tmp_path_factory.mktemp("jupyter-notebook"), "notebook")
    try:
        yield server
    finally:
        _stop_server(process)


@pytest.fixture
def lab_light(jupyter_lab: JupyterServer) -> JupyterServer:
    """The shared JupyterLab, its pages opening in the light theme (a test that depends on the
    theme sets it itself: another test may have left the server dark)."""
    jupyter_lab.set_theme("light")
    return jupyter_lab


@pytest.fixture
def lab_dark(jupyter_lab: JupyterServer) -> JupyterServer:
    """The shared JupyterLab, its pages opening in the dark theme."""
    jupyter_lab.set_theme("dark")
    return jupyter_lab


@pytest.fixture
def notebook_light(jupyter_notebook: JupyterServer) -> JupyterServer:
    """The shared Notebook 7 server, its pages opening in the light theme."""
    jupyter_notebook.set_theme("light")
    return jupyter_notebook


@pytest.fixture
def notebook_dark(jupyter_notebook: JupyterServer) -> JupyterServer:
    """The shared Notebook 7 server, its pages opening in the dark theme."""
    jupyter_notebook.set_theme("dark")
    return jupyter_notebook


def wait_for_theme(page: Any, theme: str, timeout_ms: int = 90_000) -> None:
    """Wait until the host page shows ``theme`` ("light" / "dark"): loading a theme's CSS can
    take a while on a busy machine."""
    light = "true" if theme == "light" else "false"
    page.wait_for_function(
        f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=timeout_ms
    )


def switch_theme(page: Any, server: JupyterServer, theme: str) -> None:
    """Switch the open page (and so the server's user settings) to ``theme``."""
    page.evaluate(
        "(name) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})",
        THEMES[theme],
    )
    wait_for_theme(page, theme)
    server.theme = theme


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium (Playwright cannot download browsers here)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does).")
    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class GuardedPage:
    """A Playwright page whose non-local requests are blocked and recorded."""

    page: Any
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@pytest.fixture
def guarded_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[GuardedPage]:
    """A fresh browser context behind the network guard; fails the test if anything was blocked."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    guarded = GuardedPage(page=None)

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(ALLOWED_PREFIXES):
            route.continue_()
        else:
            guarded.blocked.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda message: guarded.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: guarded.console.append(f"pageerror: {error}"))
    guarded.page = page
    try:
        yield guarded
    finally:
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            stem = request.node.name.replace("/", "_")
            page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.console.txt").write_text("\n".join(guarded.console))
        context.close()
    assert guarded.blocked == [], f"requests left 127.0.0.1: {guarded.blocked}"


def run_all_cells(page: Any, server: JupyterServer, name: str, timeout_ms: int = 90_000) -> None:
    """Open notebook ``name`` (JupyterLab or Notebook 7), wait for its kernel, run all cells.

    Run All is sent only once the kernel is idle: Notebook 7 silently drops an earlier one.
    A server given a theme (``set_theme``, the ``lab_light`` ... fixtures) is checked to show it.
    """
    page.goto(server.tree_url(name))
    page.wait_for_function(
        "() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
        "?.status === 'idle'",
        timeout=timeout_ms,
    )
    if server.theme is not None:
        wait_for_theme(page, server.theme, timeout_ms)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def copy_tree(source: Path, destination: Path) -> None:
    """Copy notebooks into a served folder (so autosave never writes into the repository)."""
    shutil.copytree(source, destination, dirs_exist_ok=True)
