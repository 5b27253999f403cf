"""Residual-stream analyses of an `ActivationCache`, with TransformerLens's meanings.

Residual-stream tensors are (batch, pos, d_model), or (pos, d_model) after `remove_batch_dim`.
Stacks put the component dimension first: (components, [batch,] pos, d_model).

Layers. A *stream* layer (the `layer` of `accumulated_resid`, `decompose_resid`,
`apply_ln_to_stack`, `stack_activation`) names the stream entering block `layer`, in
0..n_layers, where n_layers (and None) is the final stream, read by the final norm. Negative
values count from the end of those n_layers + 1 streams, as in Python: -1 is the final stream
(TransformerLens's meaning), -2 the stream entering the last block.

Norms. hooklens does not fold the norms' weights into the next matrix (TransformerLens's
`fold_ln`), so `apply_ln` multiplies by the norm's weight and leaves its bias (a constant) out:
`stack @ model.W_U` is then what TransformerLens gives with its default `fold_ln=True`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._errors import InputError
from .caching import PosSlice, slice_axis
from .kwargs import checked
from .sites import _norm_eps

if TYPE_CHECKING:
    from .model import HookedModel

MSG_POST_LN = (
    "{what} is not available on {family}: its blocks are post-LN (each block normalizes the "
    "stream after attention and after the MLP), so the stream is not a sum of what each part "
    "wrote, and no norm reads it linearly. Use cache.accumulated_resid() (the stream entering "
    "each block, and the final one) with model.unembed_resid(...) for the logit lens, and "
    "hook_attn_out / hook_mlp_out for what each part adds before its norm."
)


def _mixers_of(points: Any, layer: int) -> list[str]:
    """What block `layer`'s sequence mixers write: ["attn_out"], a hybrid's ["mixer_out"], both
    where a mixer sits beside attention (Falcon-H1), or none for a layer that is only an MLP."""
    return [k for k in ("attn_out", "mixer_out") if f"blocks.{layer}.hook_{k}" in points]


def stream_layer(layer: int | None, n_layers: int, what: str = "layer") -> int:
    """A stream layer (see the module docstring) as an index in 0..n_layers."""
    if layer is None:
        return n_layers
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise InputError(f"{what} must be an int or None, got {layer!r}")
    k = layer + n_layers + 1 if layer < 0 else layer
    if not 0 <= k <= n_layers:
        raise InputError(
            f"{what}={layer} is out of range: streams are 0..{n_layers} ({n_layers} = the final "
            f"stream, also -1 or None; -{n_layers + 1} = the embeddings)."
        )
    return k


def block_layer(layer: int, n_layers: int) -> int:
    """A block index (negative counts from the end, as in Python) in 0..n_layers-1."""
    k = layer + n_layers if layer < 0 else layer
    if not 0 <= k < n_layers:
        raise InputError(f"layer {layer} is out of range for a model with {n_layers} layers")
    return k


class ResidMixin:
    """`accumulated_resid`, `decompose_resid`, `apply_ln_to_stack` for `ActivationCache`."""

    model: HookedModel
    has_batch_dim: bool
    _data: dict[str, torch.Tensor]

    def __getitem__(self, key: Any) -> torch.Tensor:  # pragma: no cover - ActivationCache's
        raise NotImplementedError

    def _check_sum(self, what: str, parts: bool = True) -> None:
        """Post-LN blocks renormalize the stream in every block: it is no sum of parts. With
        `parts` (a sum of what the blocks' parts add), blocks kept whole and blocks that
        rescale their residual have none either."""
        if self.model.spec.post_ln:
            raise InputError(MSG_POST_LN.format(family=self.model.cfg.family, what=what))
        spec = self.model.spec
        if spec.streams is not None:  # no hook_resid_pre/post to stack or sum
            raise InputError(
                f"{what}: the residual stream of {self.model.cfg.family} is several parallel "
                f"streams, and hooklens has no point on it ({spec.streams}). Use the blocks' "
                "parts: hook_attn_out, hook_mlp_out."
            )
        whole = spec.whole_blocks()
        why = f"its blocks are kept whole: {whole}" if whole else spec.unsummed
        if why is not None and parts:
            raise InputError(
                f"{what}: on {self.model.cfg.family} the stream is no sum of parts hooklens "
                f"can read ({why}). Use accumulated_resid, or the blocks' "
                "hook_resid_pre/hook_resid_post."
            )

    def _check_mid(self) -> None:
        what = "incl_mid / mlp_input (hook_resid_mid is before ln1, not the stream)"
        self._check_sum(what, parts=False)
        if self.model.spec.whole_blocks() is not None:  # no hook_resid_mid inside them
            self._check_sum("incl_mid / mlp_input")
        if self.model.cfg.parallel_residual:
            raise InputError(
                f"{self.model.cfg.family} uses a parallel residual: there is no hook_resid_mid "
                "(attention and MLP both read hook_resid_pre). Call without incl_mid/mlp_input."
            )

    @checked()
    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream entering each block up to and including `layer`.

        Entries: resid_pre of blocks 0..layer (`"{l}_pre"`; resid_mid `"{l}_mid"` of the blocks
        before `layer` with `incl_mid`, and of `layer` itself with `mlp_input`), and for the
        final stream (`layer` None, -1 or n_layers) the last resid_post (`"final_post"`). So
        `layer=1` gives ['0_pre', '1_pre']. Shape (components, [batch,] pos, d_model). A layer
        the forward skips (`LayerLayout("skipped")`) has its input as its "mid".
        `apply_ln` for the final stream recomputes the final norm on each entry (the logit
        lens: `model.unembed_resid(stack)` differs only by the norm's bias); for an inner layer
        it divides by that layer's cached norm scale (see `apply_ln_to_stack`). Post-LN blocks
        (BERT): the final entry is the last `hook_normalized_resid_post`; `incl_mid`,
        `mlp_input` and `apply_ln` raise (use `model.unembed_resid(stack)`).
        """
        n = self.model.cfg.n_layers
        layer = stream_layer(layer, n)
        if self.model.spec.streams is not None:  # no one stream to stack
            self._check_sum("accumulated_resid", parts=False)
        if incl_mid or mlp_input:
            self._check_mid()
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        for i in range(layer + 1):
            if i == n:  # post-LN: the stream leaving the last block is ln2's output
                out = "hook_normalized_resid_post" if self.model.spec.post_ln else "hook_resid_post"
                parts.append(self[f"blocks.{n - 1}.{out}"])
                labels.append("final_post")
                continue
            parts.append(self[f"blocks.{i}.hook_resid_pre"])
            labels.append(f"{i}_pre")
            if (incl_mid and i < layer) or (mlp_input and i == layer):
                # a layer the forward skips: its middle is its input
                skipped = "skipped" in self.model.spec.layer_features(self.model.hf_model.config, i)
                parts.append(self[f"blocks.{i}.hook_resid_{'pre' if skipped else 'mid'}"])
                labels.append(f"{i}_mid")
        stack = torch.stack([slice_axis(p, pos_slice, -2) for p in parts])
        if apply_ln:
            stack = self.apply_ln_to_stack(
                stack, layer, mlp_input, pos_slice, recompute_ln=layer == n
            )
        return (stack, labels) if return_labels else stack

    @checked()
    def decompose_resid(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        mode: str = "all",
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ) -> Any:
        """The stream entering block `layer` (the final stream for None / -1 / n_layers) as a
        sum of what each part wrote to it.

        Components: hook_embed, hook_pos_embed (learned positions), hook_token_type_embed
        (where the model has token types; where it normalizes their sum, as RoBERTa-PreLayerNorm
        does, one component "embed_normalized": blocks.0.hook_resid_pre), then per block before
        `layer` hook_attn_out (hook_mixer_out on a hybrid's mixer layer, both where a mixer sits
        beside attention), hook_mlp_out (where
        the layer has an MLP; `mode` "attn" / "mlp" keeps one kind) and hook_per_layer_out
        (a per-layer embedding branch, Gemma 3n / 4; `mode` "all" only), and with
        `mlp_input` block `layer`'s attn_out (the MLP's input). Shape (components, [batch,]
        pos, d_model); `apply_ln` divides by the cached scale of the norm reading that stream.
        """
        self._check_sum("decompose_resid")
        if mode not in ("all", "attn", "mlp"):
            raise InputError(f'mode must be "all", "attn" or "mlp", got {mode!r}')
        n = self.model.cfg.n_layers
        layer = stream_layer(layer, n)
        if mlp_input and layer == n:
            raise InputError(
                "mlp_input=True decomposes the MLP input of block `layer`; the final stream "
                f"(layer={n}) has no MLP. Pass layer=0..{n - 1}."
            )
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        if incl_embeds and self.model.spec.embed_sum_norm is not None:
            # the embeddings' sum is normalized before block 0: one component, that stream
            parts.append(self["blocks.0.hook_resid_pre"])
            labels.append("embed_normalized")
        elif incl_embeds:
            for name, label in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed"),
                                ("hook_token_type_embed", "token_type_embed")):  # fmt: skip
                if name in self._data:
                    parts.append(self[name])
                    labels.append(label)
        points = self.model.hook_dict
        for i in range(layer):
            # a hybrid's mixer layer writes hook_mixer_out instead, an MLP-only layer neither,
            # and a layer without an MLP no mlp_out
            for mixer in _mixers_of(points, i) if mode in ("all", "attn") else ():
                parts.append(self[f"blocks.{i}.hook_{mixer}"])
                labels.append(f"{i}_{mixer}")
            if mode in ("all", "mlp") and f"blocks.{i}.hook_mlp_out" in points:
                parts.append(self[f"blocks.{i}.hook_mlp_out"])
                labels.append(f"{i}_mlp_out")
            if mode == "all" and f"blocks.{i}.hook_per_layer_out" in points:
                parts.append(self[f"blocks.{i}.hook_per_layer_out"])
                labels.append(f"{i}_per_layer_out")
        if mlp_input and mode in ("all", "attn"):
            self._check_mid()
            for mixer in _mixers_of(points, layer):
                parts.append(self[f"blocks.{layer}.hook_{mixer}"])
                labels.append(f"{layer}_{mixer}")
        if not parts:
            raise InputError(f"decompose_resid(layer={layer}) has no components to stack")
        stack = torch.stack([slice_axis(p, pos_slice, -2) for p in parts])
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice)
        return (stack, labels) if return_labels else stack

    @checked()
    def apply_ln_to_stack(
        self,
        residual_stack: torch.Tensor,
        layer: int | None = None,
        mlp_input: bool = False,
        pos_slice: PosSlice = None,
        batch_slice: int | slice | None = None,
        has_batch_dim: bool = True,
        recompute_ln: bool = False,
    ) -> torch.Tensor:
        """Apply, linearly, the norm that reads the stream at `layer` to each component.

        `residual_stack` is (components, [batch,] pos, d_model) with `pos_slice` already
        applied (it is applied to the cached scale here). With `has_batch_dim` (the stack's,
        default True) `batch_slice` is applied to the stack's dim 1 and to the scale. Each
        component is centred (LayerNorm), divided by the *cached* scale of the full stream
        (`ln_final.hook_scale` for the final stream, else `blocks.{layer}.ln1` / `ln2`
        (`mlp_input`) `.hook_scale`) and multiplied by the norm's weight; the bias is left out,
        so the components sum to the norm's output minus its bias. `recompute_ln=True` (final
        stream only) normalizes each component by its own statistics instead: the logit lens.
        """
        self._check_sum("apply_ln_to_stack (and apply_ln=True)", parts=False)
        model = self.model
        n = model.cfg.n_layers
        layer = stream_layer(layer, n)
        stack = residual_stack
        if has_batch_dim and batch_slice is not None:
            stack = slice_axis(stack, batch_slice, 1)
        if layer == n:
            if model.spec.final_norm is None:  # only post-LN decoders, refused above
                raise InputError(f"{model.cfg.family} has no final norm to apply")
            scale_name, module_path = "ln_final.hook_scale", model.spec.final_norm
        else:
            which = "ln2" if mlp_input and model.spec.ln2 is not None else "ln1"
            scale_name = f"blocks.{layer}.{which}.hook_scale"
            path = model.spec.ln2 if which == "ln2" else model.spec.ln1
            module_path = f"{model.spec.blocks}.{layer}.{path}"
        module = model.hf_model.get_submodule(module_path)
        if layer < n:  # a gated norm's inner norm (its scale is the one cached)
            module = model.spec.norm_module(module, "")
        layernorm = model.cfg.norm == "layernorm"
        if layernorm:
            stack = stack - stack.mean(-1, keepdim=True)
        if recompute_ln and layer == n:
            x = stack.float()
            sq = x.pow(2).mean(-1, keepdim=True)  # the variance, once centred
            stack = (x / (sq + _norm_eps(module)).sqrt()).to(stack.dtype)
        else:
            scale = slice_axis(self[scale_name], pos_slice, -2)
            if batch_slice is not None and self.has_batch_dim:
                scale = slice_axis(scale, batch_slice, 0)
            stack = stack / scale.to(stack.device)
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            stack = stack * (weight.to(stack.device, stack.dtype) + model.spec.norm_weight_offset)
        return stack
