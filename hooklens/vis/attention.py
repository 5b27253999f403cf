"""CircuitsVis' ``circuitsvis.attention``, under the same names."""

from ._attention import attention_heads
from ._attention_tokens import attention_pattern, attention_patterns

__all__ = ["attention_heads", "attention_pattern", "attention_patterns"]
