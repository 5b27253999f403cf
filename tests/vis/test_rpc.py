"""The request/response channel, without a browser."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hooklens.vis._widget import HookLensWidget, RpcError, rpc_method
from hooklens.vis._wire import (
    RESPONSE,
    decode_tensor,
    encode_tensor,
    pack_buffers,
    request_key,
    unpack_buffers,
)


class Echo(HookLensWidget):
    @rpc_method("double")
    def _double(self, values: list[float]) -> dict[str, Any]:
        return {"doubled": encode_tensor(np.asarray(values) * 2), "n": len(values)}

    @rpc_method("fail")
    def _fail(self) -> None:
        raise RpcError("nothing to see")

    @rpc_method("crash")
    def _crash(self, x: int) -> int:
        return 1 // x


def _sent(widget: HookLensWidget, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    sent: list[tuple[Any, Any]] = []
    monkeypatch.setattr(
        widget, "send", lambda content, buffers=None: sent.append((content, buffers))
    )
    return sent


def test_pack_and_unpack_buffers_round_trip() -> None:
    value = {"a": encode_tensor(np.arange(3, dtype=np.float32)), "b": [1, b"xy", {"c": "d"}]}
    packed, buffers = pack_buffers(value)
    assert packed["a"]["data"] == {"$buffer": 0}
    assert packed["b"][1] == {"$buffer": 1}
    assert [bytes(b) for b in buffers][1] == b"xy"
    restored = unpack_buffers(packed, buffers)
    assert decode_tensor(restored["a"]).tolist() == [0, 1, 2]
    assert bytes(restored["b"][1]) == b"xy"


def test_request_key_is_canonical() -> None:
    assert request_key("topk", {"row": 1, "position": 2}) == 'topk?{"position":2,"row":1}'


def test_reply_carries_id_and_binary_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = Echo()
    sent = _sent(widget, monkeypatch)
    # Through ipywidgets' own dispatch, which is what a front-end message reaches: proves the
    # handler is registered with on_msg (not by overriding an ipywidgets internal).
    widget._handle_custom_msg(
        {"kind": "hl:request", "id": "c1:7", "method": "double", "params": {"values": [1, 2.5]}},
        [],
    )
    ((content, buffers),) = sent
    assert content["kind"] == RESPONSE and content["id"] == "c1:7" and content["ok"] is True
    assert content["result"]["doubled"]["data"] == {"$buffer": 0}
    assert content["result"]["n"] == 2
    decoded = decode_tensor(unpack_buffers(content["result"], buffers)["doubled"])
    assert decoded.tolist() == [2, 5]


def test_errors_are_replies_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = Echo()
    sent = _sent(widget, monkeypatch)
    for method, params in [("fail", {}), ("crash", {"x": 0}), ("nope", {}), ("double", {"v": 1})]:
        widget._on_rpc_message(
            widget, {"kind": "hl:request", "id": method, "method": method, "params": params}, []
        )
    replies = {content["id"]: content for content, _ in sent}
    assert replies["fail"]["error"] == {"type": "RpcError", "message": "nothing to see"}
    assert replies["crash"]["error"]["type"] == "ZeroDivisionError"
    assert "no request 'nope'" in replies["nope"]["error"]["message"]
    assert "double" in replies["nope"]["error"]["message"]
    assert replies["double"]["error"]["type"] == "TypeError"
    assert all(reply["ok"] is False for reply in replies.values())
    assert widget.rpc_error.startswith("TypeError")


def test_other_custom_messages_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = Echo()
    sent = _sent(widget, monkeypatch)
    widget._on_rpc_message(widget, {"kind": "something-else"}, [])
    widget._on_rpc_message(widget, "text", [])
    assert sent == []


def test_call_runs_the_same_handler() -> None:
    assert Echo().call("double", {"values": [3]})["n"] == 1
    assert set(Echo.rpc_methods) == {"double", "fail", "crash"}


class Louder(Echo):
    """A subclass: inherits the handlers, overrides one, adds one."""

    @rpc_method("double")
    def _quadruple(self, values: list[float]) -> dict[str, Any]:
        return {"n": 4 * len(values)}

    @rpc_method("hello")
    def _hello(self) -> str:
        return "hi"


def test_handlers_are_collected_once_per_class() -> None:
    assert Louder.rpc_methods == {
        "double": "_quadruple", "fail": "_fail", "crash": "_crash", "hello": "_hello"
    }  # fmt: skip
    assert Echo.rpc_methods["double"] == "_double"  # the base class keeps its own table
    assert Louder().call("double", {"values": [1]}) == {"n": 4}
    assert HookLensWidget.rpc_methods == {}


def test_export_options_are_checked_in_one_place() -> None:
    with pytest.raises(TypeError, match="Echo export takes no options, got \\['layers'\\]"):
        Echo().static_requests(layers=[0])
    assert list(Echo().static_requests()) == []
