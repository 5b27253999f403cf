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


class _ProbeDone(Exception):
    """Raised from a hook to end a probe forward once what it watches has run."""


def probe_forward(model: nn.Module, handles: list[Any], stop_after: nn.Module | None = None,
                  input_ids: torch.Tensor | None = None) -> None:  # fmt: skip
    """One forward of `input_ids` (default 3 tokens; on the model's device) of `model` (no
    gradients, no cache), ended as soon as
    `stop_after` (a module the probe watches, e.g. block 0) has returned, so a probe of the
    first block costs one block, not the model and its unembedding; `handles` (of hooks put
    there to watch it) are removed afterwards, also when it raises."""
    device = next(p.device for p in model.parameters())
    if stop_after is not None:  # registered last: the watching hooks on it run first

        def stop(module: nn.Module, args: Any, out: Any) -> None:
            raise _ProbeDone

        handles = [*handles, stop_after.register_forward_hook(stop)]
    ids = torch.ones(1, 3, dtype=torch.long) if input_ids is None else input_ids
    try:
        with torch.no_grad():
            model(input_ids=ids.to(device), use_cache=False)
    except _ProbeDone:
        pass
    finally:
        for h in handles:
            h.remove()


def _run_order(model: nn.Module, modules: dict[str, nn.Module],
               stop_after: nn.Module | None = None) -> dict[str, Any]:  # fmt: skip
    """One forward of 3 tokens (up to `stop_after`, see `probe_forward`): each module's first
    call, as (order, input, output)."""
    seen: dict[str, Any] = {}
    handles = []
    for key, mod in modules.items():

        def record(m: nn.Module, args: Any, kwargs: Any, out: Any, key: str = key) -> None:
            first = args[0] if args else kwargs.get("hidden_states")
            t = out[0] if isinstance(out, tuple) else out
            seen.setdefault(key, (len(seen), first, t))

        handles.append(mod.register_forward_hook(record, with_kwargs=True))
    probe_forward(model, handles, stop_after)
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
    # the final norm runs before block 0 or not at all before its output
    seen = _run_order(model, {"final": model.get_submodule(final), "block0": first}, first)
    if "final" not in seen or "block0" not in seen or seen["final"][0] > seen["block0"][0]:
        return None
    return final if _same(seen["final"][2], seen["block0"][1]) else None
