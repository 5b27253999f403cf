"""TransformerLens's weight processing, as an explicit copy: `model.processed_weights(...)`.

The wrapped model is never changed: hooklens runs Hugging Face's weights as loaded. These
functions return a `ProcessedWeights`, a separate set of (copied) tensors in TransformerLens's
names and shapes, processed as TransformerLens's `fold_ln`, `center_writing_weights`,
`center_unembed` and `fold_value_biases` do (in that order). Each gives the same outputs as
the unprocessed weights in the sense TransformerLens states (tested):

- `fold_ln`: the norms' weights (and LayerNorm biases) are folded into the weights that read
  them (W_Q/W_K/W_V, W_in/W_gate, W_U); the reading weights of LayerNorm models are also centred
  over d_model (`normalization_type` becomes "LNPre" / "RMSPre": the norm only centres and
  divides). `ln1_w`, `ln2_w`, `ln_final_w` and the biases become None.
- `center_writing_weights` (LayerNorm models): what writes to the residual stream (W_E, W_pos,
  W_O, b_O, W_out, b_out) has its mean over d_model removed; every reader removes it anyway.
- `center_unembed`: W_U and b_U have their mean over the vocabulary removed (softmax ignores it).
- `fold_value_biases`: b_V is folded into b_O (each pattern row sums to one).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from .._engine.fold import gated_block_norms
from ..architectures._spec import text_config
from ._weights import STACKED

if TYPE_CHECKING:
    from .._engine.model import HookedModel

MSG_CENTER_RMS = """center_writing_weights=True needs LayerNorm: {family} uses RMSNorm, which does
not remove the mean of the residual stream, so centring the weights would change its outputs
(TransformerLens skips it for RMSNorm models). Call without center_writing_weights."""

MSG_CENTER_SOFTCAP = """center_unembed=True would change this {family} model's outputs: its final
logit soft-cap (tanh) is not shift-invariant. Call without center_unembed."""

MSG_GATE_LN_BIAS = """fold_ln cannot fold a LayerNorm bias into a gated MLP's gate (TransformerLens
has no gate bias to put it in). Call without fold_ln."""

MSG_FOLD_GATED_NORM = """fold_ln cannot fold {norms} of {family}: each multiplies its norm's output
by a gate computed from it (norm(x) * sigmoid(mlp(norm(x)))), so the norm is not a plain scale
and its weight cannot move into the weights that read the gated output. Call without fold_ln."""

MSG_FOLD_GATED_V = """fold_value_biases cannot fold b_V into b_O on {family}: its attention
output is gated (the output projection reads z * attn.hook_gate), so b_V's contribution,
b_V * gate @ W_O, changes with each position's gate and is no constant bias. Call without
fold_value_biases."""


@dataclass(frozen=True)
class ProcessedWeights:
    """A processed copy of a model's weights, TransformerLens's names and shapes (see
    `hooklens.analysis.Weights`). Norm parameters are (n_layers, d_model) or (d_model,), None
    once folded (or when the norm has none). `W_K`/`W_V`/`b_K`/`b_V` are expanded to n_heads,
    like `model.W_K`. `normalization_type` is "LN", "LNPre", "RMS" or "RMSPre"; `applied` lists
    the processing steps done."""

    W_E: torch.Tensor
    W_pos: torch.Tensor | None
    W_U: torch.Tensor
    b_U: torch.Tensor
    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    b_Q: torch.Tensor
    b_K: torch.Tensor
    b_V: torch.Tensor
    b_O: torch.Tensor
    W_in: torch.Tensor
    W_gate: torch.Tensor | None
    W_out: torch.Tensor
    b_in: torch.Tensor
    b_out: torch.Tensor
    ln1_w: torch.Tensor | None
    ln1_b: torch.Tensor | None
    ln2_w: torch.Tensor | None
    ln2_b: torch.Tensor | None
    ln_final_w: torch.Tensor | None
    ln_final_b: torch.Tensor | None
    normalization_type: str
    applied: tuple[str, ...] = field(default_factory=tuple)


def _stack_opt(model: HookedModel, get: str, which: str) -> torch.Tensor | None:
    w = model.weights
    parts = [getattr(w.layer(i), get)(which) for i in range(model.cfg.n_layers)]
    if any(p is None for p in parts):
        return None
    return torch.stack([p.detach().clone() for p in parts])


def _copy(model: HookedModel) -> ProcessedWeights:
    w = model.weights
    with torch.no_grad():
        stacked: dict[str, torch.Tensor | None] = {}
        for name in STACKED:
            if name == "W_gate" and not model.cfg.gated_mlp:
                stacked[name] = None
                continue
            stacked[name] = getattr(w, name).detach().clone()
        final_w, final_b = w.ln_final_w(), w.ln_final_b()
        return ProcessedWeights(
            W_E=w.W_E.detach().clone(),
            W_pos=w.W_pos.detach().clone() if model.spec.pos_embed is not None else None,
            W_U=w.W_U.detach().clone(),
            b_U=w.b_U.detach().clone(),
            ln1_w=_stack_opt(model, "ln_w", "ln1"),
            ln1_b=_stack_opt(model, "ln_b", "ln1"),
            ln2_w=_stack_opt(model, "ln_w", "ln2"),
            ln2_b=_stack_opt(model, "ln_b", "ln2"),
            ln_final_w=None if final_w is None else final_w.detach().clone(),
            ln_final_b=None if final_b is None else final_b.detach().clone(),
            normalization_type=model.cfg.normalization_type,
            **stacked,  # type: ignore[arg-type]
        )


def _fold_into(
    w: torch.Tensor, b: torch.Tensor | None, ln_w: torch.Tensor | None, ln_b: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold a norm (multiplier ln_w, bias ln_b, each (n_layers, d_model) or (d_model,)) into a
    reader `x @ w + b`, where w is (..., d_model, out) with d_model at axis -2."""
    if ln_b is not None:
        shift = (w * _along_rows(ln_b, w)).sum(-2)
        b = shift if b is None else b + shift
    if ln_w is not None:
        w = w * _along_rows(ln_w, w)
    return w, b


def _along_rows(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """v (n_layers, d_model) or (d_model,) shaped to multiply w's d_model axis (-2)."""
    if v.ndim == 1:
        return v[:, None]
    return v.view(v.shape[0], *([1] * (w.ndim - 3)), v.shape[1], 1)


def _center_rows(w: torch.Tensor) -> torch.Tensor:
    return w - w.mean(-2, keepdim=True)


def fold_ln(model: HookedModel, p: ProcessedWeights) -> ProcessedWeights:
    layernorm = p.normalization_type.startswith("LN")
    if p.ln2_b is not None and p.W_gate is not None:
        raise ValueError(MSG_GATE_LN_BIAS)
    wq, bq = _fold_into(p.W_Q, p.b_Q, p.ln1_w, p.ln1_b)
    wk, bk = _fold_into(p.W_K, p.b_K, p.ln1_w, p.ln1_b)
    wv, bv = _fold_into(p.W_V, p.b_V, p.ln1_w, p.ln1_b)
    w_in, b_in = _fold_into(p.W_in, p.b_in, p.ln2_w, p.ln2_b)
    w_gate = None if p.W_gate is None else _fold_into(p.W_gate, None, p.ln2_w, None)[0]
    w_u, b_u = _fold_into(p.W_U, p.b_U, p.ln_final_w, p.ln_final_b)
    if layernorm:  # the normalized input is centred, so centring the readers changes nothing
        wq, wk, wv, w_in, w_u = map(_center_rows, (wq, wk, wv, w_in, w_u))
        w_gate = None if w_gate is None else _center_rows(w_gate)
    assert bq is not None and bk is not None and bv is not None
    assert b_in is not None and b_u is not None
    return replace(
        p,
        W_Q=wq, W_K=wk, W_V=wv, b_Q=bq, b_K=bk, b_V=bv, W_in=w_in, b_in=b_in, W_gate=w_gate,
        W_U=w_u, b_U=b_u, ln1_w=None, ln1_b=None, ln2_w=None, ln2_b=None, ln_final_w=None,
        ln_final_b=None, normalization_type="LNPre" if layernorm else "RMSPre",
        applied=(*p.applied, "fold_ln"),
    )  # fmt: skip


def center_writing_weights(model: HookedModel, p: ProcessedWeights) -> ProcessedWeights:
    if not p.normalization_type.startswith("LN"):
        raise ValueError(MSG_CENTER_RMS.format(family=model.cfg.family))

    def center(t: torch.Tensor) -> torch.Tensor:
        return t - t.mean(-1, keepdim=True)

    return replace(
        p,
        W_E=center(p.W_E), W_pos=None if p.W_pos is None else center(p.W_pos),
        W_O=center(p.W_O), b_O=center(p.b_O), W_out=center(p.W_out), b_out=center(p.b_out),
        applied=(*p.applied, "center_writing_weights"),
    )  # fmt: skip


def center_unembed(model: HookedModel, p: ProcessedWeights) -> ProcessedWeights:
    cap = model.spec.final_logit_softcap
    if cap is not None and getattr(text_config(model.hf_model.config), cap, None):
        raise ValueError(MSG_CENTER_SOFTCAP.format(family=model.cfg.family))
    return replace(
        p,
        W_U=p.W_U - p.W_U.mean(-1, keepdim=True),
        b_U=p.b_U - p.b_U.mean(),
        applied=(*p.applied, "center_unembed"),
    )


def fold_value_biases(model: HookedModel, p: ProcessedWeights) -> ProcessedWeights:
    folded = p.b_O + torch.einsum("lhd,lhdm->lm", p.b_V, p.W_O)
    return replace(
        p, b_O=folded, b_V=torch.zeros_like(p.b_V), applied=(*p.applied, "fold_value_biases")
    )


def process_weights(
    model: HookedModel,
    fold_ln_: bool = False,
    center_writing_weights_: bool = False,
    center_unembed_: bool = False,
    fold_value_biases_: bool = False,
) -> ProcessedWeights:
    """A processed copy of `model`'s weights (see the module docstring); the model is unchanged."""
    if fold_ln_ and (gated := gated_block_norms(model.hf_model, model.spec)):
        names = ", ".join(gated)
        raise ValueError(MSG_FOLD_GATED_NORM.format(norms=names, family=model.cfg.family))
    if fold_value_biases_ and model.spec.attn_gate is not None:
        raise ValueError(MSG_FOLD_GATED_V.format(family=model.cfg.family))
    p = _copy(model)
    with torch.no_grad():
        if fold_ln_:
            p = fold_ln(model, p)
        if center_writing_weights_:
            p = center_writing_weights(model, p)
        if center_unembed_:
            p = center_unembed(model, p)
        if fold_value_biases_:
            p = fold_value_biases(model, p)
    return p
