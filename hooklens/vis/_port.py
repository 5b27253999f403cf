"""The base of the views CircuitsVis also draws: a widget that can also be an HTML fragment.

CircuitsVis returns ``RenderedHTML`` (``show_code()``, ``str()``); hooklens returns a live widget
that offers the same: :meth:`PortedView.show_code` is a self-contained fragment that renders
offline (no kernel, no network), beside :func:`hooklens.vis.export_html`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, ClassVar

from .._errors import ArgumentError
from ._widget import HookLensWidget
from .export import to_fragment

_NOT_IMPLEMENTED = (
    "{function}() in hooklens does not implement `{name}=` (got {value!r}); leave it unset. {hint}"
)


def reject_unimplemented(function: str, hint: str = "", **arguments: Any) -> None:
    """Raise ``ArgumentError`` naming the first CircuitsVis argument that is set.

    ``arguments``: name -> value of the arguments hooklens accepts by name but does not draw
    yet; ``None`` means unset (CircuitsVis' default).
    """
    for name, value in arguments.items():
        if value is not None:
            raise ArgumentError(
                _NOT_IMPLEMENTED.format(function=function, name=name, value=value, hint=hint)
            )


def dimension_labels(given: Any, size: int, what: str) -> list[str]:
    """``given`` labels as strings (``size`` of them), or ``"0"``, ``"1"``, ... when ``None``."""
    if given is None:
        return [str(i) for i in range(size)]
    labels = [str(label) for label in given]
    if len(labels) != size:
        raise ValueError(f"{len(labels)} {what} for a dimension of size {size}")
    return labels


class PortedView(HookLensWidget):
    """A view with CircuitsVis' ``RenderedHTML`` methods besides being a widget.

    A subclass that names the traits its first screen depends on in ``first_screen_traits``
    keeps that screen's replies in the widget state (saved notebooks render without a kernel),
    refreshed when those traits change; its data must be in place before ``__init__`` here.
    """

    first_screen_traits: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.first_screen_traits:
            self.refresh_first_screen()
            self.observe(
                lambda _change: self.refresh_first_screen(), names=list(self.first_screen_traits)
            )

    def show_code(self, **options: Any) -> str:
        """Self-contained HTML (a ``<div>`` and two ``<script>``) that renders this view offline.

        ``options`` as for :func:`hooklens.vis.to_html`.
        """
        return to_fragment(self, **options)

    def __html__(self) -> str:
        return self.show_code()


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Let the module ``module_name`` be called as ``function``.

    CircuitsVis has a module and a function of the same name (``circuitsvis.topk_tokens``
    holds ``topk_tokens``): ``cv.topk_tokens.topk_tokens(...)`` is how notebooks call it, and
    ``hooklens.vis.topk_tokens(...)`` should work too. The module stays the package attribute
    (importing it again cannot replace a function), and calling it calls ``function``.
    """

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
