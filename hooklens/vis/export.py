"""Standalone HTML: one self-contained file per view that renders with no kernel and no network.

The file holds three things, all inline:

1. the view's synced state and the replies to every request the view can make
   (:meth:`HookLensWidget.static_requests`), as JSON in
   ``<script type="application/hooklens+json">`` with binary buffers base64-encoded and ``<``,
   ``>``, ``&`` escaped so no string can end the script element;
2. the same ESM bundle the live widget loads, in a ``<script type="module">`` with ``</script``
   and ``<!--`` escaped (``<\\/script``, ``<\\!--``, which mean the same inside JS strings);
3. nothing else: the bundle finds the JSON, builds an in-page stand-in for the widget model that
   answers requests from the inlined replies (``js/standalone.ts``), and runs the same view code.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from ._widget import HookLensWidget, bundle_source
from ._wire import pack_buffers, request_key, unpack_buffers

# Not view state (``embedded_replies`` is inlined as the page's replies instead).
_NOT_SYNCED = {"layout", "tabbable", "tooltip", "comm", "keys", "log", "embedded_replies"}


def _view_state(widget: HookLensWidget) -> dict[str, Any]:
    keys = [k for k in widget.keys if not k.startswith("_") and k not in _NOT_SYNCED]
    return dict(widget.get_state(keys))


def export_payload(widget: HookLensWidget, **options: Any) -> dict[str, Any]:
    """The JSON-able data a standalone page needs: state, replies, base64 buffers.

    ``options`` go to the view's ``static_requests`` (e.g. ``layers=[0, 5]`` for attention).
    """
    buffers: list[memoryview] = []
    requests = list(widget.static_requests(**options))  # checks the options first
    state, _ = pack_buffers({**_view_state(widget), **widget.export_state(**options)}, buffers)
    responses: dict[str, Any] = {}
    for method, params in requests:
        reply, reply_buffers = widget.handle_request(
            {"id": None, "method": method, "params": params}
        )
        # Re-pack into the page's one buffer list, so placeholders index the page's buffers.
        packed, _ = pack_buffers(unpack_buffers(reply, reply_buffers), buffers)
        responses[request_key(method, params)] = packed
    return {
        "version": 1,
        "state": state,
        "responses": responses,
        "buffers": [base64.b64encode(b).decode("ascii") for b in buffers],
    }


def _json_for_script(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_SCRIPT_CLOSE = re.compile(r"</(script)", re.IGNORECASE)


def _js_for_script(source: str) -> str:
    """JS source that cannot end or confuse its ``<script>`` element."""
    return _SCRIPT_CLOSE.sub(r"<\\/\1", source).replace("<!--", "<\\!--")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<meta name="color-scheme" content="light dark">
<style>body {{ margin: 16px; font-family: system-ui, sans-serif; background: #fff; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #1e1e1e; }} }}</style>
</head>
<body>
<div class="hooklens-standalone"></div>
<script type="application/hooklens+json">{data}</script>
<script type="module">{bundle}</script>
</body>
</html>
"""


def to_html(widget: HookLensWidget, title: str | None = None, **options: Any) -> str:
    """One self-contained HTML page showing ``widget`` (no kernel, no network needed).

    ``options`` narrow what is inlined, e.g. ``layers=[0, 5]`` for an attention view (the page
    then says that other layers were not exported).
    """
    payload = export_payload(widget, **options)
    return _PAGE.format(
        title=html.escape(title or f"hooklens: {widget.view}"),
        data=_json_for_script(payload),
        bundle=_js_for_script(bundle_source()),
    )


_FRAGMENT = """<div class="hooklens-standalone"></div>
<script type="application/hooklens+json">{data}</script>
<script type="module">{bundle}</script>
"""


def to_fragment(widget: HookLensWidget, **options: Any) -> str:
    """A self-contained HTML fragment showing ``widget``, to paste into any page.

    CircuitsVis' ``show_code()``: the same data and bundle as :func:`to_html`, without the page
    around them. Several fragments may share one page; each renders into its own ``<div>``.
    """
    payload = export_payload(widget, **options)
    return _FRAGMENT.format(data=_json_for_script(payload), bundle=_js_for_script(bundle_source()))


def export_html(
    view: HookLensWidget, path: str | Path, title: str | None = None, **options: Any
) -> Path:
    """Write ``view`` as a standalone HTML file at ``path``; returns the path.

    ``options`` as in :func:`to_html` (e.g. ``layers=[0, 5]``).
    """
    target = Path(path)
    target.write_text(to_html(view, title=title, **options), encoding="utf-8")
    return target
