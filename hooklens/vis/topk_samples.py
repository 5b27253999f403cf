"""CircuitsVis' ``circuitsvis.topk_samples``, under the same names.

The module itself can be called:
``hooklens.vis.topk_samples(...)`` is ``topk_samples.topk_samples(...)``.
"""

from ._port import make_callable
from ._topk import topk_samples

__all__ = ["topk_samples"]

make_callable(__name__, topk_samples)
