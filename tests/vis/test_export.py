"""Standalone HTML: self-contained, no network loads, nothing that can end a script early."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._widget import bundle_source
from hooklens.vis._wire import request_key

from .tiny import IMG, NEWLINE, SCRIPT

NETWORK_LOAD = re.compile(r"https?://", re.IGNORECASE)
IDS = torch.tensor([[2, IMG, SCRIPT, NEWLINE]])


def _payload(html: str) -> dict:
    match = re.search(r'<script type="application/hooklens\+json">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_bundle_loads_nothing_from_the_network() -> None:
    source = bundle_source()
    assert NETWORK_LOAD.findall(source) == []
    assert "import(" not in source.replace('import("', "")  # no dynamic imports of URLs


def test_attention_export_is_self_contained(gpt2: Any, tmp_path: Path) -> None:
    view = hl.AttentionView(gpt2, IDS)
    path = hl.export_html(view, tmp_path / "attention.html")
    html = path.read_text(encoding="utf-8")
    assert NETWORK_LOAD.findall(html) == []
    assert not re.search(r"<(link|img|iframe)\b", html.split("<script", 1)[0])
    # Exactly our three script elements: the tokens' "</script>" did not close any of them.
    assert html.lower().count("</script") == 2
    assert "<img/src=x" not in html
    payload = _payload(html)
    assert payload["state"]["tokens"][2] == "</script>"
    assert set(payload["responses"]) == {request_key("attention", {"layer": i}) for i in range(3)}
    reply = payload["responses"][request_key("attention", {"layer": 1})]
    index = reply["result"]["pattern"]["data"]["$buffer"]
    values = np.frombuffer(base64.b64decode(payload["buffers"][index]), dtype=np.float16)
    np.testing.assert_allclose(values.reshape(view.pattern(1).shape), view.pattern(1))


def test_residual_export_inlines_every_cell(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, "The capital", k=3)
    payload = _payload(hl.vis.to_html(view))
    keys = set(payload["responses"])
    assert request_key("grid", {}) in keys
    assert len(keys) == 1 + 4 * 3  # grid + (n_layers + 1) x pos top-k cells
    with pytest.raises(TypeError, match="ResidualView export takes no options, got \\['layers'\\]"):
        hl.vis.to_html(view, layers=[0])


def test_colored_tokens_export(tmp_path: Path) -> None:
    html = hl.vis.to_html(hl.vis.colored_tokens(["a", "</script>"], [1, 2]))
    payload = _payload(html)
    assert payload["state"]["view"] == "colored_tokens"
    assert payload["responses"] == {}
    assert NETWORK_LOAD.findall(html) == []


def test_attention_export_of_some_layers(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, "The capital")
    payload = _payload(hl.vis.to_html(view, layers=[2]))
    assert set(payload["responses"]) == {request_key("attention", {"layer": 2})}
    # The page lists only the layer it holds and starts on it.
    assert payload["state"]["held_layers"] == [2] and payload["state"]["layer"] == 2
    assert view.layer == 0 and view.held_layers == []  # the live view is unchanged
    with pytest.raises(TypeError, match="takes the options `layers=`, got \\['head'\\]"):
        hl.vis.to_html(view, head=1)


def test_embed_puts_replies_in_the_widget_state(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, "The capital")
    # The first screen (the shown layer) is in the state from the start: it is small.
    assert list(view.embedded_replies) == [request_key("attention", {"layer": 0})]
    view.embed(layers=[1])
    (key,) = view.embedded_replies
    assert key == request_key("attention", {"layer": 1})
    state = view.get_state(["embedded_replies"])
    data = state["embedded_replies"][key]["result"]["pattern"]["data"]
    assert isinstance(data, memoryview) and len(data) == view.pattern(1).nbytes
    # The standalone page carries replies separately, not twice.
    assert "embedded_replies" not in _payload(hl.vis.to_html(view))["state"]


def test_first_screen_follows_the_view_and_its_budget(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, "The capital")
    view.layer = 2
    assert list(view.embedded_replies) == [request_key("attention", {"layer": 2})]
    view.FIRST_SCREEN_BYTES = view.pattern(2).nbytes - 1  # one byte short
    assert view.refresh_first_screen() == 0 and view.embedded_replies == {}
    residual = hl.ResidualView(gpt2, "The capital", k=3)
    assert set(residual.embedded_replies) == {request_key("grid", {})}
    residual.row, residual.position = 1, 2
    assert request_key("topk", {"row": 1, "position": 2}) in residual.embedded_replies


def test_default_export_keeps_to_its_budget(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, "The capital", layer=2)
    view.EXPORT_BYTES = 2 * view.pattern(0).nbytes  # room for two of the three layers
    with pytest.warns(UserWarning, match=r"holds layers \[1, 2\] only.*layers=\"all\""):
        payload = _payload(hl.vis.to_html(view))
    assert payload["state"]["held_layers"] == [1, 2] and payload["state"]["layer"] == 2
    assert set(payload["responses"]) == {request_key("attention", {"layer": i}) for i in (1, 2)}
    everything = _payload(hl.vis.to_html(view, layers="all"))
    assert len(everything["responses"]) == 3 and everything["state"]["held_layers"] == [0, 1, 2]
    with pytest.raises(ValueError, match="layers"):
        hl.vis.to_html(view, layers="some")
