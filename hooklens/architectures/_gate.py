"""Find a gate on attention's output (Qwen3-Next, AFMoE, Laguna, Ling): `o_proj(z * act(g))`.

The gate's input `g` comes from its own projection (`ATTN_GATE` names, one gate per feature of
z or one per head, told apart by its width) or from the second half of each head's slice of a q
projection twice as wide as the output projection's input. Its nonlinearity is read from what
the model computes: one forward with `g` set to 0 and one with `g` set to 1 change the output
projection's input by the factor act(1) / act(0), which tells the candidates (`GATE_ACTS`)
apart (z does not depend on this layer's gate). A candidate the forwards contradict is no gate,
and the model is then checked without one (`_engine/verify.py` names what did not match).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ._names import ATTN_GATE, GATE_BIAS, Q_AND_GATE
from ._run_order import probe_forward
from ._spec_parts import AttnGate, GateLayout

#: the nonlinearities a gate may apply, by the name `AttnGate.act` holds
GATE_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
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
    src = attn_mod.get_submodule(name)
    act = _probe_act(model, src, o_proj, layout, n_heads, d_head, shift)
    if act is None:
        return None
    return AttnGate(f"{attn}.{name}", layout, act, f"{attn}.{bias}" if bias else None)


def _wider(attn_mod: nn.Module, name: str, width: int) -> bool:
    """Whether `attn_mod`'s linear child `name` is wider than the output projection's input
    (`width`): queries and a gate in one projection."""
    out = getattr(getattr(attn_mod, name, None), "out_features", None)
    return isinstance(out, int) and out > width


def _probe_act(
    model: nn.Module, src: nn.Module, o_proj: nn.Module, layout: GateLayout, nh: int, dh: int,
    bias: torch.Tensor | None = None,
) -> Any:  # fmt: skip
    """The `GATE_ACTS` name whose act(1) / act(0) is how the output projection's input changes
    when the gate's input goes from 0 to 1 (None: no candidate, or no gate); `bias` (n_heads,),
    added to the projection's output by the attention, is taken off what the probe sets."""
    seen: list[torch.Tensor] = []

    def set_rows(mod: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        new = out.clone()
        for row, value in enumerate((0.0, 1.0)):  # row 0's gate input 0, row 1's 1
            piece = new[row : row + 1]
            # the whole output is the gate's input, except in a q projection
            (gate_input(piece, layout, nh, dh) if layout == "q_gate_per_head" else piece).fill_(
                value
            )
        if bias is not None:  # flat or per head: the attention adds it back
            new.view(*new.shape[:-1], nh, -1).sub_(bias.detach()[:, None].to(new.dtype))
        return new

    # one forward of two identical rows, which ends once the output projection has run
    tokens = torch.arange(1, 4)[None].repeat(2, 1)
    handles = [
        src.register_forward_hook(set_rows),
        o_proj.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().float())),
    ]
    probe_forward(model, handles, stop_after=o_proj, input_ids=tokens)
    if len(seen) != 1 or seen[0].shape[0] != 2:
        return None
    at0, at1 = seen[0][0], seen[0][1]
    big = at0.abs() > 1e-3 * at0.abs().max()
    if not big.any():
        return None
    ratio = (at1[big] / at0[big]).median()
    for name, act in GATE_ACTS.items():
        want = act(torch.tensor(1.0)) / act(torch.tensor(0.0))
        if abs(float(ratio - want)) <= 2e-2 * float(want):  # the candidates differ by 30%
            return name
    return None
