"""Reading an adapter's projections as per-head weights: (in, out) orientation, fused q/k/v.

Where a projection stores (out, in) (`nn.Linear`) or (in, out) (transformers' `Conv1D`) is read
from the module. Everything returned is a view of the module's parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..architectures._convs import refuse_convolved
from ..architectures._names import V_SCALE
from ..architectures._spec import ArchSpec

MSG_NO_LAYOUT = """The {family} adapter does not describe where its attention weights live
(ArchSpec.qkv / ArchSpec.o_proj are None), so {what} cannot be read. Add them to the adapter
(hooklens/architectures/), as the GPT-2 and Llama adapters do."""

MSG_NO_PROJ = """This layer of {family} has no {path} (its attention forms those activations
without a projection of their own, e.g. values that reuse the keys' projection, or keys and
values an earlier layer computed), so its W_Q/W_K/W_V cannot be read in TransformerLens's
shapes. Other layers may have it."""

MSG_NOT_LINEAR_O = """{family}'s attention passes z through {kind} ({path}) before its output
projection, so attn_out is not a linear map of z: W_O, b_O, OV and hook_result do not exist for
it. hook_z and hook_attn_out are exact; read those."""

MSG_OWN_QKV = """{family}'s attention computes q, k and v in one module of its own ({path}, a
{kind}: ZAYA's convolves the queries and keys over positions and takes half of each value head
from the previous token), so no matrix maps ln1.hook_normalized to hook_q, hook_k or hook_v:
W_Q, W_K, W_V (and QK, OV) do not exist for it. hook_q, hook_k and hook_v are exact; read
those."""

#: what reads W_O (named where it does not exist)
O_WEIGHTS = "W_O (nor b_O, OV, attn.hook_result, a per-head decomposition)"

WeightAndBias = tuple[torch.Tensor, "torch.Tensor | None"]


def _is_conv1d(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2's projections): x @ weight + bias, weight (in, out)."""
    return isinstance(getattr(module, "nf", None), int)


def _projection(module: nn.Module) -> nn.Module:
    """The projection itself: `module`, or the one linear layer a wrapper holding no weight of
    its own calls (Moshi's `MoshiLinear` around its `linear`)."""
    children = list(module.children())
    wraps = len(children) == 1 and (isinstance(children[0], nn.Linear) or _is_conv1d(children[0]))
    if getattr(module, "weight", None) is None and wraps and not list(module.parameters(False)):
        return children[0]
    return module


def in_out(module: nn.Module) -> torch.Tensor:
    """A projection's weight as (in, out): `nn.Linear` stores (out, in), `Conv1D` (in, out)."""
    module = _projection(module)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    if isinstance(module, nn.Linear):
        return weight.T
    if _is_conv1d(module):
        return weight
    raise TypeError(
        f"cannot tell how {type(module).__name__} stores its weight (expected nn.Linear or "
        "transformers' Conv1D)"
    )


def bias_of(module: nn.Module) -> torch.Tensor | None:
    bias = getattr(_projection(module), "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def qkv_modules(spec: ArchSpec, block: nn.Module, only_q: bool = False) -> list[nn.Module]:
    """The distinct q/k/v projection modules of a block (one when fused); `only_q`: the first
    alone (a layer that reuses an earlier layer's keys and values has no others)."""
    own = spec.v_source
    if spec.qkv is None and own is not None and own.layout == "tuple_bphd":
        kind = type(block.get_submodule(own.module)).__name__
        raise ValueError(MSG_OWN_QKV.format(family=spec.family, path=own.module, kind=kind))
    if spec.qkv is None:
        raise NotImplementedError(MSG_NO_LAYOUT.format(family=spec.family, what="W_Q/W_K/W_V"))
    paths = list(dict.fromkeys(spec.qkv))[: 1 if only_q else None]
    found = []
    for path in paths:
        try:
            found.append(block.get_submodule(path))
        except AttributeError:  # e.g. a layer whose values reuse its keys' projection
            raise ValueError(MSG_NO_PROJ.format(path=path, family=spec.family)) from None
    return found


def read_qkv(
    spec: ArchSpec, cfg: Any, block: nn.Module, modules: bool = False, only_q: bool = False
) -> list[WeightAndBias]:
    """`_read_qkv`'s weights times the factors the model applies around the projections, so
    that `ln1.hook_normalized @ W + b` is hook_q/k/v: on `v_proj`'s output (MiMo-V2-Flash's
    `v_scale`), on `k_proj`'s (Falcon-H1's key multiplier), and on attention's input (weights
    only; Falcon-H1). Where one is not 1, that weight and bias are copies. `modules`: without
    the factors applied after the projections, so that they give the modules' own outputs.
    `only_q`: q's alone, where the layer has no key or value projections of its own."""
    found = _read_qkv(spec, cfg, block, only_q)
    attn = block.get_submodule(spec.attn) if spec.attn else None
    v = next((getattr(attn, n) for n in V_SCALE if hasattr(attn, n)), 1.0)
    v = float(v) if isinstance(v, float | int) and not modules else 1.0
    m, k = spec.factor(block, "attn_in"), 1.0 if modules else spec.factor(block, "k")
    scaled = []
    for (w, b), (wf, bf) in zip(
        found, ((m, 1.0), (m * k, k), (m * v, v))[: len(found)], strict=True
    ):
        scaled.append((w * wf if wf != 1 else w, b * bf if b is not None and bf != 1 else b))
    return scaled


def _read_qkv(
    spec: ArchSpec, cfg: Any, block: nn.Module, only_q: bool = False
) -> list[WeightAndBias]:
    """[(W (heads, d_model, d_head), b (heads, d_head) or None)] for q, k, v; k and v have
    `n_kv_heads` heads (q and k are `d_head_qk` wide, where that differs). `cfg` is the layer's
    own (`cfg.layer(l)`). Views of the parameters."""
    nh, nkv, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    heads = (nh, nkv, nkv)
    mods = qkv_modules(spec, block, only_q)
    layout = spec.qkv_layout
    if layout in ("flat", "q_gate_per_head"):
        found: list[WeightAndBias] = []
        widths = (cfg.d_head_qk, cfg.d_head_qk, dh)
        for mod, n, width in zip(mods, heads[: len(mods)], widths[: len(mods)], strict=True):
            w, b = in_out(mod), bias_of(mod)
            if layout == "q_gate_per_head" and mod is mods[0]:  # per head: queries, then gate
                wq = w.view(w.shape[0], n, 2, dh)[:, :, 0].permute(1, 0, 2)
                found.append((wq, None if b is None else b.view(n, 2, dh)[:, 0]))
                continue
            wv = w.view(w.shape[0], n, width).permute(1, 0, 2)
            found.append((wv, None if b is None else b.view(n, width)))
        return found
    w, b = in_out(mods[0]), bias_of(mods[0])
    d_model = w.shape[0]
    if layout == "concat_qkv":
        bounds = [0, nh * dh, (nh + nkv) * dh, (nh + 2 * nkv) * dh]
        found = []
        for i, n in enumerate(heads):
            lo, hi = bounds[i], bounds[i + 1]
            wi = w[:, lo:hi].view(d_model, n, dh).permute(1, 0, 2)
            found.append((wi, None if b is None else b[lo:hi].view(n, dh)))
        return found
    if layout == "per_head_qkv":
        w4 = w.view(d_model, nh, 3, dh)
        b3 = None if b is None else b.view(nh, 3, dh)
        return [(w4[:, :, i].permute(1, 0, 2), None if b3 is None else b3[:, i]) for i in range(3)]
    raise NotImplementedError(f"q/k/v layout {layout!r} has no weight reader")


def join_qkv(spec: ArchSpec, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-head q, k, v (batch, pos, heads, d_head) -> the output of each q/k/v module, in the
    order of `qkv_modules` (the inverse of `read_qkv`'s layout)."""
    lead = parts[0].shape[:2]
    if spec.qkv_layout in ("flat", "q_gate_per_head"):  # q's gate rows: `module_output`
        return [p.reshape(*lead, -1) for p in parts]
    if spec.qkv_layout == "concat_qkv":
        return [torch.cat([p.reshape(*lead, -1) for p in parts], dim=-1)]
    return [torch.stack(parts, dim=-2).reshape(*lead, -1)]  # per_head_qkv: (heads, 3, d_head)


def module_output(
    spec: ArchSpec, index: int, out: torch.Tensor, new: torch.Tensor, n_heads: int
) -> torch.Tensor:
    """What q/k/v module `index` (of `qkv_modules`) outputs when its heads' outputs are `new`
    (from `join_qkv`): `new`, except that a q projection that also holds the attention gate's
    input keeps those rows of its own output `out`."""
    if spec.qkv_layout == "q_gate_per_head" and index == 0:
        merged = out.reshape(*out.shape[:-1], n_heads, 2, -1).clone()  # per head: q, gate
        merged[..., 0, :] = new.reshape(merged[..., 0, :].shape).to(out.dtype)
        return merged.reshape(out.shape)
    return new.reshape(out.shape).to(out.dtype)


def o_module(spec: ArchSpec, block: nn.Module) -> nn.Module:
    if spec.o_proj is None:
        raise NotImplementedError(MSG_NO_LAYOUT.format(family=spec.family, what="W_O"))
    module = block.get_submodule(spec.o_proj)
    refuse_convolved(spec, block, "attn_out", O_WEIGHTS)
    if not isinstance(module, nn.Linear) and not _is_conv1d(module):
        kind = type(module).__name__  # e.g. BitNet's RMSNorm on z, then o_proj
        raise TypeError(MSG_NOT_LINEAR_O.format(family=spec.family, kind=kind, path=spec.o_proj))
    return module


def read_o(spec: ArchSpec, cfg: Any, block: nn.Module) -> WeightAndBias:
    """(W_O (n_heads, d_head, d_model), b_O (d_model,) or None: with a bias the block adds
    beside the projection's, `ArchSpec.o_bias`), views (`cfg`: the layer's),
    or copies times the factor the block applies to attention's output (Falcon-H1), so that
    they give `hook_attn_out`."""
    mod = o_module(spec, block)
    w, b, added = in_out(mod), bias_of(mod), added_o_bias(spec, block)
    b = added if b is None else b if added is None else b + added
    w = w.view(cfg.n_heads, cfg.d_head, w.shape[1])
    return scaled(w, b, spec.added_scale(block, "attn_out"))


def added_o_bias(spec: ArchSpec, block: nn.Module) -> torch.Tensor | None:
    """The bias `block` adds to attention's output beside the output projection's own
    (`ArchSpec.o_bias`), or None (no such bias, or not on this layer)."""
    if spec.o_bias is None:
        return None
    owner, _, name = spec.o_bias.rpartition(".")
    bias = getattr(block.get_submodule(owner) if owner else block, name, None)
    return bias if isinstance(bias, torch.Tensor) else None


def scaled(w: torch.Tensor, b: torch.Tensor | None, factor: float) -> WeightAndBias:
    """(w, b) as they are (views) when `factor` is 1, else copies times `factor`."""
    return (w, b) if factor == 1 else (w * factor, None if b is None else b * factor)
