"""Notebook views of activations (anywidgets whose front end ships inside the package).

Every public function of CircuitsVis is here under its own name and arguments, also in the same
submodules (``hooklens.vis.attention.attention_heads``, ``hooklens.vis.tokens.colored_tokens``,
...), so ``import hooklens.vis as cv`` ports a CircuitsVis notebook. Each returns a live widget
that also has CircuitsVis' ``show_code()`` (self-contained HTML that renders offline).
"""

from . import activations, attention, examples, logits, tokens, topk_samples, topk_tokens
from ._attention import AttentionPatterns, AttentionView, attention_heads
from ._attention_tokens import AttentionTokens, attention_pattern, attention_patterns
from ._heads import HeadMap, LogitAttributionView
from ._hello import Hello
from ._logprobs import TokenLogProbs, token_log_probs
from ._multi import ColoredTokensMulti, colored_tokens_multi, visualize_model_performance
from ._neurons import TextNeuronActivations, text_neuron_activations
from ._patching import PatchingView
from ._residual import ResidualView
from ._tokens import ColoredTokens, colored_tokens
from ._topk import TopkSamples, TopkTokens
from .export import export_html, to_fragment, to_html

__all__ = [
    "AttentionPatterns",
    "AttentionTokens",
    "AttentionView",
    "ColoredTokens",
    "ColoredTokensMulti",
    "HeadMap",
    "Hello",
    "LogitAttributionView",
    "PatchingView",
    "ResidualView",
    "TextNeuronActivations",
    "TokenLogProbs",
    "TopkSamples",
    "TopkTokens",
    "activations",
    "attention",
    "attention_heads",
    "attention_pattern",
    "attention_patterns",
    "colored_tokens",
    "colored_tokens_multi",
    "examples",
    "export_html",
    "hello",
    "logits",
    "text_neuron_activations",
    "to_fragment",
    "to_html",
    "token_log_probs",
    "tokens",
    "topk_samples",
    "topk_tokens",
    "visualize_model_performance",
]
