"""Wiring: build every hook point of a model and the module hooks that serve them, from its adapter.

Nothing here is installed at construction; each `Site` installs its hook (`module_hooks.py`)
only while one of its points has a function (`hooks.py`). The closures read the points' function
lists at call time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..architectures._norms import norm_eps as _norm_eps
from ..architectures._spec import ArchSpec, Proj
from . import attention as _attention
from . import module_hooks
from .callers import shared_callers
from .hooks import Frame, HookPoint, Site
from .nth_call import NthCall, forward_hooks, pre_hooks
from .points import POINTS, point_name
from .proj_layout import join_parts, split_parts

Call = NthCall | None


def get_module(root: nn.Module, path: str) -> nn.Module:
    """`root.get_submodule(path)` with a clearer error for adapter authors."""
    module = root
    try:  # through `_modules` first: a tenth of get_submodule's time (a forward asks for one)
        for part in path.split(".") if path else ():
            module = module._modules[part]  # type: ignore[assignment]
        if isinstance(module, nn.Module):
            return module
    except (KeyError, AttributeError):
        pass
    try:
        return root.get_submodule(path)
    except AttributeError as exc:
        raise AttributeError(
            f"adapter path {path!r} does not exist in {type(root).__name__}: {exc}"
        ) from exc


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple | list) else out  # GPT-1's blocks return lists


def _with_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, list):
        return [new, *out[1:]]
    return (new, *out[1:]) if isinstance(out, tuple) else new


class Builder:
    """Creates the points and sites of one wrapped model."""

    def __init__(self, hf_model: nn.Module, spec: ArchSpec, cfg: Any, features: frozenset[str]):
        self.model = hf_model
        self.spec = spec
        self.cfg = cfg
        self.features = features
        self.cfg_hf = hf_model.config
        self.frame = Frame()
        self.points: dict[str, HookPoint] = {}
        self.attn_sites: list[tuple[nn.Module, _attention.AttnSite]] = []
        self.base = Site(self._install_frame)
        configs = {id(hf_model.config): hf_model.config}
        blocks: Any = get_module(hf_model, spec.blocks)
        self.blocks: list[nn.Module] = list(blocks)
        layers = spec.internals_layers(len(blocks))
        attns = {i: get_module(self.blocks[i], spec.attn) for i in layers}
        # layers that call one attention module object: each call is served as its caller's
        self.callers = shared_callers(self.blocks, attns)
        unique = list({id(m): m for m in attns.values()}.values())
        for attn in unique:
            cfg_obj = getattr(attn, "config", None)
            if cfg_obj is not None:
                configs.setdefault(id(cfg_obj), cfg_obj)
        fwd = spec.attn_forward
        own = [(attn, fwd) for attn in unique] if fwd else []
        self.switch = _attention.AttentionSwitch(list(configs.values()), own, spec.own_masks)

    # -- helpers -----------------------------------------------------------------------------
    def _new(self, suffix: str, layer: int | None, site: Site) -> HookPoint | None:
        spec = next(p for p in POINTS if p.suffix == suffix)
        feats = self.features if layer is None else self.spec.layer_features(self.cfg_hf, layer)
        if spec.lacking(feats) is not None:
            return None
        point = HookPoint(point_name(spec, layer), layer, site)
        self.points[point.name] = point
        return point

    def _site(self, install: Callable[[], list[Any]]) -> Site:
        return Site(install, self.base)

    def _install_frame(self) -> list[Any]:
        frame = self.frame

        def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            frame.seen = set()
            for x in (kwargs.get("input_ids"), kwargs.get("inputs_embeds"), *args[:1]):
                if isinstance(x, torch.Tensor):
                    frame.batch = x.shape[0]
                    return

        return [module_hooks.pre_hook(self.model, record, with_kwargs=True)]

    def _bpd(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.ndim == 3 else t.view(self.frame.batch, -1, t.shape[-1])

    # -- generic site kinds ------------------------------------------------------------------
    def output_site(
        self,
        mod: nn.Module,
        suffix: str,
        layer: int | None,
        scale: float | torch.Tensor = 1.0,
        *,
        copy: bool = False,
        positions: bool = False,
        added: torch.Tensor | None = None,
        call: Call = None,
    ) -> None:
        """A module's (first) output (batch, pos, dim), times `scale` (applied after it; a
        (dim,) tensor only with `added`); `copy`: hand the model a copy of what the point
        returns (the model edits it later); `positions`: the output is per position only, and
        may come as (pos, dim) with no batch axis (sinusoidal tables), which the point sees as
        (batch, pos, dim); `added`: a bias added to the output before the scale
        (`ArchSpec.o_bias`, ZAYA's embedding shift), in the point; `call`: only at that call of
        a module its block calls more than once (`nth_call.py`)."""
        site = self._site(lambda: forward_hooks(mod, hook, call))
        point = self._new(suffix, layer, site)
        if point is None:
            return
        bpd, frame = self._bpd, self.frame

        def hook(_: nn.Module, args: Any, out: Any) -> Any:
            t = _first(out)
            if added is not None:  # the point holds it; the module's output does not
                new = point.fire_computed(bpd((t + added) * scale))
                return (
                    None if new is None else _with_first(out, new.reshape(t.shape) / scale - added)
                )
            # a (pos, dim) table would be split over the batch by bpd, wrongly, so it gets its axis
            unbatched = positions and t.ndim == 2
            v = t.unsqueeze(0) if unbatched else bpd(t)
            if v.shape[0] != frame.batch or scale != 1:  # a copy: shared over the batch
                v = v.expand(frame.batch, *v.shape[1:]) * scale  # (GPT-2's positions), or scaled
                new = point.fire(v) / scale  # (batch, pos, dim): it broadcasts where t was added
                return _with_first(out, new if unbatched else new.reshape(-1, *t.shape[1:]))
            new = point.fire(v)
            new = new.clone() if copy else new
            return None if new is v else _with_first(out, new.reshape(t.shape))

    def input_site(
        self, module: nn.Module, suffix: str, layer: int, *, in_place: bool, call: Call = None
    ) -> None:
        """A point that is a module's first input. `in_place` writes edits into the tensor itself
        (for resid_mid, which the block also keeps as its residual; functions that may edit run
        on a copy, then written back: `HookPoint.fire`); `call` as in output_site."""
        # an in-place edit (of the residual) runs before any other pre-hook reads the tensor
        site = self._site(lambda: pre_hooks(module, hook, call, in_place))
        point = self._new(suffix, layer, site)
        if point is None:
            return
        bpd = self._bpd

        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            key = None if args else "hidden_states"
            t = args[0] if key is None else kwargs[key]
            v = bpd(t)
            new = point.fire(v, shared=in_place)
            if new is v:
                return None
            if in_place:
                t.copy_(new.reshape(t.shape))
                return None
            if key is None:
                return (new.reshape(t.shape), *args[1:]), kwargs
            return args, {**kwargs, key: new.reshape(t.shape)}

    def norm_site(
        self, module: nn.Module, prefix: str, layer: int | None, skip_first: bool = False,
        call: Call = None, copy: bool = False,
    ) -> None:  # fmt: skip
        """`{prefix}.hook_scale` (batch, pos, 1) and `{prefix}.hook_normalized`; `skip_first`:
        not the module's first call in a forward (a final norm the model also applies to the
        embedding before block 0, NanoChat's); `call` and `copy` as in output_site."""
        # first on the norm's output, whichever point was attached first: a point also reading
        # that output (XLM's hook_normalized_resid_post) comes after the norm's in the order
        site = self._site(lambda: forward_hooks(module, hook, call, prepend=True))
        scale_pt = self._new(f"{prefix}.hook_scale", layer, site)
        norm_pt = self._new(f"{prefix}.hook_normalized", layer, site)
        if scale_pt is None or norm_pt is None:
            return
        layernorm = self.spec.norm == "layernorm"
        eps = _norm_eps(module)
        bpd, frame = self._bpd, self.frame

        def hook(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> Any:
            if skip_first and frame.seen is not None and id(mod) not in frame.seen:
                frame.seen.add(id(mod))  # its first call normalizes the embedding
                return None
            changed = False
            if scale_pt.active:
                x = args[0].float()
                if layernorm and torch.is_grad_enabled() and x.requires_grad:
                    # native_layer_norm's rstd has no gradient; a backward hook needs one
                    scale = (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt()
                elif layernorm:  # one fused kernel for mean and 1/std: ~3x fewer op dispatches
                    rstd = torch.native_layer_norm(x, x.shape[-1:], None, None, eps)[2]
                    scale = rstd.reciprocal()
                else:
                    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
                if scale.dtype != out.dtype:  # even a cast to its own dtype is a dispatch
                    scale = scale.to(out.dtype)
                s = bpd(scale)  # computed here: the norm reads an edit only through factor
                new = scale_pt.fire_computed(s)
                if new is not None:
                    factor = (s / new).reshape(scale.shape)
                    bias = getattr(mod, "bias", None) if layernorm else None
                    out = (out - bias) * factor + bias if bias is not None else out * factor
                    changed = True
            if norm_pt.active:
                v = bpd(out)
                new = norm_pt.fire(v)
                if new is not v:
                    out = new.reshape(out.shape)
                    changed = True
            return out.clone() if copy else out if changed else None

    def proj_site(
        self, module: nn.Module, proj: Proj, layer: int, q: bool, k: bool, k_scale: float = 1.0,
        v: bool = False,
    ) -> None:  # fmt: skip
        """Pre-rotary q and/or k read (and edited) at a projection module's output; k times
        `k_scale`, a factor the attention applies to the projection's keys (Falcon-H1); where
        several layers call the module, only at this layer's call (`callers.py`). `v`: the
        module's output holds the values (`ArchSpec.v_source`); layouts: `proj_layout.py`."""
        caller = self.callers.get(layer)
        site = self._site(
            lambda: [
                module_hooks.forward_hook(module, hook),
                *([caller.acquire()] if caller else []),
            ]
        )
        q_pt = self._new("attn.hook_q", layer, site) if q else None
        k_pt = self._new("attn.hook_k", layer, site) if k else None
        v_pt = self._new("attn.hook_v", layer, site) if v else None
        cfg = self.cfg.layer(layer)  # this layer's own head widths
        nh, nkv, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        dq = dh if v else cfg.d_head_qk
        layout = proj.layout
        # the same heads after the rotation, served later by the attention function, which may
        # write an edit into the tensor it is handed (attention._fire_heads): at a layer that
        # does not rotate (NoPE layers), that is this projection's output itself
        points, rotated = self.points, (f"blocks.{layer}.attn.hook_rot_q",
                                        f"blocks.{layer}.attn.hook_rot_k")  # fmt: skip

        def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
            if caller is not None and not caller.running:
                return None  # another layer's call of a shared module
            parts = split_parts(out, layout, nh, nkv, dh, dq)
            changed = False
            for i, pt in ((0, q_pt), (1, k_pt), (2, v_pt)):
                if pt is not None and pt.active:
                    part = parts[i] if len(parts) > 1 else parts[0]
                    scale = k_scale if pt is k_pt else 1.0
                    if scale != 1:  # keys scaled for the point: a tensor of its own
                        scaled = pt.fire_computed(part * scale)
                        new = part if scaled is None else scaled / scale
                    else:
                        new = pt.fire(part)
                    # the model gets a copy where a later edit of the rotated heads could be
                    # written into what this point's functions kept
                    later = points.get(rotated[i]) if i < 2 else None
                    handed_on = later is not None and later.may_edit
                    if new is not part or handed_on:
                        parts[i if len(parts) > 1 else 0] = new.clone() if handed_on else new
                        changed = True
            return join_parts(out, parts, layout) if changed else None

    def attention_site(
        self, attn: nn.Module, layer: int, q_here: bool, k_here: bool, v_here: bool = True,
        rounded: bool = False,
    ) -> None:  # fmt: skip
        """Points served inside the registered attention function (where several layers call
        `attn`, at this layer's call: `callers.py`); `rounded`: the values it is handed are
        rounded ones, `hook_rounded_v` (`ArchSpec.kv_rounded`)."""
        switch, caller = self.switch, self.callers.get(layer)

        class _Release:
            def remove(self) -> None:
                site_obj.count -= 1
                switch.release()

        def install() -> list[Any]:
            switch.acquire()
            site_obj.count += 1
            return [_Release(), *([caller.acquire()] if caller else [])]

        site = self._site(install)

        def new(suffix: str) -> HookPoint | None:
            return self._new(suffix, layer, site)

        q = new("attn.hook_q") if q_here else None
        k = new("attn.hook_k") if k_here else None
        v = new("attn.hook_rounded_v") if rounded else new("attn.hook_v") if v_here else None
        rot_q, rot_k = new("attn.hook_rot_q"), new("attn.hook_rot_k")
        scores, pattern = new("attn.hook_attn_scores"), new("attn.hook_pattern")
        z = new("attn.hook_z")
        assert scores is not None and pattern is not None and z is not None
        site_obj = _attention.AttnSite(q, k, v, rot_q, rot_k, scores, pattern, z)
        site_obj.sink = new("attn.hook_sink")
        site_obj.caller = caller
        self.attn_sites.append((attn, site_obj))

    def fused_gate_up_site(self, module: nn.Module, layer: int) -> None:
        """`mlp.hook_pre` (gate, first half) and `mlp.hook_pre_linear` (up, second half) of a
        fused gate_up projection (Phi-3)."""
        site = self._site(lambda: [module_hooks.forward_hook(module, hook)])
        pre = self._new("mlp.hook_pre", layer, site)
        lin = self._new("mlp.hook_pre_linear", layer, site)
        assert pre is not None and lin is not None
        bpd = self._bpd

        def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
            gate, up = bpd(out).chunk(2, dim=-1)
            new_gate = pre.fire(gate) if pre.active else gate
            new_up = lin.fire(up) if lin.active else up
            if new_gate is gate and new_up is up:
                return None
            return torch.cat([new_gate, new_up], dim=-1).reshape(out.shape)
