"""`attn.hook_gate`: the gate on attention's output, for models whose output projection reads
`z * act(g)` (Qwen3-Next, AFMoE, Laguna, Ling; adapter field `attn_gate`).

`hook_z` keeps TransformerLens's meaning (the pattern-weighted values); the gate is a point of
its own, (batch, pos, n_heads, d_head), after its nonlinearity. While it is hooked, its site
records the gate's input at its projection, has the attention function keep the z it returns
(`AttnSite.keep`), and fires the point at a pre-hook of the output projection; an edit (returned
or in place) replaces the projection's input by z times the edited gate, which is exactly what
the model computes from an edited gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..architectures._gate import GATE_ACTS, gate_input
from . import attention as _attention
from . import module_hooks

if TYPE_CHECKING:
    from .sites import Builder


def add_gate_site(b: Builder, block: nn.Module, layer: int, attn: _attention.AttnSite) -> None:
    """`blocks.{layer}.attn.hook_gate`, where the adapter describes a gate."""
    gate, o_path = b.spec.attn_gate, b.spec.o_proj
    if gate is None or o_path is None:
        return
    source, o_proj = block.get_submodule(gate.module), block.get_submodule(o_path)
    switch = b.switch
    inputs: list[torch.Tensor] = []  # the gate's input in the call in flight

    class _Release:
        def remove(self) -> None:
            attn.count -= 1
            attn.keep -= 1
            attn.kept = None
            inputs.clear()
            switch.release()

    def install() -> list[Any]:
        switch.acquire()
        attn.count += 1  # the attention function serves this layer (and keeps its z)
        attn.keep += 1
        return [
            _Release(),
            module_hooks.forward_hook(source, record),
            module_hooks.pre_hook(o_proj, fire),
        ]

    point = b._new("attn.hook_gate", layer, b._site(install))
    if point is None:
        return
    act, nh, dh = GATE_ACTS[gate.act], b.cfg.n_heads, b.cfg.d_head
    bias = block.get_parameter(gate.bias) if gate.bias is not None else None  # (n_heads,)

    def record(mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        inputs[:] = [b._bpd(out)]

    def fire(mod: nn.Module, args: tuple[Any, ...]) -> Any:
        x, z = args[0], attn.kept
        attn.kept = None
        if not inputs or z is None:
            return None
        g = gate_input(inputs.pop(), gate.layout, nh, dh).float()
        if bias is not None:  # the attention adds a per-head bias to the projection's output
            g = g + bias.float()[:, None]
        g = act(g).to(x.dtype).contiguous()
        new = point.fire_computed(g)
        if new is None:
            return None
        gated = z.reshape(*z.shape[:-2], -1) * new.reshape(*new.shape[:-2], -1).to(z.dtype)
        return (gated.reshape(x.shape).to(x.dtype), *args[1:])


__all__ = ["add_gate_site"]
