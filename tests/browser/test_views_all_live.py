"""Every CircuitsVis function, HeadMap, LogitAttributionView and PatchingView (opening on its
attribution estimates) live in one notebook per host: Notebook 7 in the light theme, JupyterLab
in the dark one. What each draws is compared with the data (canvas pixels through the view's
colour scale, token backgrounds, DOM values), and requests go through the kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._wire import decode_tensor
from tests.vis.tiny import TEXT, tiny_gpt2

from .conftest import GuardedPage, JupyterServer, run_all_cells
from .test_circuitsvis import _close, _drawn, _head_rgb
from .test_heads_views import _click_cell
from .test_patching_estimates import _estimate
from .test_patching_view import CLEAN, CORRUPTED, _tiny_model
from .test_screenshots import _shoot
from .views_helpers import assert_canvas_shows, dataset, hover_cell, install_alert_trap

# The data, run both in the kernel and here (seeded: the same arrays in both processes).
DATA = r"""
import numpy as np
import torch
rng = np.random.default_rng(0)
TOKENS = ["<b>x</b>", " cat", "\n", "</script>", "sat", " on"]
N = len(TOKENS)
PATTERN = torch.from_numpy(rng.standard_normal((3, N, N))).float().softmax(-1).tril()
VALUES = rng.standard_normal(N).astype(np.float32)
MULTI = rng.standard_normal((N, 3)).astype(np.float32)
IDS = torch.tensor([0, 3, 1, 4, 2, 5])
LOGITS = torch.from_numpy(rng.standard_normal((N, 7))).float()
LOG_PROBS = torch.from_numpy(rng.standard_normal((N, 9))).float().log_softmax(-1)
ACTS = [rng.standard_normal((N, 2, 3)).astype(np.float32),
        rng.standard_normal((2, 2, 3)).astype(np.float32)]
TOPK_ACTS = rng.standard_normal((2, N, 10)).astype(np.float32)
SAMPLE_TOKENS = [[[TOKENS[:3], TOKENS[2:]], [["a"], ["b", "c"]]]]
SAMPLE_ACTS = [[[[1.0, 2.0, 4.0], [0.5, 1.0, 0.0, 3.0]], [[3.0], [1.0, 2.0]]]]
"""
REPEATED = f"{TEXT} {TEXT}"  # repeated tokens: every head has an induction score
# One cell per view, in the page's order.
VIEWS = {
    "attention_heads": "cv.attention.attention_heads(attention=PATTERN, tokens=TOKENS)",
    "attention_patterns": "cv.attention.attention_patterns(tokens=TOKENS, attention=PATTERN)",
    "attention_pattern": "cv.attention.attention_pattern(TOKENS, PATTERN[1])",
    "colored_tokens": "cv.tokens.colored_tokens(TOKENS, VALUES)",
    "colored_tokens_multi": "cv.tokens.colored_tokens_multi(TOKENS, MULTI, ['a', 'b', 'c'])",
    "visualize_model_performance": "cv.tokens.visualize_model_performance(IDS, TOKENS, LOGITS)",
    "text_neuron_activations": (
        "cv.activations.text_neuron_activations([TOKENS, ['a', 'b']], ACTS)"
    ),
    "topk_tokens": "cv.topk_tokens([TOKENS], [TOPK_ACTS], max_k=2)",
    "topk_samples": "cv.topk_samples(SAMPLE_TOKENS, SAMPLE_ACTS)",
    "token_log_probs": (
        "cv.logits.token_log_probs(IDS, LOG_PROBS, lambda i: TOKENS[i % N] + str(i), top_k=4)"
    ),
    "head_map": f"hl.vis.HeadMap(heads_model, {REPEATED!r})",
    "logit_attribution": (
        f"hl.vis.LogitAttributionView(heads_model, {TEXT!r}, answer='Dublin', wrong='Paris')"
    ),
    "patching": (
        f"hl.PatchingView(patch_model, clean={CLEAN!r}, corrupted={CORRUPTED!r}, "
        "answer='mary', wrong='john')"
    ),
}
TAG = """(names) => {
  const roots = [...document.querySelectorAll('.hooklens')];
  roots.forEach((el, i) => { el.dataset.case = names[i] ?? 'extra'; });
  return roots.length;
}"""


def _root(case: str) -> str:
    return f'.hooklens[data-case="{case}"]'


def _wait(page: Any, case: str, condition: str, timeout: int = 60_000) -> None:
    """Wait until ``condition`` (JS over ``d``, the view's dataset) holds."""
    page.wait_for_function(
        f"() => {{ const d = document.querySelector('{_root(case)}')?.dataset;"
        f" return d && ({condition}); }}",
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("host", "theme"), [("notebook_light", "light"), ("lab_dark", "dark")]
)  # fmt: skip
def test_every_view_live(
    host: str,
    theme: str,
    guarded_page: GuardedPage,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    server: JupyterServer = request.getfixturevalue(host)
    heads_model = tiny_gpt2(tmp_path / "heads", n_layers=3, n_heads=4)  # the kernel loads these
    patch_model = _tiny_model(tmp_path / "patching")
    setup = (
        DATA + "import hooklens as hl\nimport hooklens.vis as cv\n"
        f"heads_model = hl.HookedModel.from_pretrained({str(tmp_path / 'heads')!r})\n"
        f"patch_model = hl.HookedModel.from_pretrained({str(tmp_path / 'patching')!r})"
    )
    name = server.write_notebook("all_views.ipynb", [setup, *VIEWS.values()])
    page: Any = guarded_page.page
    install_alert_trap(page)
    run_all_cells(page, server, name)  # checks the page shows `theme`
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.hooklens')].filter(e => e.dataset.renders)"
        f".length === {len(VIEWS)}",
        timeout=180_000,
    )
    assert page.evaluate(TAG, list(VIEWS)) == len(VIEWS)
    data: dict[str, Any] = {}
    exec(DATA, data)  # the same seeded data as the kernel's
    dark = theme == "dark"

    def on_theme(case: str) -> None:
        """The view's colours are blended towards the host's background."""
        scale = json.loads(page.locator(_root(case)).get_attribute("data-colormap"))
        assert (sum(scale["background"]) < 200) == dark, (case, scale["background"])

    tokens, n = data["TOKENS"], data["N"]
    pattern16 = data["PATTERN"].to(torch.float16).float().numpy()

    # attention_heads: head 0's pattern, masked above the diagonal; hover reads the value.
    heat = f"{_root('attention_heads')} canvas.hl-heatmap"
    scale = assert_canvas_shows(page, heat, pattern16[0], mask_upper=True)
    assert (sum(scale["background"]) < 200) == dark
    hover_cell(page, heat, 4, 2)
    hover = dataset(page, _root("attention_heads"), "hover")
    assert (hover["q"], hover["k"]) == (4, 2)
    assert abs(hover["value"] - pattern16[0, 4, 2]) < 1e-6

    # attention_patterns: every head at once, a colour per head; lock token 3, hide head 1.
    root = _root("attention_patterns")
    _wait(page, "attention_patterns", "d.drawn")
    background = np.array(
        page.evaluate(f"() => JSON.parse(document.querySelector('{_root('colored_tokens')}')"
                      ".dataset.colormap).background"),
        float,
    )  # fmt: skip

    def expected(focus: int, shown: list[int]) -> np.ndarray:
        def cell(q: int, k: int) -> np.ndarray:
            cols = [background + (_head_rgb(h, 3) - background) * pattern16[h, q, k] for h in shown]
            stack = np.stack([background, *cols])
            return stack[np.abs(stack - background).argmax(0), [0, 1, 2]]

        if focus >= 0:
            return np.stack([cell(focus, i) for i in range(n)])
        return np.stack([np.mean([cell(i, k) for k in range(i + 1)], 0) for i in range(n)])

    np.testing.assert_allclose(
        dataset(page, root, "drawn")["rgb"], expected(-1, [0, 1, 2]), atol=1.01
    )
    page.locator(f'{root} .hl-token[data-index="3"]').click()
    page.locator(f'{root} .hl-head-toggle[data-head="1"]').click()
    _wait(page, "attention_patterns", "JSON.parse(d.drawn).heads.length === 2")
    drawn = dataset(page, root, "drawn")
    assert drawn["focus"] == 3
    np.testing.assert_allclose(drawn["rgb"], expected(3, [0, 2]), atol=1.01)

    # attention_pattern: one head's heatmap, CircuitsVis' mask.
    assert_canvas_shows(
        page, f"{_root('attention_pattern')} canvas.hl-heatmap", pattern16[1], mask_upper=True
    )

    # colored_tokens: each token's background is its value, on CircuitsVis' default range.
    spans = f"{_root('colored_tokens')} .hl-token"
    values = data["VALUES"]
    assert page.locator(spans).all_text_contents() == ["<b>x</b>", "·cat", "⏎", "</script>",
                                                       "sat", "·on"]  # fmt: skip
    _close(_drawn(page, spans, _root("colored_tokens")), values, values.min(), values.max())
    on_theme("colored_tokens")

    # colored_tokens_multi: a button per value set.
    root = _root("colored_tokens_multi")
    multi = data["MULTI"]
    page.locator(f'{root} .hl-value-button[data-index="1"]').click()
    _wait(page, "colored_tokens_multi", "JSON.parse(d.drawn).selected === 1")
    _close(
        _drawn(page, f"{root} .hl-token", root), multi[:, 1], multi[:, 1].min(), multi[:, 1].max()
    )
    on_theme("colored_tokens_multi")

    # visualize_model_performance: logits / log probs / probs of the next token.
    root = _root("visualize_model_performance")
    logits, ids = data["LOGITS"], data["IDS"]
    local_view = hl.vis.visualize_model_performance(ids, tokens, logits)
    performance = decode_tensor(local_view.values)  # (tokens - 1, [logits, log probs, probs])
    column = performance[:, 0]
    _close(_drawn(page, f"{root} .hl-token", root), column, column.min(), column.max())
    page.locator(f'{root} .hl-token[data-index="2"]').hover()
    np.testing.assert_allclose(dataset(page, root, "hover")["values"], performance[2], rtol=1e-6)
    want = logits[:-1].gather(-1, ids[1:, None])[:, 0].numpy()  # the logits of the next tokens
    np.testing.assert_allclose(performance[:, 0], want, rtol=1e-6)

    # text_neuron_activations: picking a layer and neuron asks the kernel for its values.
    root = _root("text_neuron_activations")
    acts = data["ACTS"]
    page.select_option(f"{root} select.hl-pick-first", "1")
    page.select_option(f"{root} select.hl-pick-second", "2")
    _wait(page, "text_neuron_activations", "d.drawn && JSON.parse(d.drawn).second === 2")
    spans = f"{root} .hl-colored-tokens .hl-token"
    shown = page.eval_on_selector_all(spans, "els => els.map(e => Number(e.dataset.value))")
    np.testing.assert_allclose(shown, acts[0][:, 1, 2], rtol=1e-6)
    low, high = min(a.min() for a in acts), max(a.max() for a in acts)
    _close(_drawn(page, spans, root), acts[0][:, 1, 2], low, high)

    # topk_tokens: the table of the top and bottom activations of a page of neurons.
    root = _root("topk_tokens")
    page.select_option(f"{root} select.hl-pick-first", "1")
    _wait(page, "topk_tokens", "JSON.parse(d.drawn).first === 1")
    cells = page.eval_on_selector_all(
        f"{root} td.hl-topk-cell",
        "els => els.map(e => [e.dataset.neuron, e.dataset.token, e.dataset.value].map(Number))",
    )
    layer = torch.from_numpy(data["TOPK_ACTS"][1])
    top, bottom = layer.topk(2, dim=0), layer.topk(2, dim=0, largest=False)
    columns = sorted({int(c[0]) for c in cells})
    want_cells = []
    for result, r in [(top, 0), (top, 1), (bottom, 1), (bottom, 0)]:
        want_cells += [[c, int(result.indices[r, c]), float(result.values[r, c])] for c in columns]
    np.testing.assert_allclose(cells, want_cells, rtol=1e-6)

    # topk_samples: each sample's tokens tinted by its activations.
    root = _root("topk_samples")
    _close(
        _drawn(page, f"{root} .hl-sample .hl-token", root),
        np.array([1.0, 2.0, 4.0, 0.5, 1.0, 0.0, 3.0]), 0, 4,
    )  # fmt: skip

    # token_log_probs: each token's log prob; a click asks the kernel for the top-k there.
    root = _root("token_log_probs")
    lp = data["LOG_PROBS"]
    correct = lp[:-1].gather(-1, ids[1:, None])[:, 0].numpy()
    shown = page.eval_on_selector_all(
        f"{root} .hl-token", "els => els.map(e => Number(e.dataset.value))"
    )
    np.testing.assert_allclose(shown, correct, rtol=1e-6)
    _close(_drawn(page, f"{root} .hl-token", root), np.exp(correct), 0, 1)
    page.locator(f'{root} .hl-token[data-position="3"]').click()
    _wait(page, "token_log_probs", "d.topk")
    topk = dataset(page, root, "topk")
    best, indices = lp[2].topk(4)
    assert topk["tokens"] == [tokens[i % n] + str(i) for i in indices.tolist()]
    np.testing.assert_allclose(topk["log_probs"], best.numpy(), rtol=1e-6)

    # HeadMap: the map is the induction scores; a click fetches that head's pattern.
    root = _root("head_map")
    local = hl.vis.HeadMap(heads_model, REPEATED)
    induction = decode_tensor(local.call("scores", {"kind": "induction"})["values"])
    assert np.isfinite(induction).all()
    map_canvas = f"{root} .hl-heads > .hl-plot-box canvas.hl-heatmap"
    assert (sum(assert_canvas_shows(page, map_canvas, induction)["background"]) < 200) == dark
    page.locator(map_canvas).first.scroll_into_view_if_needed()
    _click_cell(page, map_canvas, 1, 3)
    _wait(page, "head_map", "d.pattern")
    assert dataset(page, root, "pattern") == {"layer": 1, "head": 3}
    head_pattern = decode_tensor(local.call("pattern", {"layer": 1, "head": 3})["pattern"])
    assert_canvas_shows(
        page, f"{root} .hl-head-pattern canvas.hl-heatmap", head_pattern, mask_upper=True
    )

    # LogitAttributionView: per head and per component, for Dublin against Paris.
    root = _root("logit_attribution")
    _wait(page, "logit_attribution", "d.layers")
    dla = hl.vis.LogitAttributionView(heads_model, TEXT, answer="Dublin", wrong="Paris")
    scores = decode_tensor(dla.call("scores", {"kind": "dla"})["values"])
    scale = assert_canvas_shows(page, f"{root} .hl-heads > .hl-plot-box canvas.hl-heatmap", scores)
    assert scale["kind"] == "diverging" and (sum(scale["background"]) < 200) == dark
    layers = dla.call("layers")
    np.testing.assert_allclose(
        dataset(page, root, "layers")["values"], decode_tensor(layers["values"]), rtol=1e-6
    )

    # PatchingView opens on the attribution estimates of every resid_pre cell.
    root = _root("patching")
    _wait(page, "patching", "d.heatmap", timeout=120_000)
    estimate = _estimate(patch_model, "resid_pre")
    heatmap = dataset(page, root, "heatmap")
    assert heatmap["filled"] == 0 and heatmap["estimated"] == estimate.size
    scale = assert_canvas_shows(page, f"{root} canvas.hl-heatmap", estimate)
    assert (sum(scale["background"]) < 200) == dark
    assert (
        "attribution-patching estimates" in page.locator(f"{root} .hl-legend").first.text_content()
    )

    # Nothing failed, nothing ran from token text.
    assert page.locator(".hooklens[data-error]").count() == 0
    assert page.locator(".hooklens b").count() == 0
    assert page.evaluate("() => window.__alerts") == 0
    if dark:  # the light ones are test_screenshots_circuitsvis' cv_*.png
        page.mouse.move(0, 0)
        for case in VIEWS:
            _shoot(page, _root(case), f"dark_{case}.png")
