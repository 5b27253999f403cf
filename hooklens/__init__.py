"""hooklens: hooks, caches, patching and offline interactive views for Hugging Face models."""

from importlib.metadata import PackageNotFoundError, version

from . import analysis, metrics, patching, vis
from ._demo import demo_model, demo_model_info, demo_model_path
from ._engine.cache import ActivationCache
from ._engine.config import HookedModelConfig
from ._engine.hooks import HookPoint
from ._engine.memory import release_freed_memory
from ._engine.model import HookedModel
from ._errors import HookError, HookNameError, InputError, NoTokenizerWarning, UnsupportedModelError
from .analysis import FactoredMatrix, ProcessedWeights, Weights
from .vis import AttentionView, PatchingView, ResidualView, export_html

try:
    __version__ = version("hooklens")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ActivationCache",
    "AttentionView",
    "FactoredMatrix",
    "HookError",
    "HookNameError",
    "HookPoint",
    "HookedModel",
    "HookedModelConfig",
    "InputError",
    "NoTokenizerWarning",
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
    "metrics",
    "patching",
    "release_freed_memory",
    "vis",
]
