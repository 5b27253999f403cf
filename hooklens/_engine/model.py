"""`HookedModel`: a Hugging Face causal LM, as loaded, with TransformerLens-style hook points."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._errors import (
    MSG_DERIVED_MISMATCH,
    MSG_EMPTY_FILTER,
    MSG_MISSING_HOOK,
    MSG_UNKNOWN_HOOK,
    HookNameError,
    InputError,
    UnsupportedModelError,
)
from ..architectures import adapter_for_model
from . import attention as _attention
from . import memory as _memory
from .cache import ActivationCache
from .config import HookedModelConfig, build_config
from .hooks import HookContext, HookFn, HookPoint
from .loading import load
from .points import POINTS, POINTS_BY_SUFFIX, split_name
from .sites import Builder, get_module
from .tokens import TextOrTokens, TokenMixin
from .verify import verify

NameOrPredicate = str | Callable[[str], bool]
NamesFilter = None | str | Sequence[str] | Callable[[str], bool]


def _drop_unused_storage(store: dict[str, torch.Tensor]) -> int:
    """Clone the cached views that would keep a much bigger tensor alive; return the bytes the
    cache then keeps on CPU (each storage once).

    q, k and v are often slices of one fused projection's output: cached together they cover
    it, so they stay views (no copy); a lone slice is cloned so only what was asked is kept.
    """
    storages = [t.untyped_storage() for t in store.values()]
    covered: dict[int, int] = {}
    for t, storage in zip(store.values(), storages, strict=True):
        key = storage.data_ptr()
        covered[key] = covered.get(key, 0) + t.numel() * t.element_size()
    kept: dict[int, int] = {}
    cloned = 0
    for (name, t), storage in zip(list(store.items()), storages, strict=True):
        if storage.nbytes() > 1.25 * covered[storage.data_ptr()]:
            store[name] = t.clone()
            cloned += t.numel() * t.element_size() if t.device.type == "cpu" else 0
        elif t.device.type == "cpu":
            kept[storage.data_ptr()] = storage.nbytes()
    return sum(kept.values()) + cloned


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a forward's result (logits, loss, or both)."""
    return [t for t in (out if isinstance(out, tuple) else (out,)) if isinstance(t, torch.Tensor)]


class HookedModel(TokenMixin):
    """A wrapped Hugging Face causal LM. Weights are not copied or converted.

    Build it with `HookedModel.from_pretrained(...)` (or `HookedModel(hf_model, tokenizer)`).
    Hook names are the same on every family; `hook_names()` lists this model's, in execution
    order. `hf_model` and `tokenizer` are the wrapped objects.
    """

    def __init__(self, hf_model: nn.Module, tokenizer: Any = None, model_name: str = "") -> None:
        spec = adapter_for_model(hf_model)
        _attention.ensure_registered()
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.spec = spec
        self.cfg: HookedModelConfig = build_config(
            hf_model,
            spec,
            model_name or getattr(hf_model.config, "_name_or_path", ""),
            self._input_device(),
        )
        self._features = spec.features(hf_model.config)
        if not spec.derived:
            self._build_points()
            return
        try:  # a guess from module names: checked against the model's own forward
            self._build_points()
            verify(self)
        except UnsupportedModelError:
            raise
        except Exception as exc:
            why = f"wrapping it raised {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise UnsupportedModelError(
                MSG_DERIVED_MISMATCH.format(cls=type(hf_model).__name__, problems=why)
            ) from exc

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
        **hf_kwargs: Any,
    ) -> HookedModel:
        """Load (or wrap an already loaded) model.

        `name_or_path`: hub name or local folder. `hf_model`: an already loaded model to wrap
        (its config is used; nothing is downloaded). `tokenizer`: else loaded from
        `name_or_path`; when that fails a warning is given and token ids still work.
        `device`, `dtype`, `device_map` (e.g. "auto", with accelerate) and any other keyword
        (`gguf_file=`, `max_memory=`, `offload_folder=`, `revision=`...) go to transformers.
        """
        # Warnings of loading (a missing tokenizer) wait until the model is known to be wrapped.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hf_model, tokenizer = load(
                name_or_path, hf_model, tokenizer, device, dtype, device_map, hf_kwargs
            )
            model = cls(hf_model, tokenizer, model_name=name_or_path)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return model

    def _build_points(self) -> None:
        spec, model = self.spec, self.hf_model
        b = Builder(model, spec, self.cfg, self._features)
        b.output_site(get_module(model, spec.embed), "hook_embed", None)
        if spec.pos_embed is not None:
            b.output_site(get_module(model, spec.pos_embed), "hook_pos_embed", None)
        for layer, block in enumerate(b.blocks):
            sub = block.get_submodule
            b.input_site(block, "hook_resid_pre", layer, in_place=False)
            if spec.ln1 is not None:
                b.norm_site(sub(spec.ln1), "ln1", layer)
            qs, ks = spec.q_source, spec.k_source
            if qs is not None and ks is not None and qs == ks:
                b.proj_site(sub(qs.module), qs, layer, q=True, k=True)
            else:
                if qs is not None:
                    b.proj_site(sub(qs.module), qs, layer, q=True, k=False)
                if ks is not None:
                    b.proj_site(sub(ks.module), ks, layer, q=False, k=True)
            b.attention_site(sub(spec.attn), layer, q_here=qs is None, k_here=ks is None)
            b.output_site(sub(spec.attn_out), "hook_attn_out", layer)
            mid_at = spec.resid_mid_at or spec.ln2
            if mid_at is not None and "sequential" in self._features:
                b.input_site(sub(mid_at), "hook_resid_mid", layer, in_place=True)
            if spec.ln2 is not None:
                b.norm_site(sub(spec.ln2), "ln2", layer)
            feats = spec.layer_features(model.config, layer)
            if spec.moe_router is not None and spec.moe_experts is not None and "moe" in feats:
                b.router_site(sub(spec.moe_router), layer)
                b.experts_site(sub(spec.moe_experts), layer)
                b.expert_out_site(sub(spec.moe_experts), layer)
            elif spec.mlp_gate_up_fused:
                b.fused_gate_up_site(sub(spec.mlp_in), layer)
            else:
                b.output_site(sub(spec.mlp_in), "mlp.hook_pre", layer)
            if spec.mlp_up is not None and "gated_mlp" in feats:
                b.output_site(sub(spec.mlp_up), "mlp.hook_pre_linear", layer)
            if "dense_mlp" in feats:
                b.input_site(sub(spec.mlp_down), "mlp.hook_post", layer, in_place=False)
            b.output_site(sub(spec.mlp_out), "hook_mlp_out", layer)
            b.output_site(block, "hook_resid_post", layer)
        b.norm_site(get_module(model, spec.final_norm), "ln_final", None)
        groups = {"model": 0, "block": 1, "final": 2}

        def execution_order(name: str) -> tuple[int, int, int]:
            layer, suffix = split_name(name)
            row = POINTS_BY_SUFFIX[suffix]
            return (groups[row.scope], layer or 0, POINTS.index(row))

        names = sorted(b.points, key=execution_order)
        self._points: dict[str, HookPoint] = {n: b.points[n] for n in names}
        for attn, site in b.attn_sites:
            _attention.add_site(attn, site)
        self._builder = b

    def _input_device(self) -> torch.device:
        emb = self.hf_model.get_submodule(self.spec.embed)
        weight = getattr(emb, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            return weight.device
        return torch.device("cpu")

    # -- hook names ----------------------------------------------------------------------------
    def hook_names(self) -> list[str]:
        """Every hook point of this model, in execution order."""
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
        if (
            spec is not None
            and spec.requires is not None
            and spec.requires not in feats
            and in_range
            and in_scope
        ):
            why = spec.missing.format(family=self.spec.family, layer=layer or 0)
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
        if names is None:
            return list(self._points.values())
        if isinstance(names, str):
            return [self._point(names)]
        if callable(names):
            found = [p for n, p in self._points.items() if names(n)]
        else:
            found = [self._point(n) for n in names]
        if not found:
            raise HookNameError(
                MSG_EMPTY_FILTER.format(filter=names, examples=", ".join(self.hook_names()[:4]))
            )
        return found

    # -- hooks ---------------------------------------------------------------------------------
    def hooks(
        self, fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (), *, prepend: bool = False
    ) -> HookContext:
        """Context manager attaching `fwd_hooks` = [(name or predicate, fn), ...] while open.

        `fn(activation, hook)` returns a replacement tensor (same shape, dtype, device) or None.
        All functions are removed when the block exits, also on error.
        """
        pairs = [(p, fn) for name, fn in fwd_hooks for p in self._select(name)]
        return HookContext(pairs, prepend=prepend)

    def reset_hooks(self) -> None:
        """Detach every function from every point (a safety net; contexts already do this)."""
        for point in self._points.values():
            for fn in list(point.fns):
                point.remove(fn)

    # -- forward passes ------------------------------------------------------------------------
    def forward(
        self,
        input: TextOrTokens,
        return_type: str | None = "logits",
        *,
        prepend_bos: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        **hf_kwargs: Any,
    ) -> Any:
        """Run the model on text or ids (batch, pos).

        Returns logits (batch, pos, d_vocab) for `return_type="logits"`, the mean next-token
        loss for "loss", (logits, loss) for "both", None for None.
        """
        tokens = self._prepare_tokens(input, prepend_bos)
        hf_kwargs.setdefault("use_cache", False)
        out = self.hf_model(input_ids=tokens, attention_mask=attention_mask, **hf_kwargs)
        logits = out.logits
        _memory.keep_for_next_call(_memory.cpu_bytes([logits]))
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten().to(logits.device)
        )
        return loss if return_type == "loss" else (logits, loss)

    __call__ = forward

    def run_with_hooks(
        self,
        input: TextOrTokens,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        return_type: str | None = "logits",
        **kwargs: Any,
    ) -> Any:
        """`forward` with `fwd_hooks` attached for this one call."""
        with self.hooks(fwd_hooks):
            return self.forward(input, return_type, **kwargs)

    def run_with_cache(
        self,
        input: TextOrTokens,
        names_filter: NamesFilter = None,
        remove_batch_dim: bool = False,
        device: str | torch.device | None = None,
        *,
        return_type: str | None = "logits",
        **kwargs: Any,
    ) -> tuple[Any, ActivationCache]:
        """Forward pass that stores the activations of the selected points.

        Returns (logits (batch, pos, d_vocab), ActivationCache). With `remove_batch_dim=True`
        (batch must be 1) cached tensors lose their batch dimension; logits keep it. `device`
        moves cached tensors (e.g. "cpu"). Only the selected points are hooked: a filter with
        residual-stream points only leaves attention fused. On CPU, the heap memory of a
        cache stays with the process for the next one when it is dropped (see `_memory.py`;
        `hooklens.release_freed_memory()` gives it back).
        """
        points = self._select(names_filter)
        if remove_batch_dim:
            probe = self._prepare_tokens(input, kwargs.get("prepend_bos"))
            if probe.shape[0] != 1:
                raise InputError(
                    f"remove_batch_dim=True needs a batch of 1, got {probe.shape[0]} sequences"
                )
        store: dict[str, torch.Tensor] = {}
        target = torch.device(device) if device is not None else None

        def save(x: torch.Tensor, hook: HookPoint) -> None:
            t = x.detach()
            if remove_batch_dim:
                t = t[0]
            if target is not None and t.device != target:
                t = t.to(target)
            store[hook.name] = t

        with self.hooks([(p.name, save) for p in points]):
            out = self.forward(input, return_type, **kwargs)
        cache_bytes = _drop_unused_storage(store)
        ordered = {n: store[n] for n in self._points if n in store}
        _memory.keep_for_next_call(cache_bytes + _memory.cpu_bytes(_tensors(out)))
        return out, ActivationCache(ordered, self, has_batch_dim=not remove_batch_dim)

    def generate(
        self,
        input: TextOrTokens,
        max_new_tokens: int = 10,
        fwd_hooks: Sequence[tuple[NameOrPredicate, HookFn]] = (),
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_at_eos: bool = True,
        use_past_kv_cache: bool = True,
        prepend_bos: bool | None = None,
        return_type: str = "input",
        **generate_kwargs: Any,
    ) -> Any:
        """Generate with `fwd_hooks` active on every step (with the KV cache each step after
        the first sees only the new position). Returns a string for text input (prompt plus
        continuation; `return_type="tokens"` for ids), else ids (batch, pos + new)."""
        tokens = self._prepare_tokens(input, prepend_bos)
        tok = self.tokenizer
        eos = getattr(tok, "eos_token_id", None) if tok is not None else None
        eos = eos if eos is not None else getattr(self.hf_model.config, "eos_token_id", None)
        pad = getattr(tok, "pad_token_id", None) if tok is not None else None
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "use_cache": use_past_kv_cache,
            "pad_token_id": pad if pad is not None else (eos if isinstance(eos, int) else 0),
            "attention_mask": torch.ones_like(tokens),
        }
        if do_sample:
            kwargs.update(temperature=temperature, top_k=top_k, top_p=top_p)
        if stop_at_eos and eos is not None:
            kwargs["eos_token_id"] = eos
        else:
            kwargs["eos_token_id"] = None
        kwargs.update(generate_kwargs)
        with self.hooks(fwd_hooks):
            out = self.hf_model.generate(tokens, **kwargs)  # type: ignore[operator]
        text_in = isinstance(input, str) or (isinstance(input, list) and isinstance(input[0], str))
        if text_in and return_type in ("input", "str"):
            texts = self._need_tokenizer().batch_decode(out, skip_special_tokens=True)
            return texts[0] if isinstance(input, str) else texts
        return out

    # -- logit lens / unembedding ------------------------------------------------------------
    def unembed_resid(self, resid: torch.Tensor, apply_ln: bool = True) -> torch.Tensor:
        """Logits from a residual-stream tensor (..., d_model) -> (..., d_vocab).

        Applies the model's own final norm (when `apply_ln`), the unembedding and any final
        soft-cap, exactly as the model does after its last block: the logit lens.
        """
        x = resid
        if apply_ln:
            x = self.hf_model.get_submodule(self.spec.final_norm)(x)
        logits = self.hf_model.get_submodule(self.spec.unembed)(x)
        if self.spec.logit_scale is not None:
            attr, op = self.spec.logit_scale
            factor = getattr(self.hf_model.config, attr)
            logits = logits * factor if op == "mul" else logits / factor
        cap_attr = self.spec.final_logit_softcap
        cap = getattr(self.hf_model.config, cap_attr, None) if cap_attr else None
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding matrix (d_model, d_vocab) (a transposed view of the HF weight)."""
        weight: torch.Tensor = self.hf_model.get_submodule(self.spec.unembed).weight  # type: ignore[assignment]
        return weight.T

    # -- for batched patching (internal, documented in architectures/README.md) ---------------
    def _forward_with_kv(self, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Logits (batch, pos, d_vocab) and transformers' KV cache of a forward pass."""
        out = self.hf_model(input_ids=tokens, use_cache=True)
        return out.logits, getattr(out, "cache", None) or getattr(out, "past_key_values", None)

    def _run_from_layer(
        self,
        resid: torch.Tensor,
        layer: int,
        *,
        kv_cache: Any = None,
        attention_mask: torch.Tensor | None = None,
        **hf_kwargs: Any,
    ) -> torch.Tensor:
        """Run blocks `layer`.. on `resid` (batch, q, d_model) entering block `layer`.

        Blocks below `layer` are skipped (swapped for identities for this call). With
        `kv_cache` (a transformers Cache holding the first `pos0` positions for every
        layer, e.g. from `_forward_with_kv(tokens)`, then `.crop(pos0 - pos)` (transformers 5
        crops with a negative count) and `.batch_repeat_interleave(n)`),
        `resid` holds positions pos0..pos0+q-1 and attends to the cached keys/values.
        Active hooks fire as usual (on the new positions only). Returns logits (batch, q, d_vocab).
        """
        blocks: Any = self.hf_model.get_submodule(self.spec.blocks)
        # Placeholder embeddings: block `layer` receives `resid` instead, so no token lookup is
        # needed (and no pad-token ids trigger transformers' padding warning).
        placeholder = torch.zeros(resid.shape, dtype=resid.dtype, device=self._input_device())
        originals = [blocks[i] for i in range(layer)]

        def put(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            return resid.to(x.device, x.dtype)

        try:
            for i in range(layer):
                blocks[i] = _Skip()
            with self.hooks([(f"blocks.{layer}.hook_resid_pre", put)], prepend=True):
                out = self.hf_model(
                    inputs_embeds=placeholder,
                    attention_mask=attention_mask,
                    cache=kv_cache,
                    use_cache=kv_cache is not None,
                    **hf_kwargs,
                )
        finally:
            for i, block in enumerate(originals):
                blocks[i] = block
        logits: torch.Tensor = out.logits
        return logits

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"HookedModel({c.architecture}, family={c.family}, n_layers={c.n_layers}, "
            f"d_model={c.d_model}, n_heads={c.n_heads}, n_kv_heads={c.n_kv_heads})"
        )


class _Skip(nn.Module):
    """Stands in for a skipped block: returns its input unchanged."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states
