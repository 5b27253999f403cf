"""One request/response mechanism for every view's on-demand data and every click.

The front end (``js/rpc.ts``) sends a custom message::

    {"kind": "hl:request", "id": "<client>:<n>", "method": "attention", "params": {"layer": 3}}

and the kernel answers with the same ``id``::

    {"kind": "hl:response", "id": ..., "ok": true,  "result": <json with buffer placeholders>}
    {"kind": "hl:response", "id": ..., "ok": false, "error": {"type": "ValueError", "message": ...}}

Binary data (``bytes`` / ``memoryview``, e.g. the ``data`` of an encoded tensor) never goes into
the JSON: :func:`pack_buffers` replaces each with ``{"$buffer": i}`` and sends it as the i-th
binary buffer of the message; the front end puts them back. Ids carry a per-client prefix
because every rendered copy of a widget receives every reply; a client ignores ids it did not
issue. The front end rejects a request that gets no reply within its timeout.

A view declares its methods with :func:`rpc_method`; the same handlers also produce the data
inlined into standalone HTML (:mod:`hooklens.vis.export`), so live and exported views are fed by
the same code.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import traitlets

from ._widget import HookLensWidget

REQUEST = "hl:request"
RESPONSE = "hl:response"
BUFFER_KEY = "$buffer"

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


class RpcError(Exception):
    """An error whose message is meant for the user (shown next to the view)."""


def rpc_method(name: str) -> Callable[[H], H]:
    """Mark a widget method as the handler of requests named ``name``.

    The handler is called with the request's params as keyword arguments and returns a JSON-able
    value that may contain ``bytes``/``memoryview`` leaves (sent as binary buffers).
    """

    def mark(fn: H) -> H:
        fn._hl_rpc_name = name  # type: ignore[attr-defined]
        return fn

    return mark


def pack_buffers(
    value: Any, buffers: list[memoryview] | None = None
) -> tuple[Any, list[memoryview]]:
    """Split binary leaves out of ``value``: returns (json value with placeholders, buffers)."""
    out = [] if buffers is None else buffers
    if isinstance(value, (bytes, bytearray, memoryview)):
        out.append(memoryview(value).cast("B"))
        return {BUFFER_KEY: len(out) - 1}, out
    if isinstance(value, dict):
        return {str(k): pack_buffers(v, out)[0] for k, v in value.items()}, out
    if isinstance(value, (list, tuple)):
        return [pack_buffers(v, out)[0] for v in value], out
    return value, out


def unpack_buffers(value: Any, buffers: list[Any]) -> Any:
    """Inverse of :func:`pack_buffers` (buffers as memoryviews)."""
    if isinstance(value, dict):
        if set(value) == {BUFFER_KEY}:
            return memoryview(buffers[int(value[BUFFER_KEY])])
        return {k: unpack_buffers(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack_buffers(v, buffers) for v in value]
    return value


def request_key(method: str, params: dict[str, Any]) -> str:
    """Canonical key of a request; ``js/rpc.ts`` computes the same string (``requestKey``)."""
    return method + "?" + json.dumps(params, sort_keys=True, separators=(",", ":"))


class RpcWidget(HookLensWidget):
    """A widget whose front end asks the kernel for data through :func:`rpc_method` handlers."""

    #: Last error raised by a handler (``"Type: message"``), also sent to the front end.
    rpc_error = traitlets.Unicode("").tag(sync=True)
    #: Empty unless :meth:`embed` was called: replies keyed by ``request_key``, answered in the
    #: browser without a kernel (for static notebook exports rendered by a widget manager).
    embedded_replies = traitlets.Dict().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Not `_handle_custom_msg`: that name is an ipywidgets internal, overriding it silently
        # breaks every message.
        self.on_msg(self._on_rpc_message)

    @classmethod
    def rpc_methods(cls) -> dict[str, str]:
        """Request name -> attribute name of its handler."""
        found: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                name = getattr(fn, "_hl_rpc_name", None)
                if name is not None:
                    found[name] = attr
        return found

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Run the handler of ``method`` in the kernel (what a front-end request does)."""
        attr = self.rpc_methods().get(method)
        if attr is None:
            known = ", ".join(sorted(self.rpc_methods())) or "none"
            raise RpcError(f"{type(self).__name__} has no request '{method}' (known: {known}).")
        return getattr(self, attr)(**(params or {}))

    def handle_request(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[memoryview]]:
        """The reply message (and its buffers) to one request message; never raises."""
        request_id = content.get("id")
        params = content.get("params") or {}
        try:
            if not isinstance(params, dict):
                raise RpcError("request params must be an object")
            result = self.call(str(content.get("method")), params)
        except Exception as error:
            message = str(error)
            self.rpc_error = f"{type(error).__name__}: {message}"
            self.log.debug("hooklens request failed:\n%s", traceback.format_exc())
            reply = {
                "kind": RESPONSE,
                "id": request_id,
                "ok": False,
                "error": {"type": type(error).__name__, "message": message},
            }
            return reply, []
        packed, buffers = pack_buffers(result)
        return {"kind": RESPONSE, "id": request_id, "ok": True, "result": packed}, buffers

    def _on_rpc_message(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if not isinstance(content, dict) or content.get("kind") != REQUEST:
            return
        reply, buffers = self.handle_request(content)
        self.send(reply, buffers)

    def embed(self, **options: Any) -> RpcWidget:
        """Put the replies to every request into the widget state, so that a static export of
        the notebook (nbconvert + html-manager, no kernel) renders this view. Costs what the data
        costs (2 bytes per attention value); ``options`` as for ``to_html``. Returns ``self``.
        """
        replies: dict[str, Any] = {}
        for method, params in self.static_requests(**options):
            reply, buffers = self.handle_request({"id": None, "method": method, "params": params})
            # Buffers go back in place: ipywidgets sends memoryviews nested in state as binary.
            replies[request_key(method, params)] = unpack_buffers(reply, buffers)
        self.embedded_replies = replies
        return self

    def static_requests(self, **options: Any) -> Iterable[tuple[str, dict[str, Any]]]:
        """Requests whose replies a standalone HTML export inlines (all the view can ask for).

        ``options`` come from ``to_html(**options)``; a view rejects ones it does not know.
        """
        if options:
            raise TypeError(f"{type(self).__name__} export takes no options, got {sorted(options)}")
        return []
