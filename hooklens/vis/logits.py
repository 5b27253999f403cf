"""CircuitsVis' ``circuitsvis.logits``, under the same names."""

from ._logprobs import token_log_probs

__all__ = ["token_log_probs"]
