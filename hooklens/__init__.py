"""hooklens: hooks, caches, patching and offline interactive views for Hugging Face models."""

from importlib.metadata import PackageNotFoundError, version

from . import vis

try:
    __version__ = version("hooklens")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "vis"]
