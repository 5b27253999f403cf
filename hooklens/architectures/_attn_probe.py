"""Run a model once with a probe in place of its attention function.

Some facts about a model's attention are read from what its attention function receives
(the layout of the rotated query, how many times one module calls it). `probing` registers a
probe (which must return what the attention function returns; it may hand the call to sdpa)
under its own implementation name, with transformers' sdpa mask builder, switches the model's
(and the attention module's) config to it for one forward of a few tokens, and restores them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._run_order import ProbeDone, _first, child_hooks, stop_probe
from ._towers import walked

__all__ = ["PROBE", "attention_calls", "attention_record", "run_probed"]

PROBE = "hooklens_probe"


def run_probed(
    model: nn.Module, attn_mod: nn.Module, probe: Callable[..., Any], n_tokens: int = 3,
    stop_after: nn.Module | None = None,
) -> None:  # fmt: skip
    """One forward of `n_tokens` tokens of `model` with `probe` as its attention function,
    ended as soon as `stop_after` (a module the probe watches) has returned."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PROBE, probe)
    AttentionMaskInterface.register(PROBE, sdpa_mask)
    found: list[Any] = [getattr(model, "config", None), getattr(attn_mod, "config", None)]
    configs = {id(c): c for c in found if c is not None}
    saved = {k: c._attn_implementation for k, c in configs.items()}
    device = next(model.parameters()).device
    handle = stop_after.register_forward_hook(stop_probe) if stop_after is not None else None
    try:
        for c in configs.values():
            c._attn_implementation = PROBE
        with torch.no_grad():
            model(
                input_ids=torch.ones(1, n_tokens, dtype=torch.long, device=device), use_cache=False
            )
    except ProbeDone:
        pass
    finally:
        if handle is not None:
            handle.remove()
        for k, c in configs.items():
            c._attn_implementation = saved[k]


def attention_calls(model: nn.Module, attn_mod: nn.Module) -> int:
    """How many times `attn_mod` calls the attention function in one forward."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    calls = [0]

    def probe(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        calls[0] += module is attn_mod
        return sdpa_attention_forward(module, *args, **kwargs)

    run_probed(model, attn_mod, probe)
    return calls[0]


def attention_record(model: nn.Module, attn_mod: nn.Module) -> dict[str, Any]:
    """What block 0's attention module `attn_mod` computes in one forward of 3 tokens with a
    recording probe as its attention function, up to its return (once per derivation,
    `shared_walks`; read by the latent attention's and the output gate's findings):
    {"query": the query its first call hands the attention function (batch, heads, pos, d),
    "output": what that call returns (batch, pos, heads, d), "inputs" and "outputs": its
    children's, as `child_hooks` records them}; "query" and "output" are absent where it does
    not call the attention function."""
    return walked(model, ("attention record", id(attn_mod)), lambda: _record(model, attn_mod))


def _record(model: nn.Module, attn_mod: nn.Module) -> dict[str, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    inputs, outputs, handles = child_hooks(attn_mod)
    seen: dict[str, Any] = {"inputs": inputs, "outputs": outputs}

    def probe(module: nn.Module, query: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = sdpa_attention_forward(module, query, *args, **kwargs)
        if module is attn_mod and "query" not in seen:
            seen["query"], seen["output"] = query.detach(), _first(out).detach()
        return out

    try:
        run_probed(model, attn_mod, probe, stop_after=attn_mod)  # block 0's attention is enough
    finally:
        for h in handles:
            h.remove()
    return seen
