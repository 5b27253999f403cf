"""The numbers behind ``ResidualView``: logit lens, residual norms and per-layer contributions.

Everything is computed once, in the kernel, from one ``run_with_cache`` of the model:

- logit lens: each accumulated residual (``cache.accumulated_resid``: ``resid_pre`` of every
  layer, then the final ``resid_post``) through ``model.unembed_resid`` (the model's own final
  norm, unembedding and soft-cap); a duck-typed model without it gets the final norm module and
  ``hf_model.get_output_embeddings()``;
  the top-k tokens and probabilities at every (row, position). The last row must reproduce the
  model's logits; :func:`compute_lens` checks that and says so when it does not.
- the L2 norm of each accumulated residual.
- contributions: ``cache.decompose_resid`` (embeddings, then each layer's attention and MLP
  output), each component projected on the direction of the final residual at its position.
  The projections of a position sum to the norm of its final residual, so they say which layers
  built the residual stream the unembedding reads.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_NO_FINAL_NORM = (
    "hooklens could not find the final norm of this model ({kind}); the logit lens is shown "
    "without it."
)
_LENS_MISMATCH = (
    "The logit lens of the final residual differs from the model's logits by {diff:.3g}: this "
    "model's output head does something the lens does not model; read its rows with care."
)


@dataclass
class Lens:
    """Logit lens, norms and contributions of one prompt (``rows`` = n_layers + 1)."""

    row_labels: list[str]
    topk_ids: np.ndarray  # (rows, pos, k) int32
    topk_probs: np.ndarray  # (rows, pos, k) float32
    norms: np.ndarray  # (rows, pos) float32
    contrib_labels: list[str]
    contrib: np.ndarray  # (components, pos) float32
    max_logit_diff: float  # last row of the lens vs the model's logits


def _drop_batch(t: torch.Tensor, batch_axis: int, ndim: int) -> torch.Tensor:
    """``t`` with a batch axis of size 1 at ``batch_axis`` removed, if ``t`` has ``ndim`` dims."""
    return t.select(batch_axis, 0) if t.ndim == ndim else t


def find_final_norm(model: Any) -> torch.nn.Module | None:
    """The model's final norm module.

    Prefers what the engine exposes (``model.ln_final`` / ``model.final_norm``); otherwise the
    last norm module of the HF base model that is not inside a layer list (``ln_f``,
    ``final_layer_norm``, ``norm``, ...), found by module type, not by model name.
    """
    for attr in ("ln_final", "final_norm"):
        module = getattr(model, attr, None)
        if isinstance(module, torch.nn.Module):
            return module
    hf_model = getattr(model, "hf_model", None)
    base = getattr(hf_model, "base_model", None)
    if not isinstance(base, torch.nn.Module):
        return None
    found = None
    for name, module in base.named_modules():
        in_layer_list = any(part.isdigit() for part in name.split("."))
        if name and not in_layer_list and type(module).__name__.lower().endswith("norm"):
            found = module
    return found


def _unembed(model: Any) -> Any:
    """A function: normalised residual ``(..., d_model)`` -> logits ``(..., d_vocab)``."""
    hf_model = model.hf_model
    head = hf_model.get_output_embeddings()
    config = getattr(hf_model, "config", None)
    get_text_config = getattr(config, "get_text_config", None)
    text_config = get_text_config() if callable(get_text_config) else config
    cap = getattr(text_config, "final_logit_softcapping", None)

    def unembed(x: torch.Tensor) -> torch.Tensor:
        logits = head(x.to(head.weight.dtype)).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return unembed


_COMPONENT_SUFFIXES = ("hook_embed", "hook_pos_embed", "hook_attn_out", "hook_mlp_out")


def _needed(name: str) -> bool:
    """The hook points ``accumulated_resid`` and ``decompose_resid`` read."""
    return "hook_resid_" in name or name.endswith(_COMPONENT_SUFFIXES) or "ln_final" in name


def _lens_function(model: Any) -> Any:
    """residual ``(pos, d_model)`` -> logits ``(pos, d_vocab)`` through final norm + unembed."""
    if callable(getattr(model, "unembed_resid", None)):  # hooklens.HookedModel
        param = next(iter(model.hf_model.parameters()))
        return lambda row: model.unembed_resid(row.to(param.device, param.dtype))
    norm = find_final_norm(model)
    if norm is None:
        warnings.warn(_NO_FINAL_NORM.format(kind=type(model).__name__), stacklevel=4)
    param = next(iter(norm.parameters()), None) if norm is not None else None
    dtype = param.dtype if param is not None else torch.float32
    unembed = _unembed(model)
    return lambda row: unembed(norm(row.to(dtype)) if norm is not None else row)


def compute_lens(model: Any, ids: torch.Tensor, k: int = 10) -> Lens:
    """Run ``model`` once on ``ids`` of shape ``(1, pos)`` and compute the residual-stream lens."""
    n_layers = int(model.cfg.n_layers)
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids, names_filter=_needed)
        logits = _drop_batch(torch.as_tensor(logits), 0, 3).float().cpu()  # (pos, d_vocab)
        stack = _drop_batch(cache.accumulated_resid(layer=None, incl_mid=False), 1, 4)
        stack = stack.float().cpu()  # (rows, pos, d_model)
        lens = _lens_function(model)
        topk_ids, topk_probs = [], []
        last_logits = None
        for row in stack:  # one row at a time: (pos, d_vocab) logits, never (rows, pos, vocab)
            row_logits = lens(row).float().cpu()
            probs = torch.softmax(row_logits, dim=-1)
            top = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
            topk_ids.append(top.indices.to(torch.int32))
            topk_probs.append(top.values)
            last_logits = row_logits
        assert last_logits is not None
        diff = float((last_logits - logits).abs().max())
        if diff > 1e-2 * max(1.0, float(logits.abs().max())):
            warnings.warn(_LENS_MISMATCH.format(diff=diff), stacklevel=3)

        components, labels = cache.decompose_resid(layer=None, return_labels=True)
        components = _drop_batch(components, 1, 4).float().cpu()  # (components, pos, d_model)
        final = stack[-1]
        direction = final / final.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        contrib = (components * direction).sum(-1)  # (components, pos)

    rows = [f"{layer}_pre" for layer in range(n_layers)] + ["final_post"]
    if len(rows) != stack.shape[0]:
        rows = [f"resid {i}" for i in range(stack.shape[0])]
    return Lens(
        row_labels=rows,
        topk_ids=torch.stack(topk_ids).numpy(),
        topk_probs=torch.stack(topk_probs).numpy().astype(np.float32),
        norms=stack.norm(dim=-1).numpy().astype(np.float32),
        contrib_labels=[str(label) for label in labels],
        contrib=contrib.numpy().astype(np.float32),
        max_logit_diff=diff,
    )
