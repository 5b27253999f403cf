from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hooklens._cli import FIRST_NOTEBOOK, copy_notebooks, notebooks_dir


def test_copy_notebooks_never_overwrites_user_edits(tmp_path: Path) -> None:
    (tmp_path / FIRST_NOTEBOOK).write_text("my edits")
    copied = copy_notebooks(tmp_path)
    assert {p.name for p in copied} == {p.name for p in notebooks_dir().glob("*.ipynb")}
    assert (tmp_path / FIRST_NOTEBOOK).read_text() == "my edits"


@pytest.mark.slow
def test_demo_serves_the_quickstart_notebook_on_loopback(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path / "work"
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        env[var] = str(tmp_path / var.lower())
    server = subprocess.Popen(
        [sys.executable, "-m", "hooklens._cli", "demo", "--no-browser", f"--port={port}",
         f"--dir={workdir}", "--IdentityProvider.token=t", "--port-retries=0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/contents/{FIRST_NOTEBOOK}?token=t&content=0"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    model = json.load(response)
                break
            except OSError:
                assert server.poll() is None, "hooklens demo exited early"
                assert time.monotonic() < deadline, "JupyterLab did not come up"
                time.sleep(0.25)
        assert model["type"] == "notebook"
        assert (workdir / FIRST_NOTEBOOK).is_file()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
