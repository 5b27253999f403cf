"""`stop_at_layer`: run the blocks before a layer and return the residual stream entering it.

The forward is stopped by an exception raised from a hook on the stream entering block `k` (or
leaving the last block), so no block from `k` on runs and no module is swapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .._errors import InputError
from .hooks import HookPoint, reads_only

if TYPE_CHECKING:
    from .model import HookedModel


class _Stop(BaseException):
    """Carries the stream out of the forward. A BaseException: hook dispatch and transformers
    catch `Exception`, and must not turn this into an error."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value


def stop_layer(layer: int, n_layers: int) -> int:
    """TransformerLens's `stop_at_layer` (Python slice of the blocks) as an index in 0..n_layers."""
    k = layer + n_layers if layer < 0 else layer
    if not 0 <= k <= n_layers:
        raise InputError(
            f"stop_at_layer={layer} is out of range for a model with {n_layers} layers: use "
            f"0..{n_layers} (or -{n_layers}..-1; the blocks before it run)."
        )
    return k


def run_until(
    model: HookedModel, tokens: torch.Tensor, attention_mask: torch.Tensor | None, layer: int
) -> torch.Tensor:
    """The residual stream (batch, pos, d_model) entering block `layer` (after the last block
    for n_layers): blocks 0..layer-1 run, with every attached hook; nothing after them."""
    n = model.cfg.n_layers
    k = stop_layer(layer, n)

    @reads_only
    def stop(x: torch.Tensor, hook: HookPoint) -> None:
        raise _Stop(x)

    # Block k's own input hook is inside block k in TransformerLens, so it must not fire: the
    # stop goes first there. The last block's output hook is inside that block: it goes last.
    if k < n:
        name, prepend = f"blocks.{k}.hook_resid_pre", True
    else:
        # post-LN blocks (BERT): the block's output is ln2's, hook_normalized_resid_post
        out = "hook_normalized_resid_post" if model.spec.post_ln else "hook_resid_post"
        name, prepend = f"blocks.{n - 1}.{out}", False
    try:
        with model.hooks([(name, stop)], prepend=prepend):
            model.hf_model(input_ids=tokens, attention_mask=attention_mask, use_cache=False)
    except _Stop as stopped:
        return stopped.value
    raise RuntimeError(f"the forward pass finished without reaching {name}")  # pragma: no cover
