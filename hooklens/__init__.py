"""hooklens: hooks, caches, patching and offline interactive views for Hugging Face models.

Start here:

    import hooklens as hl

    model = hl.demo_model()          # a 2-layer model shipped in the package: no download
    # or hl.HookedModel.from_pretrained("a/hub-name" or "a/local/folder", gguf_file=...)
    logits, cache = model.run_with_cache("abcabc", remove_batch_dim=True)
    cache["blocks.1.attn.hook_pattern"]             # (n_heads, q, k)
    model.hook_names()                              # every hook point, in execution order

The three views (anywidgets; each also exports to one HTML file with `hl.export_html`):

    hl.AttentionView(model, "abcabc")   # attention patterns: layer picker, head grid
    hl.ResidualView(model, "abcabc")    # logit lens, norms, attention/MLP contributions
    clean = "Kq7mZ2xV9pL4gT8sWn3e" + "Kq7mZ2xV"      # the demo model predicts "9" next
    corrupted = "Kq7mZ2xVXpL4gT8sWn3e" + "Kq7mZ2xV"  # ... and "X" here
    hl.PatchingView(model, clean, corrupted, answer="9", wrong="X")   # sweep, click to patch

Patching without a view: `hl.patching.sweep(model, clean, corrupted, metric)` with a metric
from `hl.metrics` (`logit_diff`, `logprob`, `prob`, `rank`), e.g.
`hl.metrics.logit_diff(model, "9", "X")`. The demo model reads characters, so an answer is
one character; on a word-piece model it is usually a word with its leading space (" Paris").

The walkthrough notebooks (quickstart, a real model, hooks in practice): run `hooklens demo`
in a terminal to copy them to ./hooklens-notebooks and open them in JupyterLab.
Reference: help(hl.HookedModel.run_with_cache), help(hl.patching.sweep), help(hl.PatchingView).
"""

from importlib.metadata import PackageNotFoundError, version

from . import analysis, hook_points, metrics, patching, utils, vis
from ._demo import demo_model, demo_model_info, demo_model_path
from ._engine.cache import ActivationCache
from ._engine.config import HookedModelConfig
from ._engine.hooks import HookPoint
from ._engine.loss import Output, loss_fn
from ._engine.memory import release_freed_memory
from ._engine.model import HookedModel
from ._errors import (
    ArgumentError,
    HookError,
    HookNameError,
    InputError,
    NoTokenizerWarning,
    UnsupportedModelError,
)
from .analysis import FactoredMatrix, ProcessedWeights, Weights
from .hook_points import HookedRootModule
from .vis import AttentionView, PatchingView, ResidualView, export_html

try:
    __version__ = version("hooklens")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ActivationCache",
    "ArgumentError",
    "AttentionView",
    "FactoredMatrix",
    "HookError",
    "HookNameError",
    "HookPoint",
    "HookedModel",
    "HookedModelConfig",
    "HookedRootModule",
    "InputError",
    "NoTokenizerWarning",
    "Output",
    "PatchingView",
    "ProcessedWeights",
    "ResidualView",
    "UnsupportedModelError",
    "Weights",
    "__version__",
    "analysis",
    "demo_model",
    "demo_model_info",
    "demo_model_path",
    "export_html",
    "hook_points",
    "loss_fn",
    "metrics",
    "patching",
    "release_freed_memory",
    "utils",
    "vis",
]
