"""The attention function hooklens registers with transformers, and its switch.

Every supported model file calls `ALL_ATTENTION_FUNCTIONS.get_interface(...)` with post-rotary
q (batch, n_heads, q, d_head), k and v (batch, n_kv_heads, k, d_head) and the mask.
While some hook point inside attention is active, `AttentionSwitch` sets the model's
implementation name to `"hooklens"`, so `attention_forward` runs instead. It looks up the calling
module's `AttnSite`; when none of that layer's internals is requested, or the site needs no
pattern, it calls transformers' own fused `sdpa_attention_forward`. Only when someone asks for
scores or the pattern (or the layer soft-caps, which sdpa cannot do) does it compute attention
explicitly; so does a layer with learned attention sinks (transformers' `s_aux`), which sdpa
cannot take. A mask builder is registered under the same name (`sdpa_mask`): masks are built per
implementation name, and without it sliding-window models would get the wrong mask silently.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .callers import Caller
from .explicit_attention import explicit_attention, forget_masks
from .hooks import HookPoint
from .own_attention import ForwardSwaps
from .selected_keys import select_keys

NAME = "hooklens"
_registered = False


class AttnSite:
    """The hook points of one layer that are served inside the attention function.

    `q`/`k` are None when the family reads pre-rotary q/k at a projection module instead (and
    `v` where a layer computes values that later layers reuse, `ArchSpec.v_source`);
    `rot_q`/`rot_k` are None for families without rotary embeddings, `sink` for attention
    without learned sinks. While `keep` is non-zero (a gate on attention's output is hooked,
    `_engine/gate.py`), `kept` holds the z just returned, from which the gate's site rebuilds
    what the output projection reads. `caller`: where several layers call the module, whether
    this site's layer is the one calling (`callers.py`).
    """

    __slots__ = (
        "__weakref__", "caller", "count", "k", "keep", "kept", "pattern", "q", "rot_k", "rot_q",
        "scores", "sink", "v", "z",
    )  # fmt: skip

    def __init__(
        self,
        q: HookPoint | None,
        k: HookPoint | None,
        v: HookPoint | None,
        rot_q: HookPoint | None,
        rot_k: HookPoint | None,
        scores: HookPoint,
        pattern: HookPoint,
        z: HookPoint,
    ) -> None:
        self.q, self.k, self.v = q, k, v
        self.rot_q, self.rot_k = rot_q, rot_k
        self.scores, self.pattern, self.z = scores, pattern, z
        self.sink: HookPoint | None = None  # layers whose attention has a learned sink
        self.count = 0
        self.keep = 0
        self.kept: torch.Tensor | None = None
        self.caller: Caller | None = None


#: id(attention module) -> weak references to the sites of every HookedModel wrapping it
#: (usually one). Weak both ways: wrapping a model never keeps it, or a discarded wrapper,
#: alive; a module's entry goes when the module does (before its id can be reused). A plain
#: dict of lists: the attention function looks it up on every call (a WeakKeyDictionary of
#: WeakSets took 1.4 us a layer).
_SITES: dict[int, list[weakref.ref[AttnSite]]] = {}


def add_site(module: nn.Module, site: AttnSite) -> None:
    """Serve `site` when `module` calls the attention function."""
    key = id(module)
    refs = _SITES.get(key)
    if refs is None:
        refs = _SITES[key] = []
        weakref.finalize(module, _SITES.pop, key, None)
    refs[:] = [*(r for r in refs if r() is not None), weakref.ref(site)]


def _active_site(module: nn.Module) -> AttnSite | None:
    for ref in _SITES.get(id(module), ()):
        site = ref()
        if site is not None and site.count and (site.caller is None or site.caller.running):
            return site
    return None


@functools.cache
def _sdpa() -> Any:
    """transformers' sdpa attention function (imported once, not on every call)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def ensure_registered() -> None:
    """Register the attention function and its mask builder under NAME (once per process)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


class AttentionSwitch:
    """Reference-counted switch of a model's attention implementation to NAME and back (and of
    the forwards of attention modules that compute attention themselves, `own_attention`)."""

    def __init__(
        self,
        configs: list[Any],
        swaps: Sequence[tuple[nn.Module, Callable[..., Any]]] = (),
        keep_implementation: bool = False,
    ) -> None:
        # keep_implementation: the model builds masks for its own implementation (MPT), so only
        # the attention forwards are swapped
        self._configs = [] if keep_implementation else configs
        self._swaps = ForwardSwaps(swaps)
        self._saved: list[Any] = []
        self.count = 0

    def acquire(self) -> None:
        if self.count == 0:
            self._saved = [c._attn_implementation for c in self._configs]
            for c in self._configs:
                c._attn_implementation = NAME
            self._swaps.install()
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            for c, saved in zip(self._configs, self._saved, strict=True):
                c._attn_implementation = saved
            self._saved = []
            self._swaps.remove()
            forget_masks()  # held for this call's layers only


def _fire_heads(point: HookPoint, t: torch.Tensor, q_len: int) -> torch.Tensor:
    """Fire a per-head point on the newest `q_len` positions of t (batch, heads, pos, d_head).

    The point sees (batch, q_len, heads, d_head). Edits are written in place when autograd
    allows it, so that edited keys/values also land in a KV cache (which returned `t`);
    functions that may edit run on a copy, then written back (`HookPoint.fire`).
    """
    past = t.shape[2] - q_len
    cur = t[:, :, past:] if past else t
    view = cur.transpose(1, 2)
    in_place = not (torch.is_grad_enabled() and t.requires_grad)
    new = point.fire(view, shared=in_place)
    if new is view:
        return t
    if in_place:
        cur.copy_(new.transpose(1, 2))
        return t
    new_t = new.transpose(1, 2)
    return torch.cat([t[:, :, :past], new_t], dim=2) if past else new_t


def fire_pre_rotary(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`hook_q`/`hook_k` on q (batch, n_heads, pos, d_head) and k before their rotation, for
    attention modules reimplemented by hooklens (`own_attention`), which then call
    `attention_forward` with `qk_read=True`."""
    site = _active_site(module)
    if site is not None and site.q is not None and site.q.active:
        query = _fire_heads(site.q, query, query.shape[2])
    if site is not None and site.k is not None and site.k.active:
        key = _fire_heads(site.k, key, key.shape[2])
    return query, key


def attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    qk_read: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The function registered as NAME. Same contract as transformers' attention functions:
    returns (attn_output (batch, q, n_heads, d_head), weights or None). `qk_read`: `hook_q`
    and `hook_k` were fired before the rotation (`fire_pre_rotary`)."""
    sdpa_attention_forward = _sdpa()
    site = _active_site(module)
    # an additive score bias: transformers' sdpa folds it into its mask (keeping "no mask is
    # causal"), the explicit path adds it to the scores; an sdpa without the parameter would
    # drop it silently, so attention is computed explicitly then
    bias = kwargs.get("position_bias")
    unfused = bias is not None and not _takes_bias(sdpa_attention_forward)
    if isinstance(indices := kwargs.pop("indices", None), torch.Tensor):  # an indexer's choice
        attention_mask = select_keys(attention_mask, indices, query.shape[2], key.shape[2])
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1 and not hasattr(module, "num_key_value_groups"):  # sdpa would not expand k, v
        sdpa_attention_forward = _expanding(sdpa_attention_forward, n_rep)
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")  # learned sink logits: sdpa has no way to take them
    # no mask is a causal one, as in the explicit path (the mask builder registered with this
    # function leaves it out only then), also for a module whose `is_causal` says otherwise
    # (BigBird-Pegasus's decoder attention, which the model's eager mask makes causal)
    kwargs = {"is_causal": True, **kwargs}
    if site is None:
        if softcap is None and sinks is None and not unfused:
            return sdpa_attention_forward(
                module,
                query,
                key,
                value,
                attention_mask,
                dropout=dropout,
                scaling=scaling,
                **kwargs,
            )
        return explicit_attention(
            module, query, key, value, attention_mask, scaling, dropout, softcap, None, sinks, bias
        )
    q_len = query.shape[2]
    if site.q is not None and site.q.active and not qk_read:
        query = _fire_heads(site.q, query, q_len)
    if site.k is not None and site.k.active and not qk_read:
        key = _fire_heads(site.k, key, q_len)
    if site.v is not None and site.v.active:
        value = _fire_heads(site.v, value, q_len)
    if site.rot_q is not None and site.rot_q.active:
        query = _fire_heads(site.rot_q, query, q_len)
    if site.rot_k is not None and site.rot_k.active:
        key = _fire_heads(site.rot_k, key, q_len)
    pattern: torch.Tensor | None = None
    explicit = softcap is not None or sinks is not None or unfused
    if explicit or site.scores.active or site.pattern.active:
        z, pattern = explicit_attention(
            module, query, key, value, attention_mask, scaling, dropout, softcap, site, sinks, bias
        )
    else:
        z, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if site.z.active:
        z = site.z.fire(z)
    if site.keep:
        site.kept = z
    return z, pattern


@functools.cache
def _takes_bias(sdpa: Any) -> bool:
    """Whether transformers' `sdpa` takes an additive score bias (`position_bias`)."""
    return "position_bias" in inspect.signature(sdpa).parameters


def _expanding(sdpa: Any, n_rep: int) -> Any:
    """`sdpa` with k and v repeated to every query head (for modules that share key/value heads
    but do not say so with `num_key_value_groups`, which transformers' sdpa reads)."""

    def call(module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *a: Any,
             **kw: Any) -> Any:  # fmt: skip
        return sdpa(
            module, q, k.repeat_interleave(n_rep, 1), v.repeat_interleave(n_rep, 1), *a, **kw
        )

    return call
