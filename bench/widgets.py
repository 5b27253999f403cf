"""Widget benchmark (a script, not a test): bytes on the wire and browser timings.

    .venv/bin/python bench/widgets.py            # bytes per value + browser timings
    .venv/bin/python bench/widgets.py --bytes    # bytes per value only (no browser)

Rows (issue 4):
1. bytes per attention value sent to the browser: hooklens (one layer's ``attention`` reply:
   JSON message + binary buffer) vs CircuitsVis (its props are ``json.dumps(tensor.tolist())``;
   computed that way here when ``circuitsvis`` is not importable, and said so).
2. data -> pixels for 16 heads x 512 tokens in headless Chromium (standalone page, the same
   view code; ``drawMs`` = decode + paint of every head, after the bytes are in the page).
3. layer switch on a 24-layer model in a real JupyterLab with a local kernel
   (select -> request -> reply -> drawn), median of several switches.
4. hover -> highlight at 1024 tokens (4 heads, standalone page): the mousemove handler (it only
   keeps the cursor: the view handles a move once per frame, in the frame); the handler plus
   the next frame's work (the view's frame callback: hit test, crosshair, labels, readout,
   tooltip, the token strip's recolouring; then style, layout, paint; no vsync wait); until
   that frame is drawn; and the renderer's main-thread CPU per hover from a Chromium trace.
   ``--compare-bundle OLD.js`` runs only this row, alternating an older build of the bundle
   (e.g. ``git stash; npm run build; cp hooklens/static/widget.js /tmp/old.js; git stash pop;
   npm run build``) with the current one, three rounds each: on a shared machine compare the
   ratio, not the absolute numbers.
5. embedded state: bytes of each view's first-screen replies kept in the widget state (what a
   saved notebook carries; ``HookLensWidget.FIRST_SCREEN_BYTES`` is the budget), on the demo
   model and on a 1024-token attention map.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hooklens as hl  # noqa: E402


def _random_patterns(n_heads: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_heads, n, n, generator=g)
    mask = torch.ones(n, n).tril().bool()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def bytes_per_value(n_heads: int = 16, n: int = 128) -> list[tuple[str, float, str]]:
    pattern = _random_patterns(n_heads, n)
    values = pattern.numel()
    view = hl.vis.attention_heads(attention=pattern, tokens=[f"t{i}" for i in range(n)])
    reply, buffers = view.handle_request(
        {"id": "1-x:1", "method": "attention", "params": {"layer": 0}}
    )
    wire = len(json.dumps(reply)) + sum(len(b) for b in buffers)
    rows = [("hooklens (float16 + header)", wire / values, f"{wire:,} bytes")]
    try:
        from circuitsvis.attention import attention_heads

        html = str(attention_heads(attention=pattern, tokens=[f"t{i}" for i in range(n)]))
        rows.append(("CircuitsVis (installed, whole HTML)", len(html) / values, f"{len(html):,}"))
    except ImportError:
        cv_json = len(json.dumps(pattern.tolist()))
        rows.append(
            (
                "CircuitsVis (not installed: json.dumps(tensor.tolist()))",
                cv_json / values,
                f"{cv_json:,} bytes",
            )
        )
    exported = len(hl.vis.to_html(view))
    rows.append(("hooklens standalone HTML (base64 + bundle)", exported / values, f"{exported:,}"))
    return rows


def embedded_state_sizes() -> list[tuple[str, int]]:
    """Bytes of first-screen replies each view keeps in its widget state."""
    from hooklens.vis._wire import pack_buffers

    def size(view: Any) -> int:
        packed, buffers = pack_buffers(view.embedded_replies)
        return len(json.dumps(packed)) + sum(memoryview(b).nbytes for b in buffers)

    model = hl.demo_model()
    text = "abcdefghijklmnopqrstuvwxyz" * 2
    views = [
        ("AttentionView, demo model, 52 tokens", hl.AttentionView(model, text)),
        ("ResidualView, demo model, 52 tokens", hl.ResidualView(model, text)),
        (
            "PatchingView, demo model (predictions + heatmap)",
            hl.PatchingView(model, clean=text, corrupted=text[:5] + "~" + text[6:],
                            answer=text[6], wrong="~"),
        ),
        (
            "attention_heads, 4 heads x 1024 tokens (over budget: none)",
            hl.vis.attention_heads(_random_patterns(4, 1024), [f"t{i}" for i in range(1024)]),
        ),
    ]  # fmt: skip
    return [(name, size(view)) for name, view in views]


def _browser() -> Any:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    manager = sync_playwright().start()
    browser = manager.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    return manager, browser


def data_to_pixels(browser: Any, tmp: Path, n_heads: int = 16, n: int = 512) -> list[float]:
    view = hl.vis.attention_heads(
        attention=_random_patterns(n_heads, n), tokens=[f"t{i}" for i in range(n)]
    )
    path = hl.export_html(view, tmp / "pixels.html")
    times = []
    for _ in range(5):
        page = browser.new_page()
        page.goto(path.as_uri())
        page.wait_for_function(
            "() => document.querySelector('.hooklens-standalone')?.dataset.drawMs"
        )
        times.append(float(page.locator(".hooklens-standalone").get_attribute("data-draw-ms")))
        page.close()
    return times


HOVER = """async ([n, cell]) => {
  const canvas = document.querySelector('.hooklens-standalone canvas.hl-heatmap');
  const overlay = canvas.parentElement.querySelector('.hl-overlay');
  const box = canvas.getBoundingClientRect();
  const sx = box.width / canvas.width;
  const handler = [], frame = [], render = [];
  for (let i = 0; i < 40; i++) {
    const q = (i * 37) % n, k = (i * 11) % (q + 1);
    // Asked for before the move, so this callback runs first in the next frame: from it to the
    // task after the frame is every frame callback (the view's own), style, layout and paint.
    let t1 = 0;
    const drawn = new Promise((r) => requestAnimationFrame(() => {
      t1 = performance.now();
      setTimeout(r, 0);
    }));
    const t0 = performance.now();
    overlay.dispatchEvent(new MouseEvent('mousemove', { bubbles: true,
      clientX: box.left + (k + 0.5) * cell * sx, clientY: box.top + (q + 0.5) * cell * sx }));
    handler.push(performance.now() - t0);
    await drawn;
    frame.push(performance.now() - t0);
    render.push(handler[i] + performance.now() - t1);  // our JS + style/layout/paint, no vsync wait
  }
  return { handler, frame, render };
}"""


def _main_thread_cpu_ms(trace: Path) -> float:
    """CPU time (not wall time: robust to a busy machine) of the renderer's main-thread tasks in
    a Chromium trace; the main thread is the one that ran the most JavaScript calls."""
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    calls: dict[Any, int] = {}
    for e in events:
        if e.get("name") == "FunctionCall":
            calls[e["tid"]] = calls.get(e["tid"], 0) + 1
    main = max(calls, key=lambda tid: calls[tid])
    tasks = [e for e in events if e.get("tid") == main and e.get("ph") == "X"]
    top = "ThreadControllerImpl::RunTask"  # the scheduler's top-level task ("toplevel")
    return sum(e.get("tdur", e.get("dur", 0)) for e in tasks if e["name"] == top) / 1000


def hover_latency(browser: Any, tmp: Path, n: int = 1024) -> dict[str, list[float]]:
    view = hl.vis.attention_heads(
        attention=_random_patterns(4, n), tokens=[f"t{i}" for i in range(n)]
    )
    path = hl.export_html(view, tmp / "hover.html")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.hooklens-standalone')?.dataset.drawMs")
    cell = int(page.locator("canvas.hl-heatmap").get_attribute("data-cell"))
    trace = tmp / "hover-trace.json"
    browser.start_tracing(page=page, path=str(trace), categories=["devtools.timeline", "toplevel"])
    result: dict[str, list[float]] = page.evaluate(HOVER, [n, cell])
    browser.stop_tracing()
    result["cpu"] = [_main_thread_cpu_ms(trace) / len(result["handler"])]
    page.close()
    return result


def compare_hover(browser: Any, tmp: Path, old: Path, rounds: int = 3) -> None:
    """Main-thread CPU per hover, ``old`` bundle vs the built one, alternating in one run."""
    from hooklens.vis import _widget

    built = _widget.BUNDLE_PATH
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    try:
        for _ in range(rounds):
            for name, path in (("old", old), ("new", built)):
                _widget.BUNDLE_PATH = path
                cpu[name].append(hover_latency(browser, tmp)["cpu"][0])
    finally:
        _widget.BUNDLE_PATH = built
    for name, label in (("old", f"{old.name} (given)"), ("new", "built bundle")):
        _row(f"hover: main-thread CPU per hover, {label}", cpu[name])
    ratio = statistics.median(cpu["new"]) / statistics.median(cpu["old"])
    print(f"  {'hover: built / given (medians)':62s} {ratio:6.2f}")


def layer_switch(browser: Any, tmp: Path, n_layers: int = 24, n: int = 128) -> list[float]:
    """Median select -> drawn time in JupyterLab on a 24-layer, 16-head random GPT-2."""
    from tests.browser.conftest import _start_server, _stop_server, run_all_cells

    process, server = _start_server(tmp / "lab", "lab")
    try:
        cells = [
            "import torch, transformers, hooklens as hl\n"
            "torch.manual_seed(0)\n"
            f"cfg = transformers.GPT2Config(n_layer={n_layers}, n_head=16, n_embd=256, "
            f"n_positions={n + 8}, vocab_size=512)\n"
            "model = hl.HookedModel(transformers.GPT2LMHeadModel(cfg).eval())\n"
            f"ids = torch.randint(0, 512, (1, {n}))\n"
            "view = hl.AttentionView(model, ids)\nview",
        ]
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        run_all_cells(page, server, server.write_notebook("switch.ipynb", cells))
        root = '.hooklens[data-view="attention"]'
        page.wait_for_selector(f"{root}[data-draw-ms]", timeout=180_000)
        times = []
        for layer in range(1, n_layers):
            t = page.evaluate(
                """async ([root, layer]) => {
                  const el = document.querySelector(root);
                  const select = el.querySelector('select.hl-layer-select');
                  const t0 = performance.now();
                  select.value = String(layer);
                  select.dispatchEvent(new Event('change'));
                  while (el.dataset.layer !== String(layer)) {
                    await new Promise(r => setTimeout(r, 1));
                  }
                  return performance.now() - t0;
                }""",
                [root, layer],
            )
            times.append(float(t))
        context.close()
        return times
    finally:
        _stop_server(process)


def _row(label: str, values: list[float]) -> None:
    median = statistics.median(values)
    print(f"  {label:62s} median {median:6.1f} ms (min {min(values):.1f}, max {max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bytes", action="store_true", help="only the bytes-per-value rows")
    parser.add_argument(
        "--compare-bundle",
        type=Path,
        metavar="OLD.js",
        help="only the hover row: an older build of the bundle vs the built one, side by side",
    )
    args = parser.parse_args()
    if args.compare_bundle:
        manager, browser = _browser()
        try:
            with tempfile.TemporaryDirectory() as folder:
                compare_hover(browser, Path(folder), args.compare_bundle.resolve())
        finally:
            browser.close()
            manager.stop()
        return
    print("bytes per attention value (16 heads x 128 tokens, one layer)")
    for name, per_value, total in bytes_per_value():
        print(f"  {name:58s} {per_value:6.2f} B/value   ({total})")
    print(f"embedded first screen (budget {hl.vis.AttentionView.FIRST_SCREEN_BYTES:,} bytes)")
    for name, nbytes in embedded_state_sizes():
        print(f"  {name:58s} {nbytes:>10,} bytes")
    if args.bytes:
        return
    manager, browser = _browser()
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            print("headless Chromium (/usr/bin/chromium), standalone pages unless said")
            _row(
                "data -> pixels, 16 heads x 512 tokens (goal < 300 ms)",
                data_to_pixels(browser, tmp),
            )
            hover = hover_latency(browser, tmp)
            _row("hover: handler, 1024 tokens", hover["handler"])
            _row("hover: handler + style/layout/paint (goal < 16 ms)", hover["render"])
            _row("hover: until next frame drawn (incl. vsync wait)", hover["frame"])
            print(f"  {'hover: renderer main-thread CPU per hover (trace)':62s} "
                  f"{hover['cpu'][0]:6.1f} ms")  # fmt: skip
            _row(
                "layer switch, 24 layers, JupyterLab kernel (goal < 200 ms)",
                layer_switch(browser, tmp),
            )
    finally:
        browser.close()
        manager.stop()


if __name__ == "__main__":
    main()
