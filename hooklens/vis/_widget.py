"""The one base class of every hooklens view: the bundle it loads and its request handlers.

The front end (``js/rpc.ts``) sends an ``hl:request`` custom message and the kernel answers with
an ``hl:response`` carrying the same id (message shapes in :mod:`._wire`). Ids carry a
per-client prefix because every rendered copy of a widget receives every reply; a client ignores
ids it did not issue, and rejects a request that gets no reply within its timeout.

A view declares its requests with :func:`rpc_method`; the handlers are collected once per class
(:meth:`HookLensWidget.__init_subclass__`). The same handlers produce the replies that exports
inline (:mod:`.export`, :meth:`HookLensWidget.embed`), so live and exported views are fed by the
same code.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anywidget
import traitlets

from .._engine.kwargs import accepted_names, check_names
from .._errors import ArgumentError
from ._wire import REQUEST, RESPONSE, pack_buffers, request_key, unpack_buffers

# Resolved against this file, not the kernel's working directory, so the bundle is found
# wherever the notebook runs. The bundle is built from js/ and shipped inside the wheel.
BUNDLE_PATH = Path(__file__).resolve().parent.parent / "static" / "widget.js"

_MISSING_BUNDLE = (
    "The hooklens widget bundle is missing ({path}). It is built from js/ when the package is "
    "installed; in a source checkout run `npm ci && npm run build` (or reinstall with "
    "`pip install -e .`)."
)
_BAD_OPTIONS = "{view} export takes {known}, got {given}."

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


def index_param(name: str, value: Any, size: int) -> int:
    """A request's integer param ``name`` checked to lie in ``[0, size)``; else an RpcError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise RpcError(f"{name} must be an integer in [0, {size}), got {value!r}")
    return value


def bundle_source() -> str:
    """The bundled front end as text; raises a clear error when it has not been built."""
    if not BUNDLE_PATH.is_file():
        raise FileNotFoundError(_MISSING_BUNDLE.format(path=BUNDLE_PATH))
    return BUNDLE_PATH.read_text(encoding="utf-8")


def _checked_init(init: Callable[..., None]) -> Callable[..., None]:
    """A view's ``__init__`` that first rejects keywords that are neither an argument of a
    constructor in its class chain nor one of its synced traits (traitlets would drop them
    with a warning): the one rule of ``hooklens._engine.kwargs``."""

    @functools.wraps(init)
    def checked_init(self: HookLensWidget, *args: Any, **kwargs: Any) -> None:
        if kwargs:
            cls = type(self)
            accepted: list[str] = []
            for klass in cls.__mro__[: cls.__mro__.index(HookLensWidget)]:
                own = vars(klass).get("__init__")
                if own is not None:
                    accepted += [n for n in accepted_names(own) if n not in accepted]
            traits = cls.class_trait_names(sync=True)
            accepted += sorted(n for n in traits if not n.startswith("_") and n not in accepted)
            check_names(cls.__name__, kwargs, accepted)
        init(self, *args, **kwargs)

    return checked_init


class HookLensWidget(anywidget.AnyWidget):
    """An anywidget that loads the hooklens bundle and answers its view's requests."""

    _esm = BUNDLE_PATH
    view = traitlets.Unicode("", help="Which renderer of the bundle builds this view.").tag(
        sync=True
    )
    rpc_error = traitlets.Unicode(
        "", help='Last error a request handler raised ("Type: message"); "" when none.'
    ).tag(sync=True)
    embedded_replies = traitlets.Dict(
        help="Replies keyed by request key, answered in the browser without a kernel: the first "
        "screen's when they fit FIRST_SCREEN_BYTES, every request's after embed()."
    ).tag(sync=True)

    #: Request name -> attribute name of its handler; filled once per class.
    rpc_methods: ClassVar[dict[str, str]] = {}
    #: Keyword options ``static_requests`` accepts (the view's export options).
    export_options: ClassVar[tuple[str, ...]] = ()
    #: Most bytes of first-screen replies kept in the widget state, so a saved notebook shows
    #: the view without a kernel (hooklens/vis/README.md, "Saved notebooks").
    FIRST_SCREEN_BYTES: ClassVar[int] = 1_000_000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__ = _checked_init(cls.__init__)  # type: ignore[method-assign]
        found = dict(cls.rpc_methods)  # the base's handlers, overridden by this class's own
        for attr, fn in vars(cls).items():
            name = getattr(fn, "_hl_rpc_name", None)
            if name is not None:
                found[name] = attr
        cls.rpc_methods = found

    def __init__(self, **kwargs: Any) -> None:
        self._embed_all: dict[str, Any] | None = None  # embed()'s options once it is called
        super().__init__(**kwargs)
        # Not `_handle_custom_msg`: that name is an ipywidgets internal, overriding it silently
        # breaks every message.
        self.on_msg(self._on_rpc_message)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Run the handler of ``method`` in the kernel (what a front-end request does)."""
        attr = self.rpc_methods.get(method)
        if attr is None:
            known = ", ".join(sorted(self.rpc_methods)) or "none"
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

    def embed(self, **options: Any) -> HookLensWidget:
        """Put the replies to every request into the widget state, so that a static export of
        the notebook (nbconvert + html-manager, no kernel) renders this view. Costs what the data
        costs (2 bytes per attention value); ``options`` as for ``to_html``. Returns ``self``.
        """
        self._embed_all = dict(options)
        self.embedded_replies = self._replies(self.static_requests(**options))[0]
        return self

    def _replies(self, requests: Iterable[tuple[str, dict[str, Any]]]) -> tuple[dict, int]:
        """Replies keyed by request key, buffers in place, and their size in bytes."""
        replies: dict[str, Any] = {}
        size = 0
        for method, params in requests:
            reply, buffers = self.handle_request({"id": None, "method": method, "params": params})
            # Buffers go back in place: ipywidgets sends memoryviews nested in state as binary.
            replies[request_key(method, params)] = unpack_buffers(reply, buffers)
            size += sum(memoryview(b).nbytes for b in buffers) + len(repr(reply))
        return replies, size

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """The requests the view makes when it is first drawn (none by default)."""
        return []

    def refresh_first_screen(self) -> int:
        """Keep the first screen's replies in ``embedded_replies`` when they fit
        ``FIRST_SCREEN_BYTES`` (else none), so a saved notebook shows the view without a kernel;
        after :meth:`embed`, every reply again. Views call it when their first screen changes.
        Returns the bytes embedded."""
        everything = self._embed_all
        if everything is not None:
            self.embedded_replies, size = self._replies(self.static_requests(**everything))
            return size
        replies, size = self._replies(self.first_screen_requests())
        if size > self.FIRST_SCREEN_BYTES:
            replies, size = {}, 0
        self.embedded_replies = replies
        return size

    def export_state(self, *args: Any, **options: Any) -> dict[str, Any]:
        """Traits an export with ``options`` shows differently from the live view (e.g. the
        layers it holds); none by default."""
        return {}

    def static_requests(self, **options: Any) -> Iterable[tuple[str, dict[str, Any]]]:
        """Requests whose replies an export inlines (all the view can ask for).

        ``options`` come from ``to_html(**options)``; only the view's ``export_options`` are
        accepted, and the view's :meth:`exported_requests` receives them.
        """
        unknown = sorted(set(options) - set(self.export_options))
        if unknown:
            known = (
                "the options " + ", ".join(f"`{o}=`" for o in self.export_options)
                if self.export_options
                else "no options"
            )
            raise ArgumentError(
                _BAD_OPTIONS.format(view=type(self).__name__, known=known, given=unknown)
            )
        return self.exported_requests(**options)

    def exported_requests(self, *args: Any, **options: Any) -> Iterable[tuple[str, dict[str, Any]]]:
        """What :meth:`static_requests` yields once ``options`` are checked; none by default."""
        return []
