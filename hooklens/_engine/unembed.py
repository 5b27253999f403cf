"""The unembedding as the model applies it after its final norm: the one place that knows how."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..architectures._spec import text_config
from . import module_hooks


class _Caught(BaseException):
    """Carries the unembedding's input out of the LM head's forward (a BaseException, so no
    `except Exception` in between turns it into an error)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value


def final_normed(model: Any, resid: torch.Tensor) -> torch.Tensor:
    """The unembedding's input (..., d_model) from the stream leaving the last block: the final
    norm's output, or, where the adapter names an LM head transform (`head`, BERT's dense,
    activation and LayerNorm), what that head hands the unembedding."""
    hf, spec = model.hf_model, model.spec
    final = spec.final_norm  # None: the last block's output is the unembedding's input
    if final is not None and (spec.head is None or not final.startswith(f"{spec.head}.")):
        # the final norm reads the stream (a pre-LN encoder's head transforms its output)
        resid = hf.get_submodule(final)(resid)
    if spec.head is None:
        return resid

    def catch(module: nn.Module, args: tuple[Any, ...]) -> None:
        raise _Caught(args[0])

    handle = module_hooks.pre_hook(hf.get_submodule(spec.unembed), catch)
    try:
        out: torch.Tensor = hf.get_submodule(spec.head)(resid)
    except _Caught as caught:
        return caught.value
    finally:
        handle.remove()
    return out  # the head is the transform alone (ELECTRA): the unembedding comes after it


def unembed(model: Any, normed: torch.Tensor, token_ids: list[int] | None = None) -> torch.Tensor:
    """Logits from the final norm's output (..., d_model) -> (..., d_vocab).

    With `token_ids`, only those tokens' logits, in that order: (..., len(token_ids)), computed
    from their rows of the unembedding (what a logit difference needs), never the whole
    vocabulary. Any logit scale and final soft-cap of the family are applied, as the model does.
    """
    head: nn.Module = model.hf_model.get_submodule(model.spec.unembed)
    weight = getattr(head, "weight", None)
    # a stream kept in float32 in a half-precision model (Mamba's `residual_in_fp32`) reaches
    # the head in float32: the model casts it to the head's dtype, as here
    if isinstance(weight, torch.Tensor) and normed.dtype != weight.dtype:
        normed = normed.to(weight.dtype)
    if token_ids is None:
        logits: torch.Tensor = head(normed)
        # a head wider than the vocabulary: the model cuts its padding off (Inkling)
        logits = logits[..., : model.cfg.d_vocab]
    else:
        table: torch.Tensor = head.weight  # type: ignore[assignment]
        bias = getattr(head, "bias", None)
        ids = torch.as_tensor(token_ids, device=table.device)
        rows_bias = bias[ids] if isinstance(bias, torch.Tensor) else None
        logits = nn.functional.linear(normed, table[ids], rows_bias)
    if model.spec.logit_scale is not None:  # Cohere multiplies, Granite divides
        scale_attr, op = model.spec.logit_scale
        factor = getattr(text_config(model.hf_model.config), scale_attr)
        logits = logits * factor if op == "mul" else logits / factor
    attr = model.spec.final_logit_softcap
    cap = getattr(text_config(model.hf_model.config), attr, None) if attr else None
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
