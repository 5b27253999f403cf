"""Find a gate on attention's output (Qwen3-Next, AFMoE, Laguna, Ling): `o_proj(z * act(g))`.

The gate's input `g` comes from its own projection (`ATTN_GATE` names, one gate per feature of
z or one per head, told apart by its width) or from the second half of each head's slice of a q
projection twice as wide as the output projection's input. Its nonlinearity is read from what
the model computes, in the forward block 0's other findings share (`attention_record`): the
output projection's input divided by z (what the attention function returned) is act(g), which
tells the candidates (`GATE_ACTS`) apart. A candidate the forward contradicts is no gate, and
the model is then checked without one (`_engine/verify.py` names what did not match).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from ._attn_probe import attention_record
from ._names import ATTN_GATE, GATE_BIAS, Q_AND_GATE
from ._spec_parts import AttnGate, GateAct, GateLayout

#: the nonlinearities a gate may apply, by the name `AttnGate.act` holds
GATE_ACTS: dict[GateAct, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "softplus": functional.softplus,
}


def gate_input(g: torch.Tensor, layout: GateLayout, n_heads: int, d_head: int) -> torch.Tensor:
    """The gate's input per feature of z (batch, pos, n_heads, d_head) from its projection's
    output (batch, pos, width); a view where the layout allows it (one per head: expanded)."""
    lead = g.shape[:-1]
    if layout == "flat":
        return g.view(*lead, n_heads, d_head)
    if layout == "per_head":
        return g.view(*lead, n_heads, 1).expand(*lead, n_heads, d_head)
    return g.view(*lead, n_heads, -1)[..., -d_head:]  # after each head's queries


def attn_gate(model: nn.Module, attn_mod: nn.Module, attn: str, n_heads: int) -> AttnGate | None:
    """The gate on `attn_mod`'s output (the first attending block's attention, at block path
    `attn`), or None when it has none."""
    o_proj = getattr(attn_mod, "o_proj", None)
    width = getattr(o_proj, "in_features", None)
    if not isinstance(o_proj, nn.Linear) or not isinstance(width, int) or width % n_heads:
        return None
    d_head = width // n_heads
    name = next((n for n in ATTN_GATE if isinstance(getattr(attn_mod, n, None), nn.Linear)), None)
    layout: GateLayout
    if name is not None:
        out = getattr(attn_mod, name).out_features
        layout = "flat" if out == width else "per_head"
        if out not in (width, n_heads):
            return None
    elif getattr(getattr(attn_mod, "q_proj", None), "out_features", None) == 2 * width:
        name, layout = "q_proj", "q_gate_per_head"
    elif (fused := next((n for n in Q_AND_GATE if _wider(attn_mod, n, width)), None)) is not None:
        name, layout = fused, "q_gate_per_head"  # per head, queries then the gate (AXK2)
    else:
        return None
    bias = next(
        (b for b in GATE_BIAS if isinstance(getattr(attn_mod, b, None), nn.Parameter)), None
    )
    if bias is not None and layout == "q_gate_per_head":
        return None  # not seen: a bias on a gate fused with the queries
    shift = getattr(attn_mod, bias) if bias is not None else None
    act = _read_act(model, attn_mod, name, layout, n_heads, d_head, shift)
    if act is None:
        return None
    return AttnGate(f"{attn}.{name}", layout, act, f"{attn}.{bias}" if bias else None)


def _wider(attn_mod: nn.Module, name: str, width: int) -> bool:
    """Whether `attn_mod`'s linear child `name` is wider than the output projection's input
    (`width`): queries and a gate in one projection."""
    out = getattr(getattr(attn_mod, name, None), "out_features", None)
    return isinstance(out, int) and out > width


def _read_act(
    model: nn.Module, attn_mod: nn.Module, src: str, layout: GateLayout, nh: int, dh: int,
    bias: torch.Tensor | None = None,
) -> GateAct | None:  # fmt: skip
    """The `GATE_ACTS` name of act where the output projection's input is z * act(g) (g read
    from child `src` of `attn_mod`, plus `bias` (n_heads,) where the attention adds one), or
    None: no candidate holds, or the attention function was not seen."""
    seen = attention_record(model, attn_mod)
    z, g, o_ins = seen.get("output"), seen["outputs"].get(src), seen["inputs"].get("o_proj")
    if z is None or g is None or not o_ins or z.numel() != o_ins[0].numel():
        return None
    o_in = o_ins[0]  # the first call's, as z
    z = z.float().reshape(*o_in.shape[:-1], nh, dh)
    gate = gate_input(g.float(), layout, nh, dh)
    if bias is not None:
        gate = gate + bias.detach().float()[:, None]
    got = o_in.float().reshape(z.shape)
    for name, act in GATE_ACTS.items():
        want = z * act(gate)
        big = want.abs() > 1e-3 * want.abs().max()
        if not big.any():
            return None
        if float(((got - want).abs()[big] / want.abs()[big]).median()) <= 2e-2:
            return name
    return None
