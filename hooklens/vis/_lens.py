"""The numbers behind ``ResidualView``: logit lens, residual norms and per-layer contributions.

Everything is computed once, in the kernel, from one ``run_with_cache`` of the model:

- logit lens: each accumulated residual (``cache.accumulated_resid``: ``resid_pre`` of every
  layer, then the final ``resid_post``) through ``model.unembed_resid`` (the model's own final
  norm, unembedding and soft-cap); the top-k tokens and probabilities at every (row, position).
  The last row must reproduce the model's logits; :func:`compute_lens` checks that and says so
  when it does not.
- the L2 norm of each accumulated residual.
- contributions: ``cache.decompose_resid`` (embeddings, then each layer's attention and MLP
  output; where blocks are kept whole, block 0's input, then what each block changes: its
  output minus its input), each component projected on the direction of the final residual at
  its position.
  The projections of a position sum to the norm of its final residual, so they say which layers
  built the residual stream the unembedding reads.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .._engine.model import HookedModel

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
    resid: torch.Tensor  # (rows, pos, d_model), the model's dtype on the CPU: for `track`


#: what `decompose_resid` stacks: the embeddings and what each block's parts add
_COMPONENT_SUFFIXES = (
    "hook_embed", "hook_pos_embed", "hook_token_type_embed", "hook_attn_out", "hook_mixer_out",
    "hook_mlp_out", "hook_per_layer_out",
)  # fmt: skip


def _needed(name: str) -> bool:
    """The hook points ``accumulated_resid`` and ``decompose_resid`` read."""
    return "hook_resid_" in name or name.endswith(_COMPONENT_SUFFIXES) or "ln_final" in name


def compute_lens(model: HookedModel, ids: torch.Tensor, k: int = 10) -> Lens:
    """Run ``model`` once on ``ids`` of shape ``(1, pos)`` and compute the residual-stream lens."""
    n_layers = int(model.cfg.n_layers)
    param = next(iter(model.hf_model.parameters()))
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids, names_filter=_needed)
        logits = logits[0].float().cpu()  # (pos, d_vocab)
        stack = cache.accumulated_resid(layer=None, incl_mid=False)[:, 0]  # (rows, pos, d_model)
        topk_ids, topk_probs = [], []
        last_logits = logits
        for row in stack:  # one row at a time: (pos, d_vocab) logits, never (rows, pos, vocab)
            last_logits = model.unembed_resid(row.to(param.device, param.dtype)).float().cpu()
            probs = torch.softmax(last_logits, dim=-1)
            top = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
            topk_ids.append(top.indices.to(torch.int32))
            topk_probs.append(top.values)
        diff = float((last_logits - logits).abs().max())
        if diff > 1e-2 * max(1.0, float(logits.abs().max())):
            warnings.warn(_LENS_MISMATCH.format(diff=diff), stacklevel=3)

        resid = stack.detach().to("cpu")
        stack = stack.float().cpu()
        if model.spec.whole_blocks() is None:
            components, labels = cache.decompose_resid(layer=None, return_labels=True)
            components = components[:, 0].float().cpu()  # (components, pos, d_model)
        else:  # blocks kept whole: what each one changes (its output minus its input)
            components = torch.cat([stack[:1], stack[1:] - stack[:-1]])
            labels = ["0_resid_pre", *(f"{layer}_block" for layer in range(n_layers))]
        final = stack[-1]
        direction = final / final.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        contrib = (components * direction).sum(-1)  # (components, pos)

    return Lens(
        row_labels=[f"{layer}_pre" for layer in range(n_layers)] + ["final_post"],
        topk_ids=torch.stack(topk_ids).numpy(),
        topk_probs=torch.stack(topk_probs).numpy().astype(np.float32),
        norms=stack.norm(dim=-1).numpy().astype(np.float32),
        contrib_labels=[str(label) for label in labels],
        contrib=contrib.numpy().astype(np.float32),
        max_logit_diff=diff,
        resid=resid,
    )


def track_token(model: HookedModel, lens: Lens, token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Probability and rank (0 = top) of ``token_id`` at every (row, position) of the lens.

    Returns float32 ``probs`` and int32 ``ranks``, both ``(rows, pos)``; one row of logits
    ``(pos, d_vocab)`` at a time.
    """
    param = next(iter(model.hf_model.parameters()))
    probs, ranks = [], []
    with torch.no_grad():
        for row in lens.resid:
            logits = model.unembed_resid(row.to(param.device, param.dtype)).float().cpu()
            chosen = logits[:, token_id : token_id + 1]
            probs.append(torch.softmax(logits, dim=-1)[:, token_id])
            ranks.append((logits > chosen).sum(-1).to(torch.int32))
    return (
        torch.stack(probs).numpy().astype(np.float32),
        torch.stack(ranks).numpy().astype(np.int32),
    )
