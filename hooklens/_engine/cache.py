"""`ActivationCache`: a read-only mapping of hook name -> tensor, plus residual-stream analyses.

Residual-stream tensors are (batch, pos, d_model), or (pos, d_model) after `remove_batch_dim`.
Stacks built here put the component dimension first: (components, [batch,] pos, d_model).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from ..analysis import _heads

if TYPE_CHECKING:
    from .model import HookedModel

PosSlice = int | slice | None


def _slice_pos(t: torch.Tensor, pos_slice: PosSlice, dim: int = -2) -> torch.Tensor:
    if pos_slice is None:
        return t
    index: list[Any] = [slice(None)] * t.ndim
    index[dim] = pos_slice
    return t[tuple(index)]


class ActivationCache(Mapping[str, torch.Tensor]):
    """Activations from `HookedModel.run_with_cache`, keyed by hook name in execution order.

    Behaves like a read-only dict (`keys`, `items`, `in`, `len`, `[]`); `cache["pattern", 0]`
    is shorthand for `cache["blocks.0.attn.hook_pattern"]`.
    """

    def __init__(
        self, cache_dict: dict[str, torch.Tensor], model: HookedModel, has_batch_dim: bool = True
    ) -> None:
        self._data = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim

    # -- mapping -------------------------------------------------------------------------------
    def _resolve(self, key: str | tuple[str, int]) -> str:
        if isinstance(key, tuple):
            short, layer = key
            short = short if short.startswith("hook_") or "." in short else f"hook_{short}"
            prefix = f"blocks.{layer}."
            for name in self._data:
                if name.startswith(prefix) and (
                    name == prefix + short or name.endswith("." + short)
                ):
                    return name
            return prefix + short
        return key

    def __getitem__(self, key: str | tuple[str, int]) -> torch.Tensor:
        name = self._resolve(key)
        try:
            return self._data[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._data), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"{name!r} is not in this cache ({len(self._data)} entries).{hint} "
                "Was it excluded by names_filter?"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ActivationCache with keys {list(self._data)}"

    # -- copies --------------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> ActivationCache:
        """A cache with every tensor moved to `device`."""
        moved = {k: v.to(device) for k, v in self._data.items()}
        return ActivationCache(moved, self.model, self.has_batch_dim)

    def remove_batch_dim(self) -> ActivationCache:
        """A cache without the batch dimension (the batch must be 1)."""
        if not self.has_batch_dim:
            return self
        for name, value in self._data.items():
            if value.shape[0] != 1:
                raise ValueError(f"remove_batch_dim needs batch 1; {name} has {value.shape[0]}")
        return ActivationCache({k: v[0] for k, v in self._data.items()}, self.model, False)

    # -- stacks --------------------------------------------------------------------------------
    def stack_activation(self, name_suffix: str, layer: int = -1) -> torch.Tensor:
        """Stack `blocks.{l}.{name_suffix}` over layers 0..layer-1 (all for -1): (n_layers, ...)."""
        n = self.model.cfg.n_layers if layer == -1 else layer
        return torch.stack([self[self._resolve((name_suffix, i))] for i in range(n)])

    def _check_mid(self) -> None:
        if self.model.cfg.parallel_residual:
            raise ValueError(
                f"{self.model.cfg.family} uses a parallel residual: there is no hook_resid_mid "
                "(attention and MLP both read hook_resid_pre). Call without incl_mid/mlp_input."
            )

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream at each point up to `layer` (exclusive; None = the end).

        Entries: resid_pre of each block (and resid_mid with `incl_mid`), then the final
        resid_post when `layer` is None or n_layers. Shape (components, [batch,] pos, d_model).
        `apply_ln` applies the norm that reads the stream at `layer` (see `apply_ln_to_stack`):
        the logit lens with `layer=None`.
        """
        n = self.model.cfg.n_layers
        layer = n if layer is None else layer
        if incl_mid or mlp_input:
            self._check_mid()
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        for i in range(min(layer, n)):
            parts.append(self[f"blocks.{i}.hook_resid_pre"])
            labels.append(f"{i}_pre")
            if incl_mid:
                parts.append(self[f"blocks.{i}.hook_resid_mid"])
                labels.append(f"{i}_mid")
        if layer >= n:
            parts.append(self[f"blocks.{n - 1}.hook_resid_post"])
            labels.append("final_post")
        elif mlp_input:
            parts.append(self[f"blocks.{layer}.hook_resid_mid"])
            labels.append(f"{layer}_mid")
        stack = _slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice)
        return (stack, labels) if return_labels else stack

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
        """The residual stream at `layer` as a sum of what each part wrote to it.

        Components: hook_embed, hook_pos_embed (learned positions), then per block hook_attn_out
        and hook_mlp_out (`mode` "attn" / "mlp" keeps one kind). They sum to the stream entering
        `layer` (the final stream for None). Shape (components, [batch,] pos, d_model).
        """
        n = self.model.cfg.n_layers
        layer = n if layer is None else layer
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        if incl_embeds:
            for name, label in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")):
                if name in self._data:
                    parts.append(self[name])
                    labels.append(label)
        for i in range(min(layer, n)):
            if mode in ("all", "attn"):
                parts.append(self[f"blocks.{i}.hook_attn_out"])
                labels.append(f"{i}_attn_out")
            if mode in ("all", "mlp"):
                parts.append(self[f"blocks.{i}.hook_mlp_out"])
                labels.append(f"{i}_mlp_out")
        if mlp_input and layer < n and mode in ("all", "attn"):
            self._check_mid()
            parts.append(self[f"blocks.{layer}.hook_attn_out"])
            labels.append(f"{layer}_attn_out")
        stack = _slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice)
        return (stack, labels) if return_labels else stack

    # -- norms and logits ----------------------------------------------------------------------
    def apply_ln_to_stack(
        self,
        residual_stack: torch.Tensor,
        layer: int | None = None,
        mlp_input: bool = False,
        pos_slice: PosSlice = None,
        batch_slice: int | slice | None = None,
        has_batch_dim: bool | None = None,
    ) -> torch.Tensor:
        """Apply, linearly, the norm that reads the stream at `layer` to each component.

        `residual_stack` is (..., [batch,] pos, d_model). Each component is centred (LayerNorm),
        divided by the *cached* scale of the full stream (`ln_final.hook_scale` for None or
        n_layers, else `blocks.{layer}.ln1`/`ln2.hook_scale`) and multiplied by the norm's
        weight (its bias, a constant, is left out). So the components sum to the norm's output
        minus its bias, and `logit_attrs` of them sums to the logits minus a constant. For the
        model's own nonlinear norm on one tensor use `HookedModel.unembed_resid`.
        """
        model = self.model
        n = model.cfg.n_layers
        has_batch = self.has_batch_dim if has_batch_dim is None else has_batch_dim
        if layer is None or layer >= n:
            scale_name, module_path = "ln_final.hook_scale", model.spec.final_norm
        else:
            which = "ln2" if mlp_input else "ln1"
            if which == "ln2" and model.spec.ln2 is None:
                which = "ln1"
            scale_name = f"blocks.{layer}.{which}.hook_scale"
            path = model.spec.ln2 if which == "ln2" else model.spec.ln1
            module_path = f"{model.spec.blocks}.{layer}.{path}"
        scale = _slice_pos(self[scale_name], pos_slice)
        if batch_slice is not None and has_batch:
            scale = scale[batch_slice]
        stack = residual_stack
        if model.cfg.norm == "layernorm":
            stack = stack - stack.mean(-1, keepdim=True)
        stack = stack / scale.to(stack.device)
        weight = getattr(model.hf_model.get_submodule(module_path), "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            stack = stack * (weight.to(stack.device, stack.dtype) + model.spec.norm_weight_offset)
        return stack

    def logit_attrs(
        self,
        residual_stack: torch.Tensor,
        tokens: int | str | torch.Tensor,
        incorrect_tokens: int | str | torch.Tensor | None = None,
        pos_slice: PosSlice = None,
        batch_slice: int | slice | None = None,
        has_batch_dim: bool | None = None,
    ) -> torch.Tensor:
        """See `hooklens.analysis.logit_attrs` (applies the final norm, as TransformerLens)."""
        return _heads.logit_attrs(
            self, residual_stack, tokens, incorrect_tokens, pos_slice, batch_slice, has_batch_dim
        )

    # -- per-head and per-neuron results (hooklens/analysis/_heads.py) -------------------------
    def compute_head_results(self) -> None:
        """Add `blocks.{l}.attn.hook_result` ([batch,] pos, n_heads, d_model) for every layer."""
        _heads.compute_head_results(self, self._data)

    def stack_head_results(
        self,
        layer: int | None = -1,
        return_labels: bool = False,
        incl_remainder: bool = False,
        pos_slice: PosSlice = None,
        apply_ln: bool = False,
    ) -> Any:
        """See `hooklens.analysis.stack_head_results`."""
        return _heads.stack_head_results(
            self, layer, return_labels, incl_remainder, pos_slice, apply_ln
        )

    def stack_neuron_results(
        self,
        layer: int | None,
        pos_slice: PosSlice = None,
        neuron_slice: int | slice | None = None,
        return_labels: bool = False,
        incl_remainder: bool = False,
        apply_ln: bool = False,
    ) -> Any:
        """See `hooklens.analysis.stack_neuron_results`."""
        return _heads.stack_neuron_results(
            self, layer, pos_slice, neuron_slice, return_labels, incl_remainder, apply_ln
        )

    def get_full_resid_decomposition(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        expand_neurons: bool = True,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        return_labels: bool = False,
    ) -> Any:
        """See `hooklens.analysis.get_full_resid_decomposition`."""
        return _heads.get_full_resid_decomposition(
            self, layer, mlp_input, expand_neurons, apply_ln, pos_slice, return_labels
        )
