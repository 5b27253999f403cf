"""Pre-rotary `hook_q` / `hook_k` of multi-head latent attention (adapter field `latent_kv`).

q is read (and edited) at the output of its projection, split into heads of `d_head_qk`
(the part without position, then the rotated part). Keys have no single module output: per head,
the key part without position comes out of `kv_b` (which expands the normed latent; it also runs
on cached positions, so its newest positions are this pass's), and the rotated part is one
vector per position, shared by every head, read at `kv_a`'s output before the rotation.
`hook_k` fires when `kv_b` runs, with both parts; edits of the per-head part are written into
`kv_b`'s output. The shared part is rotated before `kv_b` runs and cannot differ per head, so an
edit of it raises (edit `hook_rot_k`, which the attention function serves, instead).

Where the model's rotation takes adjacent feature pairs and returns two halves (`interleaved`),
the rotated part is shown in that halves order, in which the rotation at position 0 is the
identity (as on every other rotary family).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._errors import MSG_SHARED_ROPE_K, HookError
from . import module_hooks

if TYPE_CHECKING:
    from ..architectures._spec import LatentKV
    from .hooks import HookPoint
    from .sites import Builder


def _halves(r: torch.Tensor) -> torch.Tensor:
    """Adjacent pairs -> two halves (even features, then odd ones)."""
    return torch.cat([r[..., 0::2], r[..., 1::2]], dim=-1)


def _pairs(r: torch.Tensor) -> torch.Tensor:
    """The inverse of `_halves`."""
    half = r.shape[-1] // 2
    return torch.stack([r[..., :half], r[..., half:]], dim=-1).flatten(-2)


def _fire(point: HookPoint, view: torch.Tensor) -> torch.Tensor | None:
    """Fire `point` on `view`: the edited tensor, or None when nothing changed (in place too)."""
    return point.fire_computed(view)


def add_latent_sites(b: Builder, block: nn.Module, layer: int) -> None:
    """`attn.hook_q` and `attn.hook_k` of one block with multi-head latent attention."""
    spec: LatentKV | None = b.spec.latent_kv
    assert spec is not None
    _q_site(b, block.get_submodule(spec.q), spec, layer)
    rope_k = block.get_submodule(spec.rope_k_norm or spec.kv_a)  # where the shared part is read
    _k_site(b, rope_k, block.get_submodule(spec.kv_b), spec, layer)


def _q_site(b: Builder, module: nn.Module, spec: LatentKV, layer: int) -> None:
    site = b._site(lambda: [module_hooks.forward_hook(module, hook)])
    point = b._new("attn.hook_q", layer, site)
    assert point is not None
    nope, width = spec.nope, spec.nope + spec.rope

    def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
        whole = out.view(*out.shape[:-1], -1, width + spec.q_gate)  # a gate's input after q
        heads = whole[..., :width] if spec.q_gate else whole
        if spec.interleaved:
            heads = torch.cat([heads[..., :nope], _halves(heads[..., nope:])], dim=-1)
        new = _fire(point, heads)
        if new is None:
            return None
        if spec.interleaved:
            new = torch.cat([new[..., :nope], _pairs(new[..., nope:])], dim=-1)
        if spec.q_gate:  # the gate's input stays
            new = torch.cat([new.to(whole.dtype), whole[..., width:]], dim=-1)
        return new.reshape(out.shape)


def _k_site(b: Builder, kv_a: nn.Module, kv_b: nn.Module, spec: LatentKV, layer: int) -> None:
    """`kv_a`: the module whose output holds the shared rotated key part (kv_a, or its norm)."""
    shared: list[torch.Tensor] = []  # this pass's pre-rotary shared part, from kv_a

    def install() -> list[Any]:
        return [module_hooks.forward_hook(kv_a, record), module_hooks.forward_hook(kv_b, hook)]

    site = b._site(install)
    point = b._new("attn.hook_k", layer, site)
    assert point is not None
    nope, rope = spec.nope, spec.rope

    def record(mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        # kv_a's output holds the latent first; a norm of the shared part, only that part
        r = out.reshape(out.shape[0], -1, rope) if spec.rope_k_norm else out[..., spec.rank :]
        shared[:] = [_halves(r) if spec.interleaved else r]

    def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> Any:
        if not shared:
            return None
        r = shared.pop()  # (batch, pos, rope)
        n_pos = r.shape[-2]
        width = nope + spec.v  # (batch, k, heads, nope + v), whatever kv_b's leading axes
        heads = out.reshape(r.shape[0], -1, out.shape[-1] // width, width)
        k_nope = heads[..., -n_pos:, :, :nope]
        rot = r.unsqueeze(-2).expand(*k_nope.shape[:-1], rope)
        new = _fire(point, torch.cat([k_nope, rot], dim=-1))
        if new is None:
            return None
        if not torch.equal(new[..., nope:], rot):
            raise HookError(MSG_SHARED_ROPE_K.format(name=point.name), point.name)
        edited = heads.clone()
        edited[..., -n_pos:, :, :nope] = new[..., :nope]
        return edited.reshape(out.shape)
