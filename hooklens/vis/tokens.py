"""CircuitsVis' ``circuitsvis.tokens``, under the same names."""

from ._multi import colored_tokens_multi, visualize_model_performance
from ._tokens import colored_tokens

__all__ = ["colored_tokens", "colored_tokens_multi", "visualize_model_performance"]
