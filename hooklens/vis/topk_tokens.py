"""CircuitsVis' ``circuitsvis.topk_tokens``, under the same names.

The module itself can be called:
``hooklens.vis.topk_tokens(...)`` is ``topk_tokens.topk_tokens(...)``.
"""

from ._port import make_callable
from ._topk import topk_tokens

__all__ = ["topk_tokens"]

make_callable(__name__, topk_tokens)
