"""Every CircuitsVis function, exported and opened from file:// (light and dark), and as a
show_code() fragment: what it draws is compared with the data (DOM values, colours)."""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens.vis as cv

from .conftest import GuardedPage
from .views_helpers import dataset, install_alert_trap, value_of_color

ROOT = ".hooklens-standalone"
TOKENS = ["<b>x</b>", " cat", "\n", "</script>", "sat"]
DARK = "body { background: #111; --jp-layout-color0: #111111; --jp-ui-font-color1: #eee; }"


def _open(page: Any, html: str, path: Path, dark: bool) -> None:
    if dark:
        html = html.replace("</head>", f"<style>{DARK}</style></head>")
    path.write_text(html, encoding="utf-8")
    install_alert_trap(page)
    page.goto(path.as_uri())
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{ROOT}')].every(e => e.dataset.renders >= 1)",
        timeout=20_000,
    )


def _drawn(page: Any, selector: str, root: str = ROOT) -> np.ndarray:
    """The values the backgrounds of ``selector`` show, read back through the colour scale
    (``data-colormap``) of the view at ``root``."""
    scale = json.loads(page.locator(root).first.get_attribute("data-colormap"))
    styles = page.eval_on_selector_all(selector, "els => els.map(e => e.style.background)")
    rgb = np.array([[float(c) for c in re.findall(r"[\d.]+", style)[:3]] for style in styles])
    return value_of_color(scale, rgb)


def _close(drawn: np.ndarray, values: np.ndarray, low: float, high: float) -> None:
    """``drawn`` shows ``values`` clipped to ``[min(low, 0), high]``, up to a byte of colour."""
    low = min(low, 0.0)
    want = np.clip(values, low, high)
    np.testing.assert_allclose(drawn, want, atol=(high - low) / 100)


@pytest.fixture(params=["light", "dark"])
def dark(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "dark")


def _check_clean(guarded: GuardedPage) -> None:
    page = guarded.page
    assert page.evaluate("() => window.__alerts") == 0
    assert page.locator(f"{ROOT} b").count() == 0  # token text is never markup
    assert [m for m in guarded.console if "error" in m.lower()] == []


def test_colored_tokens_scale_and_colours(
    tmp_path: Path, guarded_page: GuardedPage, dark: bool
) -> None:
    values = np.array([0.5, -1.0, 2.0, -0.25, 0.0], np.float32)
    page = guarded_page.page
    view = cv.colored_tokens(TOKENS, values, min_value=-2, max_value=4, positive_color="#00ff00")
    _open(page, cv.to_html(view), tmp_path / "ct.html", dark)
    spans = f"{ROOT} .hl-token"
    assert page.locator(spans).all_text_contents() == ["<b>x</b>", "·cat", "⏎", "</script>", "sat"]
    _close(_drawn(page, spans), values, -2, 4)
    scale = json.loads(page.locator(ROOT).first.get_attribute("data-colormap"))
    assert scale["positive"] == [0, 255, 0]  # positive_color
    # Default: CircuitsVis' own range, the values' minimum and maximum.
    default = cv.colored_tokens(TOKENS, values)
    _open(page, cv.to_html(default), tmp_path / "ct2.html", dark)
    _close(_drawn(page, spans), values, -1, 2)
    _check_clean(guarded_page)


def _head_rgb(h: int, n: int) -> np.ndarray:
    r, g, b = colorsys.hls_to_rgb(h / n, 0.5, 0.7)
    return np.round(np.array([r, g, b]) * 255)


def test_attention_patterns_all_heads_toggles_lock(
    tmp_path: Path, guarded_page: GuardedPage, dark: bool
) -> None:
    torch.manual_seed(0)
    n, heads = len(TOKENS), 3
    pattern = torch.softmax(torch.randn(heads, n, n), -1) * torch.tril(torch.ones(n, n))
    view = cv.attention_patterns(tokens=TOKENS, attention=pattern)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "ap.html", dark)
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.drawn")
    background = np.array([17, 17, 17] if dark else [255, 255, 255], float)
    p16 = pattern.to(torch.float16).float().numpy()

    def expected(focus: int, shown: list[int]) -> np.ndarray:
        def cell(q: int, k: int) -> np.ndarray:
            cols = [background + (_head_rgb(h, heads) - background) * p16[h, q, k] for h in shown]
            stack = np.stack([background, *cols])
            pick = np.abs(stack - background).argmax(0)
            return stack[pick, [0, 1, 2]]

        if focus >= 0:
            return np.stack([cell(focus, i) for i in range(n)])
        return np.stack([np.mean([cell(i, k) for k in range(i + 1)], 0) for i in range(n)])

    drawn = dataset(page, ROOT, "drawn")
    assert drawn["focus"] == -1 and drawn["heads"] == [0, 1, 2]
    np.testing.assert_allclose(drawn["rgb"], expected(-1, [0, 1, 2]), atol=1.01)
    # Click (lock) token 3: tokens show the attention from it, and hovering elsewhere keeps it.
    page.locator(f'{ROOT} .hl-token[data-index="3"]').click()
    page.locator(f'{ROOT} .hl-token[data-index="1"]').hover()
    drawn = dataset(page, ROOT, "drawn")
    assert drawn["focus"] == 3
    np.testing.assert_allclose(drawn["rgb"], expected(3, [0, 1, 2]), atol=1.01)
    # Toggle head 1 off.
    page.locator(f'{ROOT} .hl-head-toggle[data-head="1"]').click()
    drawn = dataset(page, ROOT, "drawn")
    assert drawn["heads"] == [0, 2]
    np.testing.assert_allclose(drawn["rgb"], expected(3, [0, 2]), atol=1.01)
    styles = page.eval_on_selector_all(
        f"{ROOT} .hl-token", "els => els.map(e => e.style.background)"
    )
    assert styles[0] == "rgb({}, {}, {})".format(*[round(v) for v in drawn["rgb"][0]])
    _check_clean(guarded_page)


def test_attention_pattern_and_heads_heatmaps(tmp_path: Path, guarded_page: GuardedPage) -> None:
    from .views_helpers import canvas_values

    n = len(TOKENS)
    pattern = torch.softmax(torch.randn(n, n), -1)
    page = guarded_page.page
    _open(
        page,
        cv.attention_pattern(TOKENS, pattern)
        .show_code()
        .join(["<!doctype html><html><head></head><body>", "</body></html>"]),
        tmp_path / "a.html",
        False,
    )
    got = canvas_values(page, f"{ROOT} canvas.hl-heatmap", n, n)
    lower = np.tril(np.ones((n, n), bool))
    np.testing.assert_allclose(got[lower], pattern.numpy()[lower], atol=0.01)
    assert np.isnan(got[~lower]).all()  # CircuitsVis masks the upper triangle by default
    _open(
        page,
        cv.to_html(cv.attention_pattern(TOKENS, pattern, mask_upper_tri=False, max_value=0.5)),
        tmp_path / "b.html",
        False,
    )
    got = canvas_values(page, f"{ROOT} canvas.hl-heatmap", n, n)
    np.testing.assert_allclose(got, np.clip(pattern.numpy(), 0, 0.5), atol=0.01)
    _check_clean(guarded_page)


def test_colored_tokens_multi_buttons_and_hover(
    tmp_path: Path, guarded_page: GuardedPage, dark: bool
) -> None:
    ids = torch.tensor([0, 3, 1, 4, 2])
    logits = torch.randn(5, 6)
    view = cv.visualize_model_performance(ids, TOKENS, logits)
    from hooklens.vis._wire import decode_tensor

    values = decode_tensor(view.values)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "m.html", dark)
    spans = f"{ROOT} .hl-token"
    assert page.locator(spans).count() == 4
    for j in range(3):
        page.locator(f'{ROOT} .hl-value-button[data-index="{j}"]').click()
        page.wait_for_function(
            f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn).selected === {j}"
        )
        col = values[:, j]
        _close(_drawn(page, spans), col, col.min(), col.max())
    page.locator(f'{ROOT} .hl-token[data-index="2"]').hover()
    hover = dataset(page, ROOT, "hover")
    np.testing.assert_allclose(hover["values"], values[2], rtol=1e-6)
    cells = page.locator(f"{ROOT} .hl-multi-readout td").all_text_contents()
    assert cells[0::2] == ["logits", "log_probs", "probs"]
    _check_clean(guarded_page)


def test_token_log_probs_topk_on_hover(
    tmp_path: Path, guarded_page: GuardedPage, dark: bool
) -> None:
    log_probs = torch.log_softmax(torch.randn(5, 9), -1)
    ids = torch.tensor([0, 3, 1, 8, 2])
    view = cv.token_log_probs(ids, log_probs, lambda i: TOKENS[i % 5] + str(i), top_k=4)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "lp.html", dark)
    spans = f"{ROOT} .hl-token"
    correct = log_probs[:-1].gather(-1, ids[1:, None])[:, 0].numpy()
    shown = page.eval_on_selector_all(spans, "els => els.map(e => Number(e.dataset.value))")
    np.testing.assert_allclose(shown, correct, rtol=1e-6)
    _close(_drawn(page, spans), np.exp(correct), 0, 1)
    page.locator(f'{ROOT} .hl-token[data-position="3"]').click()
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.topk")
    topk = dataset(page, ROOT, "topk")
    values, indices = log_probs[2].topk(4)
    assert topk["position"] == 3
    assert topk["tokens"] == [TOKENS[i % 5] + str(i) for i in indices.tolist()]
    np.testing.assert_allclose(topk["log_probs"], values.numpy(), rtol=1e-6)
    assert f"rank {view.correct_rank[2]}" in page.locator(f"{ROOT} .hl-caption").text_content()
    _check_clean(guarded_page)


def test_text_neuron_activations_pickers(
    tmp_path: Path, guarded_page: GuardedPage, dark: bool
) -> None:
    acts = [
        np.random.randn(5, 2, 3).astype(np.float32),
        np.random.randn(2, 2, 3).astype(np.float32),
    ]
    view = cv.text_neuron_activations([TOKENS, ["a", "b"]], acts)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "n.html", dark)
    low, high = min(a.min() for a in acts), max(a.max() for a in acts)
    page.select_option(f"{ROOT} select.hl-pick-first", "1")
    page.select_option(f"{ROOT} select.hl-pick-second", "2")
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn || '{{}}').second === 2"
    )
    spans = f"{ROOT} .hl-colored-tokens .hl-token"
    shown = page.eval_on_selector_all(spans, "els => els.map(e => Number(e.dataset.value))")
    np.testing.assert_allclose(shown, acts[0][:, 1, 2], rtol=1e-6)
    _close(_drawn(page, spans), acts[0][:, 1, 2], low, high)
    page.select_option(f"{ROOT} select.hl-pick-sample", "1")
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn).sample === 1"
    )
    assert page.locator(spans).all_text_contents() == ["a", "b"]
    _check_clean(guarded_page)


def test_topk_tokens_table(tmp_path: Path, guarded_page: GuardedPage, dark: bool) -> None:
    acts = np.random.randn(2, 5, 10).astype(np.float32)
    view = cv.topk_tokens([TOKENS], [acts], max_k=2)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "tk.html", dark)
    page.select_option(f"{ROOT} select.hl-pick-first", "1")
    page.select_option(f"{ROOT} select.hl-pick-page", "1")
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn).page === 1"
    )
    cells = page.eval_on_selector_all(
        f"{ROOT} td.hl-topk-cell",
        "els => els.map(e => [e.dataset.neuron, e.dataset.token, e.dataset.value].map(Number))",
    )
    layer = torch.from_numpy(acts[1])
    top, bottom = layer.topk(2, dim=0), layer.topk(2, dim=0, largest=False)
    want = []
    for rows in [(top, r) for r in range(2)] + [(bottom, r) for r in (1, 0)]:
        result, r = rows
        want += [[c, int(result.indices[r, c]), float(result.values[r, c])] for c in range(8, 10)]
    np.testing.assert_allclose(cells, want, rtol=1e-6)
    _check_clean(guarded_page)


def test_topk_samples_list(tmp_path: Path, guarded_page: GuardedPage, dark: bool) -> None:
    tokens = [[[TOKENS[:3], TOKENS[2:]], [["a"], ["b", "c"]]]]
    acts = [[[[1.0, 2.0, 4.0], [0.5, 1.0, 0.0]], [[3.0], [1.0, 2.0]]]]
    view = cv.topk_samples(tokens, acts)
    page = guarded_page.page
    _open(page, cv.to_html(view), tmp_path / "ts.html", dark)
    spans = f"{ROOT} .hl-sample .hl-token"
    _close(_drawn(page, spans), np.array([1.0, 2.0, 4.0, 0.5, 1.0, 0.0]), 0, 4)
    page.select_option(f"{ROOT} select.hl-pick-first", "1")
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('{ROOT}').dataset.drawn).first === 1"
    )
    page.select_option(f"{ROOT} select.hl-pick-shown", "1")
    assert page.locator(spans).all_text_contents() == ["a"]
    _check_clean(guarded_page)


def test_fragments_share_one_page(tmp_path: Path, guarded_page: GuardedPage) -> None:
    body = (
        cv.examples.hello("<b>reader</b>").show_code() + cv.colored_tokens(["a"], [1.0]).show_code()
    )
    page = guarded_page.page
    _open(
        page,
        f"<!doctype html><html><head></head><body>{body}</body></html>",
        tmp_path / "f.html",
        False,
    )
    assert page.locator(f"{ROOT} .hl-hello").text_content() == "Hello, <b>reader</b>!"
    assert page.locator(f"{ROOT} .hl-token").count() == 1
    _check_clean(guarded_page)
