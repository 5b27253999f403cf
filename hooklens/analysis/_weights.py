"""The weights of a wrapped model in TransformerLens's shapes and names, read from the HF modules.

Nothing is converted or copied at load: every access reads the Hugging Face parameters again.
Per layer (`LayerWeights`), a weight is a *view* of the HF parameter wherever the layout allows
(transposes, per-head reshapes and slices of fused projections are views, so an in-place edit of
a view edits the model). Copies, each said in the property's docstring: key/value weights of
grouped-query attention expanded to `n_heads` (TransformerLens's `W_K`/`W_V`, via
`repeat_interleave`; the unexpanded `_W_K`/`_W_V` are views), biases a module does not have
(zeros, like TransformerLens), scaled embeddings (Gemma's `embed_scale`). Model-level stacks
(`Weights.W_Q`, ...) are `torch.stack`s of the per-layer tensors: a fresh copy of that one kind
of weight, made on each access and kept by nobody, as TransformerLens's `model.W_Q` is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._engine.linear import bias_of, in_out, o_module, read_o, read_qkv, scaled
from .._engine.pos_table import table_rows
from ..architectures._convs import refuse_convolved
from ..architectures._factors import embed_affine, embed_factor
from ._factored import FactoredMatrix
from ._weight_messages import MSG_EXPERTS, MSG_REUSED_KV, msg_uneven
from ._widths import why_missing

if TYPE_CHECKING:
    from .._engine.model import HookedModel

MSG_NO_POS = """{family} has no learned position embedding (positions enter by rotating q and k
inside attention), so there is no W_pos. Rotary models have W_E only."""


def norm_weight(module: nn.Module, offset: float) -> torch.Tensor | None:
    """The multiplier a norm applies, (d_model,): its weight plus the family's offset (Gemma's
    `1 + w`; a copy then), or None for a norm without weight."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    return weight + offset if offset else weight


def _zeros(ref: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=ref.dtype, device=ref.device)


class LayerWeights:
    """One block's weights in TransformerLens's shapes (views where possible, see module doc)."""

    def __init__(self, model: HookedModel, layer: int) -> None:
        self._model = model
        self.layer = layer
        self._cfg = model.cfg.layer(layer)  # this layer's own head and MLP widths
        blocks: Any = model.hf_model.get_submodule(model.spec.blocks)
        self._block: nn.Module = blocks[layer]

    def _attention(self) -> nn.Module:
        """The block, after checking that it attends (a hybrid's mixer layer has no W_Q)."""
        return self._having("attention")

    def _having(self, part: str) -> nn.Module:
        """The block, after checking that it has `part` ("attention" or "MLP", a dense one): a
        hybrid's mixer layer has no W_Q, a Mamba block or a block kept whole no W_in, nor has a
        mixture of experts one."""
        spec, n = self._model.spec, self._model.cfg.n_layers
        features = spec.layer_features(self._model.hf_model.config, self.layer)
        if part == "MLP" and "moe" in features:
            raise ValueError(MSG_EXPERTS.format(layer=self.layer, experts=spec.moe_experts))
        if part.lower() not in features:
            words = spec.layer_words(self.layer, n)
            attending = f"; layers with attention: {words['attn_layers']}"
            raise ValueError(
                f"layer {self.layer} of this model is a {words['mixer']} layer and has no "
                f"{part} weights{words['why'].replace(' points', '', 1)}"
                f"{attending if part == 'attention' else ''}. Read those with "
                "model.weights.layer(l) for a layer l that has them."
            )
        return self._block

    def _sub(self, path: str) -> nn.Module:
        return self._block.get_submodule(path)

    # -- attention -----------------------------------------------------------------------------
    def _qkv(self, which: int = 0) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """[(W (heads, d_model, d_head), b (heads, d_head) or None)] for q, k, v (KV heads);
        raises where `which` ("QKV") is convolved over positions (Inkling's k, v)."""
        x = "QKV"[which]
        source = dict(self._model.spec.kv_reused).get(self.layer)
        if source is not None and x != "Q":
            raise ValueError(MSG_REUSED_KV.format(layer=self.layer, source=source, x=x))
        refuse_convolved(self._model.spec, self._block, x.lower(), f"W_{x} (nor b_{x}, {x}K/OV)")
        only_q = source is not None  # its own queries, an earlier layer's keys and values
        return read_qkv(self._model.spec, self._cfg, self._attention(), only_q=only_q)

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        rep = self._cfg.n_heads // self._cfg.n_kv_heads
        return t if rep == 1 else t.repeat_interleave(rep, dim=0)

    def _bias(self, which: int) -> torch.Tensor:
        w, b = self._qkv(which)[which]
        return b if b is not None else _zeros(w, w.shape[0], w.shape[2])

    @property
    def W_Q(self) -> torch.Tensor:
        """(n_heads, d_model, d_head), a view. `ln1.hook_normalized @ W_Q + b_Q` is `hook_q`
        (before any q-norm, on families that have one)."""
        return self._qkv()[0][0]

    @property
    def _W_K(self) -> torch.Tensor:
        """(n_kv_heads, d_model, d_head), a view (TransformerLens's unexpanded GQA weight)."""
        return self._qkv(1)[1][0]

    @property
    def _W_V(self) -> torch.Tensor:
        """(n_kv_heads, d_model, d_head), a view."""
        return self._qkv(2)[2][0]

    @property
    def W_K(self) -> torch.Tensor:
        """(n_heads, d_model, d_head): query head h uses key head h // (n_heads // n_kv_heads),
        as TransformerLens expands it. A view without GQA, a copy with it."""
        return self._expand(self._W_K)

    @property
    def W_V(self) -> torch.Tensor:
        """(n_heads, d_model, d_head), expanded like `W_K` (a copy with GQA)."""
        return self._expand(self._W_V)

    @property
    def b_Q(self) -> torch.Tensor:
        """(n_heads, d_head): a view, or zeros (a copy) when the projection has no bias."""
        return self._bias(0)

    @property
    def _b_K(self) -> torch.Tensor:
        """(n_kv_heads, d_head)."""
        return self._bias(1)

    @property
    def _b_V(self) -> torch.Tensor:
        """(n_kv_heads, d_head)."""
        return self._bias(2)

    @property
    def b_K(self) -> torch.Tensor:
        """(n_heads, d_head), expanded like `W_K`."""
        return self._expand(self._b_K)

    @property
    def b_V(self) -> torch.Tensor:
        """(n_heads, d_head), expanded like `W_V`."""
        return self._expand(self._b_V)

    def _o(self) -> nn.Module:
        return o_module(self._model.spec, self._attention())

    @property
    def W_O(self) -> torch.Tensor:
        """(n_heads, d_head, d_model), a view: head h writes `z[..., h, :] @ W_O[h]` (with
        `z * attn.hook_gate` where attention's output is gated: W_O acts on the gated z)."""
        return read_o(self._model.spec, self._cfg, self._attention())[0]

    @property
    def b_O(self) -> torch.Tensor:
        """(d_model,): a view (a copy where the block scales attention's output), or zeros."""
        mod = self._o()
        b = read_o(self._model.spec, self._cfg, self._attention())[1]
        return b if b is not None else _zeros(in_out(mod), self._model.cfg.d_model)

    @property
    def OV(self) -> FactoredMatrix:
        """W_V @ W_O per head of this layer, (n_heads, d_model, d_model), factored (`model.OV`
        stacks these, where every layer's heads are alike)."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """W_Q @ W_K^T per head of this layer, (n_heads, d_model, d_model), factored."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    # -- MLP -----------------------------------------------------------------------------------
    def _mlp_in(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(W_in, b_in, W_gate) as views: W (d_model, d_mlp); copies times the factor the MLP
        applies to `mlp.hook_pre` before its activation where it has one (Falcon-H1)."""
        spec, d_mlp = self._model.spec, self._cfg.d_mlp
        first = self._having("MLP").get_submodule(spec.mlp_in)
        w, b = in_out(first), bias_of(first)
        f = spec.factor(self._block, "mlp_pre")
        if spec.mlp_gate_up_fused:  # gate first, then up (Phi-3)
            up_b = None if b is None else b[d_mlp:]
            return w[:, d_mlp:], up_b, w[:, :d_mlp] * f if f != 1 else w[:, :d_mlp]
        if f != 1:
            w, b = w * f, None if b is None else b * f
        if spec.mlp_up is not None:
            up = self._sub(spec.mlp_up)
            return in_out(up), bias_of(up), w
        return w, b, None

    @property
    def W_in(self) -> torch.Tensor:
        """(d_model, d_mlp), a view: the input projection (the up/linear branch of a gated MLP,
        whose output is `mlp.hook_pre_linear`; else the one giving `mlp.hook_pre`)."""
        return self._mlp_in()[0]

    @property
    def W_gate(self) -> torch.Tensor:
        """(d_model, d_mlp), a view: the gate of a gated MLP (`mlp.hook_pre` is
        `ln2.hook_normalized @ W_gate`). Raises on a non-gated MLP, which has none."""
        gate = self._mlp_in()[2]
        if gate is None:
            raise AttributeError(
                f"{self._model.spec.family}'s MLP is not gated, so it has no W_gate; "
                "W_in gives mlp.hook_pre."
            )
        return gate

    @property
    def b_in(self) -> torch.Tensor:
        """(d_mlp,): a view, or zeros."""
        w, b, _ = self._mlp_in()
        return b if b is not None else _zeros(w, w.shape[1])

    def _down(self) -> nn.Module:
        return self._having("MLP").get_submodule(self._model.spec.mlp_down)

    def _out(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W_out, b_out or None): views, or copies times the factor the block applies to what
        the MLP adds to the stream (Granite's residual_multiplier), so that they give
        `hook_mlp_out`."""
        mod = self._down()
        refuse_convolved(self._model.spec, self._block, "mlp_out", "W_out (nor b_out)")
        return scaled(in_out(mod), bias_of(mod), self._model.spec.added_scale(self._block))

    @property
    def W_out(self) -> torch.Tensor:
        """(d_mlp, d_model), a view (a copy where the block scales the MLP's output):
        `mlp.hook_post @ W_out + b_out` is `hook_mlp_out`."""
        return self._out()[0]

    @property
    def b_out(self) -> torch.Tensor:
        """(d_model,): a view (a copy where the block scales the MLP's output), or zeros."""
        b = self._out()[1]
        return b if b is not None else _zeros(in_out(self._down()), self._model.cfg.d_model)

    # -- norms ---------------------------------------------------------------------------------
    def _norm(self, which: str) -> nn.Module:
        spec = self._model.spec
        path = spec.ln2 if which == "ln2" and spec.ln2 is not None else spec.ln1
        if path is None:
            raise ValueError(
                f"{spec.family} has no norm before attention (its norms follow attention and "
                "the MLP), so there is no ln1 weight to read or fold"
            )
        return spec.norm_module(self._block, path)  # a gated norm's inner norm

    def ln_w(self, which: str) -> torch.Tensor | None:
        """The multiplier of "ln1" or "ln2" (ln1 where the MLP reads ln1), (d_model,)."""
        return norm_weight(self._norm(which), self._model.spec.norm_weight_offset)

    def ln_b(self, which: str) -> torch.Tensor | None:
        """The bias of "ln1" or "ln2" (LayerNorm), (d_model,), or None."""
        return bias_of(self._norm(which))


#: The per-layer attributes that `Weights` stacks over layers (name -> TransformerLens shape).
STACKED = (
    "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O",
    "W_in", "W_gate", "W_out", "b_in", "b_out",
)  # fmt: skip


class Weights:
    """Every weight of a model in TransformerLens's names, `model.weights`.

    Per layer: `weights.layer(l).W_Q`, ... (views where possible; see the module docstring).
    Stacked over layers: `W_Q`/`W_K`/`W_V` (n_layers, n_heads, d_model, d_head), `W_O`
    (n_layers, n_heads, d_head, d_model), `b_Q`/`b_K`/`b_V` (n_layers, n_heads, d_head), `b_O`
    (n_layers, d_model), `W_in`/`W_gate` (n_layers, d_model, d_mlp), `W_out`
    (n_layers, d_mlp, d_model), `b_in` (n_layers, d_mlp), `b_out` (n_layers, d_model): each a
    copy of that one kind made by `torch.stack` on access. `W_E` (d_vocab, d_model), `W_pos`
    (n_ctx, d_model), `W_U` (d_model, d_vocab) and `b_U` (d_vocab,) are views.
    """

    def __init__(self, model: HookedModel) -> None:
        self._model = model

    def layer(self, layer: int) -> LayerWeights:
        """Block `layer`'s weights (negative counts from the end)."""
        n = self._model.cfg.n_layers
        if not -n <= layer < n:
            raise IndexError(f"layer {layer} is out of range for a model with {n} layers")
        return LayerWeights(self._model, layer % n)

    def _stack(self, name: str) -> torch.Tensor:
        parts = [getattr(self.layer(i), name) for i in range(self._model.cfg.n_layers)]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) > 1:  # heads (or MLPs) of different widths cannot stack
            raise ValueError(msg_uneven(self._model.cfg, name, parts))
        return torch.stack([p.to(parts[0].device) for p in parts])

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in STACKED:
            return self._stack(name)
        if (why := why_missing(self._model, name)) is not None:  # the property raised
            raise AttributeError(why)
        if name == "W_pos":  # the property raised AttributeError; say why again
            raise AttributeError(MSG_NO_POS.format(family=self._model.spec.family))
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *STACKED})

    def _module(self, path: str) -> nn.Module:
        return self._model.hf_model.get_submodule(path)

    @property
    def W_E(self) -> torch.Tensor:
        """(d_vocab, d_model): `W_E[tokens]` is `hook_embed`. A view, or a copy for embeddings
        that scale their output (Gemma's `embed_scale`, which TransformerLens also folds in),
        or whose model scales it outside the module (Marian's decoder, Granite, CTRL:
        `embed_factor`), or shifts and scales it (ZAYA: `embed_affine`, `(W_E + shift) *
        scale`). Raises where the embeddings are projected to the stream after their sum is
        normalized (RemBERT: `_widths.py`): no matrix gives `hook_embed` there."""
        if (why := why_missing(self._model, "W_E")) is not None:  # projected embeddings
            raise AttributeError(why)
        spec = self._model.spec
        emb = self._module(spec.embed)
        weight: torch.Tensor = emb.weight  # type: ignore[assignment]
        scale = getattr(emb, "embed_scale", None)
        scale = float(scale) if isinstance(scale, torch.Tensor | float | int) else 1.0
        scale *= embed_factor(self._model.hf_model, spec)
        if (affine := embed_affine(self._model.hf_model, spec)) is not None:
            # the module's own scale is in its output; the model shifts and scales that
            return (weight * scale + affine[0]) * affine[1]
        if scale != 1.0:
            return weight * torch.as_tensor(scale).to(weight.dtype)
        return weight

    @property
    def W_pos(self) -> torch.Tensor:
        """(n_ctx, d_model), a view: row p is `hook_pos_embed` at position p (OPT's offset of
        2 rows, read from its module's `offset`, is skipped)."""
        if (why := why_missing(self._model, "W_pos")) is not None:  # projected embeddings
            raise AttributeError(why)
        spec = self._model.spec
        if spec.pos_table is not None:  # rows of a table the model indexes itself (CTRL)
            return table_rows(self._model.hf_model, spec.pos_table[0])
        if spec.pos_embed is None:
            raise AttributeError(MSG_NO_POS.format(family=spec.family))
        emb = self._module(spec.pos_embed)
        weight: torch.Tensor = emb.weight  # type: ignore[assignment]
        offset = getattr(emb, "offset", 0)
        return weight[offset:] if isinstance(offset, int) and offset else weight

    @property
    def W_U(self) -> torch.Tensor:
        """(d_model, d_vocab), a view (of W_E's storage when the embeddings are tied). Raises
        where the LM head maps the stream to another width first (`_widths.py`)."""
        if (why := why_missing(self._model, "W_U")) is not None:
            raise AttributeError(why)
        # the head's rows past the vocabulary are padding the model cuts off (Inkling)
        return in_out(self._module(self._model.spec.unembed))[:, : self._model.cfg.d_vocab]

    @property
    def b_U(self) -> torch.Tensor:
        """(d_vocab,): a view, or zeros. Logits are `ln_final.hook_normalized @ W_U + b_U`
        (then the final soft-cap on Gemma 2)."""
        mod = self._module(self._model.spec.unembed)
        b = bias_of(mod)
        d_vocab = self._model.cfg.d_vocab
        return b[:d_vocab] if b is not None else _zeros(in_out(mod), d_vocab)

    def ln_final_w(self) -> torch.Tensor | None:
        """The final norm's multiplier (d_model,) (with the family's offset), or None (also
        where the model has no final norm)."""
        path = self._model.spec.final_norm
        return (
            None
            if path is None
            else norm_weight(self._module(path), self._model.spec.norm_weight_offset)
        )

    def ln_final_b(self) -> torch.Tensor | None:
        """The final norm's bias (d_model,), or None."""
        path = self._model.spec.final_norm
        return None if path is None else bias_of(self._module(path))
