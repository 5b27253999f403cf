"""``notebooks/marimo_views.py`` run by ``marimo run`` on 127.0.0.1 and painted in Chromium.

marimo renders anywidgets with its own front end (served by ``marimo run`` from the marimo
wheel) and carries their custom messages, so the views ask the notebook's kernel for their data
as in Jupyter. The network guard fails the test on any request leaving 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import hooklens as hl

from .conftest import GuardedPage, _free_port
from .test_screenshots import _shoot
from .views_helpers import assert_canvas_shows, dataset, painted_heatmaps

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "marimo_views.py"
VIEWS = [
    "attention", "residual", "patching", "attention_patterns", "colored_tokens_multi",
    "text_neuron_activations", "topk_tokens", "topk_samples", "token_log_probs", "heads",
]  # fmt: skip


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``marimo run`` serving the notebook on 127.0.0.1; its URL."""
    tmp = tmp_path_factory.mktemp("marimo")
    port = _free_port()
    # The notebook's kernel imports hooklens from this checkout, whatever the install points at.
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, HF_HUB_OFFLINE="1", MARIMO_SKIP_UPDATE_CHECK="1", PYTHONPATH=path)
    log = (tmp / "marimo.log").open("wb")
    command = [
        sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--headless", "--no-token",
        "--host", "127.0.0.1", "--port", str(port), "--no-sandbox", "--no-check",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"marimo run exited:\n{(tmp / 'marimo.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.25)
    else:
        os.killpg(process.pid, signal.SIGTERM)
        pytest.fail(f"marimo run did not start:\n{(tmp / 'marimo.log').read_text()}")
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _expected() -> tuple[Any, dict[str, int]]:
    """The attention patterns the notebook's AttentionView shows (its first cell, recomputed)."""
    model = hl.demo_model()
    torch.manual_seed(0)
    characters = string.ascii_letters + string.digits + string.punctuation
    span = "".join(characters[i] for i in torch.randint(0, len(characters), (16,)).tolist())
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(span + span))
    return cache, hl.demo_model_info()["induction_head"]


def test_marimo_notebook_paints_every_view(marimo_app: str, guarded_page: GuardedPage) -> None:
    page: Any = guarded_page.page
    page.goto(marimo_app)
    for view in VIEWS:
        page.locator(f'.hooklens[data-view="{view}"][data-renders]').first.wait_for(timeout=90_000)
    cache, info = _expected()
    layer, head = info["layer"], info["head"]
    attention = '.hooklens[data-view="attention"]'
    heatmap = f"{attention} canvas.hl-heatmap"
    # The first screen: the induction head, from the kernel through marimo.
    want = cache[f"blocks.{layer}.attn.hook_pattern"][0, head].numpy()
    assert_canvas_shows(page, heatmap, want, mask_upper=True)
    page.mouse.move(0, 0)
    _shoot(page, "#App", "host_marimo.png")
    # A layer switch is a request to the kernel (a custom message through marimo) and back.
    other = (layer + 1) % cache.model.cfg.n_layers
    page.locator(f"{attention} select.hl-layer-select").first.select_option(str(other))
    page.locator(f'{attention}[data-layer="{other}"]').first.wait_for(timeout=30_000)
    # the view shows the new layer at once; the kernel's reply follows (the views sit in
    # marimo's shadow roots, which only locators reach, so poll)
    deadline = time.monotonic() + 30
    while (dataset(page, attention, "lastReply") or {}).get("layer") != other:
        assert time.monotonic() < deadline, "the kernel did not answer the layer switch"
        page.wait_for_timeout(100)
    want = cache[f"blocks.{other}.attn.hook_pattern"][0, head].numpy()
    assert_canvas_shows(page, heatmap, want, mask_upper=True)
    painted = painted_heatmaps(page)
    assert {p["view"] for p in painted} >= {"attention", "residual", "patching", "heads"}, painted
    # Every canvas painted but the head map's pattern panel, empty until a head is clicked.
    blank = [p for p in painted if p["width"] == 0 or p["colours"] < 2]
    assert [p["view"] for p in blank] == ["heads"], painted
    assert page.locator(".hooklens[data-error]").count() == 0
    # The stylesheet reached into marimo's shadow roots: in every view's tree, and the
    # AttentionView's thumbnails sit in a row.
    styled = page.locator(".hooklens").evaluate_all(
        "(els) => els.map((el) => !!el.getRootNode().querySelector('style#hooklens-style'))"
    )
    assert len(styled) >= len(VIEWS) and all(styled), styled
    thumbs = page.locator(attention).first.locator(".hl-thumb")
    boxes = [thumbs.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"], boxes
