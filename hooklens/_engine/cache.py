"""`ActivationCache`: a read-only mapping of hook name -> tensor, plus residual-stream analyses.

Keys are full hook names or TransformerLens's shorthands (`cache["pattern", 0]`,
`cache["scale", 0, "ln1"]`, `cache["embed"]`, negative layers); the analyses live in `resid.py`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from .._errors import InputError
from ..analysis import _heads
from .caching import PosSlice
from .kwargs import checked
from .names import get_act_name
from .resid import ResidMixin, block_layer, stream_layer

if TYPE_CHECKING:
    from .model import HookedModel


class ActivationCache(ResidMixin, Mapping[str, torch.Tensor]):
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
    def _resolve(self, key: str | tuple[Any, ...]) -> str:
        """A full name, a TransformerLens shorthand ("embed", "k6") or a tuple (name, layer
        [, layer_type]), e.g. ("pattern", -1), ("scale", 0, "ln1"), ("hook_z", 0); a "_grad"
        suffix names the gradient (`cache["resid_post_grad", -1]`)."""
        short = key if isinstance(key, str) else key[0] if isinstance(key, tuple) and key else ""
        if isinstance(short, str) and short.endswith("_grad") and short not in self._data:
            base = short.removesuffix("_grad")
            rest = () if isinstance(key, str) else key[1:]
            return self._resolve(base if isinstance(key, str) else (base, *rest)) + "_grad"
        if isinstance(key, str):
            is_full = key in self._data or "." in key or key.startswith("hook_")
            return key if is_full else get_act_name(key)
        if not isinstance(key, tuple) or not key or not isinstance(key[0], str):
            raise KeyError(f"cache keys are names or (name, layer[, layer_type]); got {key!r}")
        name, layer, layer_type = (*key, None, None)[:3]
        if isinstance(layer, int) and not isinstance(layer, bool):
            try:
                layer = block_layer(layer, self.model.cfg.n_layers)
            except InputError as exc:
                raise KeyError(f"{key!r}: {exc}") from None
        if layer is not None and layer_type is None and (name.startswith("hook_") or "." in name):
            prefix = f"blocks.{layer}."
            for full in self._data:
                if full == prefix + name or (full.startswith(prefix) and full.endswith("." + name)):
                    return full
            return prefix + name
        return get_act_name(name, layer, layer_type)

    def __getitem__(self, key: str | tuple[Any, ...]) -> torch.Tensor:
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
    @checked()
    def to(self, device: str | torch.device) -> ActivationCache:
        """A cache with every tensor moved to `device`."""
        moved = {k: v.to(device) for k, v in self._data.items()}
        return ActivationCache(moved, self.model, self.has_batch_dim)

    @checked()
    def remove_batch_dim(self) -> ActivationCache:
        """A cache without the batch dimension (the batch must be 1)."""
        if not self.has_batch_dim:
            return self
        for name, value in self._data.items():
            if value.shape[0] != 1:
                raise ValueError(f"remove_batch_dim needs batch 1; {name} has {value.shape[0]}")
        return ActivationCache({k: v[0] for k, v in self._data.items()}, self.model, False)

    # -- stacks --------------------------------------------------------------------------------
    @checked()
    def stack_activation(
        self, activation_name: str, layer: int | None = -1, sublayer_type: str | None = None
    ) -> torch.Tensor:
        """Stack `activation_name` (a shorthand, as for `cache[...]`) over the blocks before
        the stream layer `layer` (all for -1 / None / n_layers): (layers, ...)."""
        n = stream_layer(layer, self.model.cfg.n_layers)
        return torch.stack([self[(activation_name, i, sublayer_type)] for i in range(n)])

    # -- logits ------------------------------------------------------------------------------
    @checked()
    def logit_attrs(
        self,
        residual_stack: torch.Tensor,
        tokens: int | str | torch.Tensor,
        incorrect_tokens: int | str | torch.Tensor | None = None,
        pos_slice: Any = None,
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
