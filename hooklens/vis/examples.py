"""CircuitsVis' ``circuitsvis.examples``, under the same names."""

from ._hello import hello

__all__ = ["hello"]
