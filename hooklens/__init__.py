"""hooklens: hooks, caches, patching and offline interactive views for Hugging Face models."""

from importlib.metadata import PackageNotFoundError, version

from . import hook_points, metrics, patching, utils, vis
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
    "ResidualView",
    "UnsupportedModelError",
    "__version__",
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
