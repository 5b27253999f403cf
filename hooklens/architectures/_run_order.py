"""Which modules run, in what order, and on what, in one forward of a few tokens.

A derived adapter reads where a norm sits from the order modules run and what they are given
(a BART decoder's norms, an embedding norm before block 0, a final norm the model also applies
to the embedding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["_run_order", "_same", "final_norm_on_embed", "probe_forward"]


def probe_forward(model: nn.Module, handles: list[Any]) -> None:
    """One forward of 3 tokens of `model` (no gradients, no cache); `handles` (of hooks put
    there to watch it) are removed afterwards, also when it raises."""
    device = next(p.device for p in model.parameters())
    try:
        with torch.no_grad():
            model(input_ids=torch.ones(1, 3, dtype=torch.long, device=device), use_cache=False)
    finally:
        for h in handles:
            h.remove()


def _run_order(model: nn.Module, modules: dict[str, nn.Module]) -> dict[str, Any]:
    """One forward of 3 tokens: each module's first call, as (order, input, output)."""
    seen: dict[str, Any] = {}
    handles = []
    for key, mod in modules.items():

        def record(m: nn.Module, args: Any, kwargs: Any, out: Any, key: str = key) -> None:
            first = args[0] if args else kwargs.get("hidden_states")
            t = out[0] if isinstance(out, tuple) else out
            seen.setdefault(key, (len(seen), first, t))

        handles.append(mod.register_forward_hook(record, with_kwargs=True))
    probe_forward(model, handles)
    return seen


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.shape == b.shape
        and bool(torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4))
    )


def final_norm_on_embed(model: nn.Module, final: str, blocks: str) -> str | None:
    """`final` (a model path) when the model also applies that final norm to the embedding
    before block 0, whose input is its output (NanoChat: `norm` before the layers and after
    them), else None."""
    first = model.get_submodule(blocks)[0]  # type: ignore[index]
    seen = _run_order(model, {"final": model.get_submodule(final), "block0": first})
    if "final" not in seen or "block0" not in seen or seen["final"][0] > seen["block0"][0]:
        return None
    return final if _same(seen["final"][2], seen["block0"][1]) else None
