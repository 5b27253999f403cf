"""CircuitsVis' ``examples.hello``: the smallest view, a greeting (checks a set-up renders)."""

from __future__ import annotations

import traitlets

from .._engine.kwargs import checked
from ._port import PortedView


class Hello(PortedView):
    """Shows "Hello, {name}!" as text."""

    name = traitlets.Unicode("", help="Who is greeted (shown as text).").tag(sync=True)


@checked()
def hello(name: str) -> Hello:
    """CircuitsVis' ``examples.hello(name)``."""
    return Hello(view="hello", name=str(name))
