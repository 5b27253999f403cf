from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import hooklens as hl
from hooklens._cli import (
    DEFAULT_DIR,
    DEFAULT_PORT,
    FIRST_NOTEBOOK,
    build_parser,
    copy_notebooks,
    notebooks_dir,
)


def test_copy_notebooks_never_overwrites_user_edits(tmp_path: Path) -> None:
    (tmp_path / FIRST_NOTEBOOK).write_text("my edits")
    copied = copy_notebooks(tmp_path)
    assert {p.name for p in copied} == {p.name for p in notebooks_dir().glob("*.ipynb")}
    assert (tmp_path / FIRST_NOTEBOOK).read_text() == "my edits"


# Jupyter's records at error level ("[E 2026-01-02 ...]"; its banner with the address is logged
# at critical level, so "[C" is no error), and what Python or Node print when something failed
# outside the logger.
_ERROR_LINE = re.compile(r"^\[E \d|Traceback|Error|Fail|^\s+at ", re.MULTILINE)
_ADDRESS = re.compile(rf"http://127\.0\.0\.1:\d+/lab/tree/{FIRST_NOTEBOOK}\?token=(\w+)")


def test_help_says_the_defaults_in_plain_text() -> None:
    text = build_parser().format_help()
    demo = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()  # type: ignore[union-attr]
    assert "``" not in text + demo
    assert f"default: ./{DEFAULT_DIR}" in demo and f"default: {DEFAULT_PORT}" in demo
    assert "token" in demo and "Ctrl-C" in demo  # where the address is and how to stop


def test_package_docstring_says_where_to_start() -> None:
    doc = hl.__doc__ or ""
    for start in (
        "hl.demo_model()",
        "AttentionView",
        "ResidualView",
        "PatchingView",
        "hooklens demo",
    ):
        assert start in doc
    # Its indented lines are Python that runs as written, on the demo model.
    code = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    exec(compile(code, "hooklens.__doc__", "exec"), {})


@pytest.mark.slow
def test_demo_serves_the_quickstart_notebook_on_loopback_with_a_clean_log(tmp_path: Path) -> None:
    """As a user starts it (a fresh token), up to the page a browser opens first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path / "work"
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        env[var] = str(tmp_path / var.lower())
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "hooklens._cli", "demo", "--no-browser", f"--port={port}",
             f"--dir={workdir}", "--port-retries=0"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (address := _ADDRESS.search(log_path.read_text())):
            assert server.poll() is None, "hooklens demo exited early"
            assert time.monotonic() < deadline, "JupyterLab printed no address with a token"
            time.sleep(0.25)
        token = address.group(1)
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/api/contents/{FIRST_NOTEBOOK}?token={token}&content=0"
        # Jupyter Server logs its address before its event loop binds the port, so the first
        # requests can be refused on a busy machine.
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    model = json.load(response)
                break
            except urllib.error.URLError as error:
                refused = isinstance(error.reason, ConnectionRefusedError)
                assert refused and time.monotonic() < deadline, f"{url}: {error}"
                assert server.poll() is None, "hooklens demo exited after printing its address"
                time.sleep(0.25)
        assert model["type"] == "notebook"
        assert (workdir / FIRST_NOTEBOOK).is_file()
        # The page a browser opens first: JupyterLab checks its build and settings here.
        with urllib.request.urlopen(address.group(0), timeout=10) as page:
            assert page.status == 200
        text = log_path.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    errors = [line for line in text.splitlines() if _ERROR_LINE.search(line)]
    assert not errors, "the demo server logged errors:\n" + "\n".join(e[:300] for e in errors)
