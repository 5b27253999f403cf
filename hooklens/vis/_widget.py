"""The base class every hooklens widget derives from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

# Resolved against this file, not the kernel's working directory, so the bundle is found
# wherever the notebook runs. The bundle is built from js/ and shipped inside the wheel.
BUNDLE_PATH = Path(__file__).resolve().parent.parent / "static" / "widget.js"

_MISSING_BUNDLE = (
    "The hooklens widget bundle is missing ({path}). It is built from js/ when the package is "
    "installed; in a source checkout run `npm ci && npm run build` (or reinstall with "
    "`pip install -e .`)."
)


def bundle_source() -> str:
    """The bundled front end as text; raises a clear error when it has not been built."""
    if not BUNDLE_PATH.is_file():
        raise FileNotFoundError(_MISSING_BUNDLE.format(path=BUNDLE_PATH))
    return BUNDLE_PATH.read_text(encoding="utf-8")


class HookLensWidget(anywidget.AnyWidget):
    """An anywidget that loads the hooklens bundle; ``view`` names the view the bundle builds."""

    _esm = BUNDLE_PATH
    view = traitlets.Unicode("").tag(sync=True)

    def to_html(self, title: str | None = None, **options: Any) -> str:
        """This view as one self-contained HTML page (see :mod:`hooklens.vis.export`)."""
        from .export import to_html

        return to_html(self, title=title, **options)
