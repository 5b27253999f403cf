"""`HookedModel`: a Hugging Face causal LM, as loaded, with TransformerLens-style hook points."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .._errors import (
    MSG_EMPTY_FILTER,
    MSG_MISSING_HOOK,
    MSG_UNKNOWN_HOOK,
    HookNameError,
    InputError,
    SeveralAttentionCallsError,
    UnsupportedModelError,
)
from ..analysis import WeightsMixin
from ..architectures import ArchSpec, adapter_for_model
from . import attention as _attention
from . import memory as _memory
from .blocks import BlocksMixin
from .cache import ActivationCache
from .caching import PosSlice, backward_of, drop_unused_storage, in_model_order, saving_hooks
from .config import HookedModelConfig, build_config
from .generate import generate as _generate
from .generate import prompt_batch
from .head_sites import left_out_reason
from .hookapi import HooksMixin, ModelHooks, NameOrPredicate, hook_context
from .hooks import HookFn, HookPoint
from .kwargs import checked
from .loading import load
from .loss import Output, loss_fn
from .ownership import Ownership
from .placement import PlacementMixin
from .point_messages import LEFT_OUT
from .points import POINTS_BY_SUFFIX, split_name
from .sites import get_module
from .stop import run_until
from .tokens import TextOrTokens, TokenMixin
from .unembed import final_normed, unembed
from .verify import refusal, verify
from .wiring import build_points

NamesFilter = None | str | Sequence[str] | Callable[[str], bool]


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a forward's result (logits, loss, or both)."""
    return [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]


class HookedModel(BlocksMixin, HooksMixin, TokenMixin, WeightsMixin, PlacementMixin):
    """A wrapped Hugging Face causal LM. Weights are not copied or converted.

    Build it with `HookedModel.from_pretrained(...)` (or `HookedModel(hf_model, tokenizer)`).
    Hook names are the same on every family; `hook_names()` lists this model's, in execution
    order. `hf_model` and `tokenizer` are the wrapped objects. Weights in TransformerLens's
    names and shapes (`W_Q`, `OV`, ...) come from `WeightsMixin` (`hooklens.analysis`).
    """

    def __init__(self, hf_model: nn.Module, tokenizer: Any = None, model_name: str = "") -> None:
        spec = adapter_for_model(hf_model)
        _attention.ensure_registered()
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        #: Held by every call that runs the model or attaches hooks (see `ownership.py`).
        self.owner = Ownership()
        name = model_name or getattr(hf_model.config, "_name_or_path", "")
        if not spec.derived:
            return self._adopt(spec, name)
        try:  # a guess from module names: checked against the model's own forward
            self._adopt(spec, name)
            try:
                verify(self)
            except SeveralAttentionCallsError as exc:  # differential attention: each module
                # kept whole, as its layer's mixer (its points say why), and checked again
                self._adopt(adapter_for_model(hf_model, opaque_attention=exc.why), name)
                verify(self)
        except UnsupportedModelError:
            raise
        except Exception as exc:
            why = f"wrapping it raised {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise refusal(spec, type(hf_model).__name__, [why]) from exc

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        hf_model: nn.Module | None = None,
        tokenizer: Any = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        device_map: str | dict[str, Any] | None = None,
        ungroup_grouped_query_attention: bool = False,
        **hf_kwargs: Any,
    ) -> HookedModel:
        """Load (or wrap an already loaded) model.

        `name_or_path`: hub name or local folder. `hf_model`: an already loaded model to wrap
        (its config is used; nothing is downloaded). `tokenizer`: else loaded from
        `name_or_path`; when that fails a warning is given and token ids still work.
        `device`, `dtype`, `device_map` (e.g. "auto", with accelerate) and any other keyword
        (`gguf_file=`, `max_memory=`, `offload_folder=`, `revision=`...) go to transformers.
        `ungroup_grouped_query_attention=True`: one key/value head per query head (`ungroup.py`).
        `fold_ln=True`, `center_unembed=True`: TransformerLens's processing of the loaded
        weights, in place (`fold.py`); `cfg.processing` lists what was applied.
        """
        # Warnings of loading (a missing tokenizer) wait until the model is known to be wrapped.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ungroup = ungroup_grouped_query_attention
            hf_model, tokenizer, processing = load(
                name_or_path, hf_model, tokenizer, device, dtype, device_map, ungroup, hf_kwargs
            )
            model = cls(hf_model, tokenizer, model_name=name_or_path)
            model.cfg = replace(model.cfg, processing=processing)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return model

    def _adopt(self, spec: ArchSpec, name: str) -> None:
        """Take `spec` as this model's adapter: its config, features and hook points."""
        self.spec = spec
        self.cfg: HookedModelConfig = build_config(self.hf_model, spec, name, self._input_device())
        self._features = spec.features(self.hf_model.config)
        self._points, self._builder = build_points(self.hf_model, spec, self.cfg, self._features)
        self._order = {name: i for i, name in enumerate(self._points)}  # a cache's order

    def _input_device(self) -> torch.device:
        emb = get_module(self.hf_model, self.spec.embed)
        weight = getattr(emb, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            return weight.device
        return torch.device("cpu")

    # -- hook names ----------------------------------------------------------------------------
    def hook_names(self) -> list[str]:
        """Every hook point of this model, in execution order (`wiring._ordered`)."""
        return list(self._points)

    @property
    def hook_dict(self) -> dict[str, HookPoint]:
        """Name -> HookPoint (read it; attach functions with `hooks()` / `run_with_hooks`)."""
        return dict(self._points)

    def _point(self, name: str) -> HookPoint:
        point = self._points.get(name)
        if point is not None:
            return point
        layer, suffix = split_name(name)
        spec = POINTS_BY_SUFFIX.get(suffix)
        in_range = layer is None or 0 <= layer < self.cfg.n_layers
        in_scope = spec is not None and (spec.scope == "block") == (layer is not None)
        feats = (
            self._features
            if layer is None or not in_range
            else self.spec.layer_features(self.hf_model.config, layer)
        )
        lacking = spec.lacking(feats) if spec is not None else None
        if spec is not None and spec.on_demand and lacking is None and in_range:  # left out
            block = self.hf_model.get_submodule(self.spec.blocks)[layer or 0]  # type: ignore[index]
            lacking = left_out_reason(self.spec, block, suffix) or LEFT_OUT
        if lacking is not None and in_range and in_scope:
            words = self.spec.layer_words(layer or 0, self.cfg.n_layers)
            why = lacking.format(family=self.spec.family, layer=layer or 0, **words)
            raise HookNameError(
                MSG_MISSING_HOOK.format(name=name, family=self.spec.family, why=why)
            )
        close = difflib.get_close_matches(name, list(self._points), n=3, cutoff=0.5)
        raise HookNameError(
            MSG_UNKNOWN_HOOK.format(
                name=name,
                family=self.spec.family,
                suggestions=", ".join(repr(c) for c in close) or "(nothing close)",
                count=len(self._points),
            )
        )

    def _select(self, names: NamesFilter) -> list[HookPoint]:
        """Resolve a names filter (None = all, a name, names, or a predicate) to points."""
        if names is None:  # every point but the on-demand ones not switched on (set_use_*)
            return self._default_points()
        if isinstance(names, str):
            return [self._point(names)]
        if callable(names):
            points = self._points  # names through `filter`, a C loop: a call per point
            found = [points[n] for n in filter(names, points)]
        else:
            found = [self._point(n) for n in names]
        if not found:
            raise HookNameError(
                MSG_EMPTY_FILTER.format(filter=names, examples=", ".join(self.hook_names()[:4]))
            )
        return found

    # -- hooks ---------------------------------------------------------------------------------
    @checked()
    def hooks(
        self,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        bwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        *,
        prepend: bool = False,
    ) -> ModelHooks:
        """Context manager attaching `fwd_hooks` / `bwd_hooks` = [(name or predicate, fn), ...].

        `fn(activation, hook)` returns a replacement tensor (same shape, dtype, device) or None;
        a backward function gets the gradient of the point's activation and may replace it.
        All functions are removed when the block exits, also on error (`reset_hooks_end=False`
        leaves them attached until `reset_hooks()`). A backward function fires in the backward
        pass of the forwards run inside the block, also when the backward comes after it.
        `clear_contexts=True` empties every point's `hook.ctx` when the functions are removed.
        """
        return hook_context(self, fwd_hooks, bwd_hooks, reset_hooks_end, prepend, clear_contexts)

    # -- forward passes ------------------------------------------------------------------------
    @checked()
    def forward(
        self,
        input: TextOrTokens,
        return_type: str | None = "logits",
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        stop_at_layer: int | None = None,
    ) -> Any:
        """Run the model on text or ids (batch, pos).

        Returns logits (batch, pos, d_vocab) for `return_type="logits"`, the next-token loss
        for "loss" (mean, or (batch, pos - 1) with `loss_per_token=True`; the padding of a
        batch of texts is not counted), `Output(logits, loss)` for "both", None for None.
        `stop_at_layer=k` runs blocks 0..k-1 only (negative k counts from the end, as in a
        slice) and returns the residual stream (batch, pos, d_model) entering block k,
        whatever `return_type` says, as TransformerLens does.
        """
        if return_type not in ("logits", "loss", "both", None):
            raise InputError(f"return_type={return_type!r}: use 'logits', 'loss', 'both' or None")
        tokens = self._prepare_tokens(input, prepend_bos)
        with self.owner.hold():
            if stop_at_layer is not None:
                return run_until(self, tokens, attention_mask, stop_at_layer)
            out = self.hf_model(input_ids=tokens, attention_mask=attention_mask, use_cache=False)
        logits = out.logits
        _memory.keep_for_next_call(_memory.cpu_bytes([logits]))
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        if attention_mask is None:  # padding of a batch of texts is not predicted
            attention_mask = self._padding_mask(input, prepend_bos, tokens.shape[1])
        loss = loss_fn(logits, tokens, attention_mask, per_token=loss_per_token)
        return loss if return_type == "loss" else Output(logits, loss)

    __call__ = forward
    loss_fn = staticmethod(loss_fn)

    @checked("forward")
    def run_with_hooks(
        self,
        input: TextOrTokens,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        return_type: str | None = "logits",
        *,
        bwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        **forward_kwargs: Any,
    ) -> Any:
        """`forward` (any of its arguments) with `fwd_hooks` / `bwd_hooks` attached for this
        call; backward functions fire when the result's backward runs. `clear_contexts` as
        for `hooks`."""
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end, clear_contexts):
            return self.forward(input, return_type, **forward_kwargs)

    @checked("forward")
    def run_with_cache(
        self,
        input: TextOrTokens,
        names_filter: NamesFilter = None,
        remove_batch_dim: bool = False,
        device: str | torch.device | None = None,
        *,
        incl_bwd: bool = False,
        pos_slice: PosSlice = None,
        return_type: str | None = "logits",
        clear_contexts: bool = False,
        **forward_kwargs: Any,
    ) -> tuple[Any, ActivationCache]:
        """Forward pass that stores the activations of the selected points.

        Returns (logits (batch, pos, d_vocab), ActivationCache); `forward`'s arguments apply.
        With `remove_batch_dim=True` (batch must be 1) cached tensors lose their batch
        dimension; logits keep it. `device` moves cached tensors (e.g. "cpu"); `pos_slice` keeps
        some positions of each. `incl_bwd=True` also runs the backward of the output (a scalar:
        use `return_type="loss"`) and caches each point's gradient as `name + "_grad"`;
        `clear_contexts=True` empties every point's `hook.ctx` at the end.
        Only the selected points are hooked: a filter with residual-stream points only leaves
        attention fused. On CPU, the heap memory of a cache stays with the process for the next
        one when it is dropped (see `_memory.py`; `hooklens.release_freed_memory()`).
        """
        points = self._select(names_filter)
        if remove_batch_dim:
            probe = self._prepare_tokens(input, forward_kwargs.get("prepend_bos"))
            if probe.shape[0] != 1:
                raise InputError(
                    f"remove_batch_dim=True needs a batch of 1, got {probe.shape[0]} sequences"
                )
        store, fwd, bwd = saving_hooks(
            points,
            remove_batch_dim=remove_batch_dim,
            device=device,
            pos_slice=pos_slice,
            incl_bwd=incl_bwd,
        )
        with (
            # held while the cache's functions are on: no other thread's forward fills it
            ModelHooks(self, fwd, bwd_pairs=bwd, clear_contexts=clear_contexts, owner=self.owner),
            torch.enable_grad() if incl_bwd else nullcontext(),
        ):
            out = self.forward(input, return_type, **forward_kwargs)
            if incl_bwd:
                backward_of(out, return_type)
        cache_bytes = drop_unused_storage(store)
        ordered = in_model_order(store, self._order)
        _memory.keep_for_next_call(cache_bytes + _memory.cpu_bytes(_tensors(out)))
        return out, ActivationCache(ordered, self, has_batch_dim=not remove_batch_dim)

    @checked()
    def generate(
        self,
        input: TextOrTokens = "",
        max_new_tokens: int = 10,
        stop_at_eos: bool = True,
        eos_token_id: int | list[int] | None = None,
        do_sample: bool = True,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float = 1.0,
        freq_penalty: float = 0.0,
        use_past_kv_cache: bool = True,
        prepend_bos: bool | None = None,
        return_type: str = "input",
        verbose: bool = False,
        *,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
    ) -> Any:
        """Generate, TransformerLens's way: samples by default (`do_sample=False` or
        `temperature=0` is greedy), `top_k`, else `top_p`, and `freq_penalty` as it applies
        them. `fwd_hooks` are active on every step (with the KV cache each step after the first
        sees only the new position). A list of texts is padded on the left. Returns a string for
        text input (prompt plus continuation; `return_type="tokens"` for ids), else ids (batch,
        pos + new)."""
        if return_type not in ("input", "str", "tokens"):
            raise InputError(f"return_type={return_type!r}: use 'input', 'str' or 'tokens'")
        if verbose:
            raise InputError("verbose=True: hooklens shows no progress bar; pass verbose=False")
        tokens, mask = prompt_batch(self, input, prepend_bos)
        with self.hooks(fwd_hooks):
            out = _generate(
                self, tokens, mask, max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos,
                eos_token_id=eos_token_id, do_sample=do_sample, top_k=top_k, top_p=top_p,
                temperature=temperature, freq_penalty=freq_penalty,
                use_past_kv_cache=use_past_kv_cache,
            )  # fmt: skip
        text_in = isinstance(input, str) or (isinstance(input, list) and isinstance(input[0], str))
        if return_type == "str" or (text_in and return_type == "input"):
            texts = self._need_tokenizer().batch_decode(out, skip_special_tokens=True)
            return texts[0] if isinstance(input, str) else texts
        return out

    # -- logit lens / unembedding ------------------------------------------------------------
    @checked()
    def unembed_resid(self, resid: torch.Tensor, apply_ln: bool = True) -> torch.Tensor:
        """Logits from a residual-stream tensor (..., d_model) -> (..., d_vocab).

        Applies the model's own final norm (when `apply_ln`), the unembedding and any final
        soft-cap, exactly as the model does after its last block: the logit lens.
        """
        x = resid
        if apply_ln:
            x = final_normed(self, x)
        return unembed(self, x)

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"HookedModel({c.architecture}, family={c.family}, n_layers={c.n_layers}, "
            f"d_model={c.d_model}, n_heads={c.n_heads}, n_kv_heads={c.n_kv_heads})"
        )
