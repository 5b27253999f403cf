"""Models whose layers carry more than one stream: why hooklens refuses them.

hooklens's block points describe one residual stream of hidden_size, which each block reads
and adds to. Some layers carry a second stream beside it: Reformer's reversible layers keep two
residual streams and the model joins them after the last layer; XLNet's layers run a content
and a query stream; ProphetNet's decoder layers run n-gram prediction streams beside the main
one, over extra positions. The derivation's guess then fails on something incidental (a norm it
does not find); `two_streams_reason` says what the model does instead.
"""

from __future__ import annotations

import inspect

from torch import nn

from ._names import NGRAM_STREAMS, SECOND_STREAM_ARGS
from ._spec import text_config

MSG_NGRAM = (
    "its layers run {n} n-gram prediction streams beside the main stream (ProphetNet's n-stream "
    "self-attention, config {attr}={n}): each block's activations hold the main stream's "
    "positions and {n} more copies of them, which attend to the main stream, so hooklens's "
    "block and attention points would mix streams"
)
MSG_STREAMS = "{why}, so there is no one d_model-wide stream for hook_resid_pre/hook_resid_post"


def _first_block(model: nn.Module, n_layers: int) -> nn.Module | None:
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module[0]
    return None


def two_streams_reason(model: nn.Module) -> str | None:
    """Why `model` cannot be wrapped when its layers carry a second stream (None: they don't)."""
    n_layers = getattr(text_config(getattr(model, "config", None)), "num_hidden_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        return None
    block = _first_block(model, n_layers)
    if block is None:
        return None
    params = inspect.signature(block.forward).parameters
    for arg, why in SECOND_STREAM_ARGS.items():
        if arg in params:
            return MSG_STREAMS.format(why=why)
    for module in block.modules():
        n = getattr(module, NGRAM_STREAMS, None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return MSG_NGRAM.format(n=n, attr=NGRAM_STREAMS)
    return None


__all__ = ["two_streams_reason"]
