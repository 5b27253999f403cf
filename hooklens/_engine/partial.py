"""Partial forwards: run blocks `layer`.. of a recorded prompt on a new residual stream.

Patching a layer-`l` activation cannot change the layers below `l`, and with causal attention a
patch at position `p` cannot change earlier positions. A `RecordedRun` is one forward pass of a
prompt that keeps what such runs reuse: the logits, the residual stream entering each block,
every block's call arguments (masks, rotary tables, position ids) and every layer's keys and
values. `run_blocks` then calls the blocks from `layer` on itself, on positions `pos0..` only,
with a key/value cache of the first `pos0` positions: nothing in the Hugging Face model is
swapped or replaced, so a call from another thread (which waits for the model anyway, see
`ownership.py`) always finds the model as loaded.

A block's arguments are re-targeted by what transformers names them: the attention mask keeps its
query rows `pos0..`, position ids and rotary tables their positions `pos0..`, the cache is the
prefix cache. A block argument that depends on positions and is none of these makes the run
fall back to full forward passes (`RecordedRun.skips` is False), which are exact but slower.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import module_hooks
from .last_row import last_row_mlp
from .sites import _first
from .unembed import final_normed, unembed

#: Argument names under which transformers passes a block its key/value cache.
_CACHE_NAMES = ("cache", "past_key_values", "past_key_value", "layer_past")
#: Arguments with a position axis: name -> that axis.
_POSITION_AXIS = {"position_ids": -1, "cache_position": -1, "position_embeddings": -2}


def _is_cache(value: Any) -> bool:
    from transformers import Cache

    return isinstance(value, Cache)


@dataclass
class _BlockCall:
    """The arguments one block received in the recorded run, by parameter name."""

    arguments: dict[str, Any]
    extra: dict[str, Any]  # what went to the block's **kwargs
    hidden_name: str
    takes_mask: bool  # the block has an `attention_mask` parameter


def _blocks(model: Any) -> list[nn.Module]:
    return list(model.hf_model.get_submodule(model.spec.blocks))


def _cache_name(model: Any) -> str:
    """The name under which the causal-LM forward takes a key/value cache."""
    parameters = inspect.signature(model.hf_model.forward).parameters
    return next((n for n in _CACHE_NAMES if n in parameters), "past_key_values")


class PartialForwardError(Exception):
    """A block argument that `run_blocks` cannot re-target to fewer positions."""


def _narrow(name: str, value: Any, pos0: int, seq_len: int) -> Any:
    """A recorded block argument for query positions pos0..seq_len-1 only."""
    if name == "attention_mask":
        if not isinstance(value, torch.Tensor):
            raise PartialForwardError(f"attention_mask of type {type(value).__name__}")
        return value[..., pos0:, :]
    axis = _POSITION_AXIS.get(name)
    if axis is not None:
        if isinstance(value, tuple):
            return tuple(t.narrow(axis, pos0, seq_len - pos0) for t in value)
        if isinstance(value, torch.Tensor):
            return value.narrow(axis, pos0, seq_len - pos0)
    if isinstance(value, torch.Tensor) or (
        isinstance(value, tuple | list) and any(isinstance(v, torch.Tensor) for v in value)
    ):
        raise PartialForwardError(f"block argument {name!r}")
    return value


def _repeat(value: Any, batch: int, repeats: int) -> Any:
    """A recorded argument of a batch of `batch` prompts, for `repeats` copies of that batch
    (prompt-major copies: element `i * batch + b` is prompt b). Batch-1 tensors broadcast."""
    if repeats == 1 or batch == 1:
        return value
    if isinstance(value, tuple):
        return tuple(_repeat(v, batch, repeats) for v in value)
    if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == batch:
        return value.repeat(repeats, *([1] * (value.ndim - 1)))
    return value


def _retarget(name: str, value: Any, pos0: int, seq_len: int, cache: Any,
              batch: int = 1, repeats: int = 1) -> Any:  # fmt: skip
    """One block argument for `repeats` copies of the recorded batch, run on positions
    pos0..seq_len-1 and attending to `cache` for the earlier ones."""
    if name in _CACHE_NAMES or _is_cache(value):
        return cache
    if name == "use_cache":
        return cache is not None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if pos0 > 0:
        value = _narrow(name, value, pos0, seq_len)
    if name == "attention_mask" and isinstance(value, torch.Tensor) and value.shape[:1] == (1,):
        return value.expand(repeats * batch, *value.shape[1:])  # XGLM checks its batch size
    return _repeat(value, batch, repeats)


def _causal_rows(pos0: int, seq_len: int, device: torch.device) -> torch.Tensor:
    """Boolean mask (1, 1, seq_len - pos0, seq_len): query pos0+i attends to keys <= pos0+i."""
    keys = torch.arange(seq_len, device=device)
    queries = torch.arange(pos0, seq_len, device=device)
    return (keys[None, :] <= queries[:, None])[None, None]


class RecordedRun:
    """One forward pass of `tokens` (batch, pos), kept for partial forwards (see module doc).

    `logits` (batch, pos, d_vocab); `resid_pre(layer)` (batch, pos, d_model); `skips` says whether
    `run_blocks` can start at a layer and position (else patching runs full passes).
    Build it while holding the model (`HookedModel.hooks()` or its ownership).
    """

    def __init__(self, model: Any, tokens: torch.Tensor) -> None:
        from transformers import DynamicCache

        self.model = model
        self.tokens = tokens
        self.batch, self.seq_len = int(tokens.shape[0]), int(tokens.shape[1])
        blocks = _blocks(model)
        calls: dict[int, _BlockCall] = {}
        self._resid_pre: dict[int, torch.Tensor] = {}

        def recorder(layer: int, block: nn.Module) -> Any:
            signature = inspect.signature(block.forward)

            def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                bound = signature.bind(*args, **kwargs)
                arguments = dict(bound.arguments)
                hidden_name = next(iter(signature.parameters))
                extra: dict[str, Any] = {}
                for pname, param in signature.parameters.items():
                    if param.kind is inspect.Parameter.VAR_KEYWORD:
                        extra = dict(arguments.pop(pname, {}))
                self._resid_pre[layer] = arguments[hidden_name].detach()
                takes_mask = "attention_mask" in signature.parameters
                calls[layer] = _BlockCall(arguments, extra, hidden_name, takes_mask)

            return record

        # A cache of full layers: a sliding-window layer would keep only its window, and the
        # partial runs need every earlier position's keys and values. A hybrid's mixer layer
        # keeps a recurrent state instead, which a partial run cannot start from: full passes
        # (also where the mixer sits beside attention, Falcon-H1).
        why_full = _why_full_passes(model, blocks)
        kv = DynamicCache() if why_full is None else None
        handles = [
            module_hooks.pre_hook(block, recorder(i, block), with_kwargs=True)
            for i, block in enumerate(blocks)
        ]
        last_out: list[torch.Tensor] = []
        handles.append(module_hooks.forward_hook(blocks[-1],
            lambda module, args, out: last_out.append(_first(out)[:, -1:].detach())
        ))  # fmt: skip
        refused = ""
        try:
            with torch.no_grad():
                try:
                    cache = {_cache_name(model): kv} if kv is not None else {}
                    out = model.hf_model(input_ids=tokens, use_cache=kv is not None, **cache)
                except Exception as exc:  # attention that needs a cache of its own kind
                    if kv is None:  # (DeepSeek V3.2's indexer): full passes, as for mixers
                        raise
                    refused = f"its attention refuses a plain key/value cache ({exc})"[:200]
                    kv = None
                    last_out.clear()
                    out = model.hf_model(input_ids=tokens, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        self.logits: torch.Tensor = out.logits
        self._calls = calls
        # (keys, values) per layer, each (1, n_kv_heads, pos, d_head).
        self._keys_values: list[tuple[torch.Tensor, torch.Tensor]] = [
            (layer.keys, layer.values)  # type: ignore[union-attr,misc]
            for layer in (kv.layers if kv is not None else ())
        ]
        self.skips, self.why_not = True, ""
        try:
            for call in calls.values():
                for name, value in [*call.arguments.items(), *call.extra.items()]:
                    if name != call.hidden_name:
                        _retarget(name, value, 1, self.seq_len, None)
        except PartialForwardError as exc:
            self.skips, self.why_not = False, str(exc)
        if refused:
            self.skips, self.why_not = False, refused
        if kv is not None and len(self._keys_values) != len(blocks):
            # Attention that never writes the cache it is passed (OpenAI GPT) has no prefix
            # keys/values for a run that starts after position 0.
            self.skips = False
            self.why_not = (f"its attention keeps no key/value cache ({len(self._keys_values)} "
                            f"of {len(blocks)} layers wrote one)")  # fmt: skip
        if why_full is not None:
            self.skips = False
            self.why_not = why_full
        if self.skips:  # (not with a hybrid's mixer layers, checked above)
            # The model's head after its last block must be the final norm and `unembed`, or
            # partial runs would end differently from the model's own forward.
            with torch.no_grad():
                ends = unembed(model, final_normed(model, last_out[0]))
            exact = self.logits.dtype in (torch.float32, torch.float64)
            tol = 1e-4 if exact else 3e-2  # half precision: a last-digit difference is fine
            if not torch.allclose(ends, self.logits[:, -1:], atol=tol, rtol=tol):
                self.skips = False
                self.why_not = "the model's logits are not unembed(final_norm(last block))"

    def resid_pre(self, layer: int) -> torch.Tensor:
        """(batch, pos, d_model) entering block `layer`."""
        return self._resid_pre[layer]

    def _prefix_cache(self, pos0: int, repeats: list[int]) -> Any:
        """Keys and values of positions ..pos0-1, layer ``i``'s for ``repeats[i]`` copies of
        the recorded batch (layers a run does not reach: any count)."""
        from transformers import DynamicCache

        pairs = [
            (_repeat(keys[:, :, :pos0], self.batch, n).expand(self.batch * n, -1, -1, -1),
             _repeat(values[:, :, :pos0], self.batch, n).expand(self.batch * n, -1, -1, -1))
            for (keys, values), n in zip(self._keys_values, repeats, strict=True)
        ]  # fmt: skip
        return DynamicCache(ddp_cache_data=pairs)

    def run_blocks(
        self, resid: torch.Tensor, layer: int, pos0: int, *, last_only: bool = False,
        joins: Mapping[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Run blocks `layer`.. and the final norm on `resid` (n * batch, pos - pos0, d_model),
        the residual stream entering block `layer` at positions pos0.. of n copies of the
        recorded batch (element `i * batch + b` is prompt b); earlier positions are the
        recorded run's. `joins[j]` (m * batch, pos - pos0, d_model) enters at block `j` > `layer`,
        appended after the copies already running, so a batch of runs that start at different
        layers computes each from its own layer on. Hooks attached to the model fire as usual,
        on positions pos0.. and the copies running at that block only.
        Returns the final normalised residual (batch, pos - pos0 or 1, d_model), every copy.
        """
        if not self.skips and (layer, pos0) != (0, 0):
            raise PartialForwardError(self.why_not)
        joins = dict(joins or {})
        blocks = _blocks(self.model)
        if any(not layer < j < len(blocks) for j in joins):
            raise ValueError(f"joins enter at blocks {sorted(joins)}, not after {layer}")
        sizes = [int(resid.shape[0])]
        for j in range(layer + 1, len(blocks)):
            sizes.append(sizes[-1] + (int(joins[j].shape[0]) if j in joins else 0))
        if any(size % self.batch for size in sizes):
            raise ValueError(f"a batch of {sizes} is not a multiple of {self.batch} prompts")
        repeats_by_layer = [sizes[0] // self.batch] * layer + [n // self.batch for n in sizes]
        cache = self._prefix_cache(pos0, repeats_by_layer) if pos0 > 0 else None
        hidden = resid
        for index, block in enumerate(blocks[layer:], start=layer):
            if index in joins:
                hidden = torch.cat([hidden, joins[index].to(hidden.dtype)])
            batch = int(hidden.shape[0])
            repeats = batch // self.batch
            self.model._builder.frame.batch = batch  # read by sites that unflatten (batch*pos, d)
            call = self._calls[index]
            arguments = {
                name: _retarget(name, value, pos0, self.seq_len, cache, self.batch, repeats)
                for name, value in call.arguments.items()
                if name != call.hidden_name
            }
            if pos0 > 0 and call.takes_mask and arguments.get("attention_mask") is None:
                # sdpa's causal shortcut is top-left aligned: rows pos0.. need an explicit mask.
                arguments["attention_mask"] = _causal_rows(pos0, self.seq_len, hidden.device)
            extra = {
                n: _retarget(n, v, pos0, self.seq_len, cache, self.batch, repeats)
                for n, v in call.extra.items()
            }
            with last_row_mlp(self.model, index, last_only):
                hidden = _first(block(hidden, **arguments, **extra))
        if last_only:
            hidden = hidden[:, -1:]
        return final_normed(self.model, hidden)

    def logits_from(self, normed: torch.Tensor, token_ids: list[int] | None = None) -> torch.Tensor:
        """Logits (batch, q, d_vocab), or (batch, q, len(token_ids)) of those tokens only."""
        return unembed(self.model, normed, token_ids)


def _why_full_passes(model: Any, blocks: list[nn.Module]) -> str | None:
    """Why partial runs cannot start inside the model, naming the class of its first mixer
    other than attention (a hybrid's, or one beside attention, or a convolution over positions
    around a block's parts), or None where only attention mixes positions; or why its blocks
    cannot be called (views of layers the model runs itself, `architectures/_split_layers.py`)."""
    if model.spec.layer_lists is not None:
        return "its layers are parallel lists of parts its own forward runs, not blocks to call"
    for _, path in model.spec.convs[:1]:  # Inkling's short convolutions keep their own state
        cls = type(blocks[0].get_submodule(path)).__name__
        return f"its {cls} ({path}) convolves over positions, with a state keys/values lack"
    if model.spec.streams is not None:  # a block's input is several streams, not one
        return "its residual stream is several parallel streams"
    for layer, source in model.spec.kv_reused[:1]:  # handed on beside the cache, not in it
        return f"its layer {layer} reuses the keys and values layer {source} computed"
    for i, lay in enumerate(model.spec.layers or ()):
        if lay.opaque:  # attention (or the block) kept whole: its keys are not read
            return f"its {lay.mixer_class} layers are kept whole, with no keys/values read"
        if lay.kind == "mixer":
            return f"its {lay.mixer_class} layers keep a recurrent state, not keys/values"
        if lay.beside is not None:
            cls = type(blocks[i].get_submodule(lay.beside)).__name__
            return f"its {cls} layers keep a recurrent state, not keys/values"
    return None
