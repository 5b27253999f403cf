"""A sweep whose metric reads the last position runs the last block's MLP on that row alone,
unless a hook could see the other rows."""

from __future__ import annotations

from typing import Any

import torch

from hooklens import patching

from .conftest import prompt_pair


def _down_rows(model: Any) -> tuple[list[int], Any]:
    """Rows the last block's MLP output projection sees, recorded by a raw torch hook."""
    block = model.hf_model.get_submodule(model.spec.blocks)[model.cfg.n_layers - 1]
    seen: list[int] = []
    handle = block.get_submodule(model.spec.mlp_down).register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[1])
    )
    return seen, handle


def _last(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, 5] - logits[:, -1, 6]


def _loop(model: Any, clean: torch.Tensor, corrupted: torch.Tensor) -> torch.Tensor:
    """One full forward per cell."""
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
        values = torch.empty(model.cfg.n_layers, clean.shape[1])
        for layer in range(model.cfg.n_layers):
            for pos in range(clean.shape[1]):
                one = [(f"blocks.{layer}.hook_resid_pre", {"pos": pos})]
                values[layer, pos] = _last(patching.patch(model, corrupted, cache, one))[0]
    return values


def test_last_block_mlp_runs_on_the_last_row(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    seen, handle = _down_rows(tiny_model)
    try:
        result = patching.sweep(tiny_model, clean, corrupted, _last, normalize=False,
                                progress=False)  # fmt: skip
    finally:
        handle.remove()
    # every pass of the sweep sees one row; the full-width calls are the unpatched runs (the
    # source cache, the recorded base run, the base values that find cells patching nothing)
    full = clean.shape[1]
    assert set(seen) == {1, full} and seen.count(full) <= 3 and seen.count(1) >= 2
    torch.testing.assert_close(result.raw, _loop(tiny_model, clean, corrupted), atol=1e-4,
                               rtol=1e-4)  # fmt: skip


def test_a_hook_after_the_last_attention_sees_every_row(tiny_model: Any) -> None:
    """With a hook on the last block's output, its MLP runs on every row again, and the hook
    sees what a full patched forward computes at each of them."""
    clean, corrupted = prompt_pair()
    last = tiny_model.cfg.n_layers - 1
    kept: list[torch.Tensor] = []
    seen, handle = _down_rows(tiny_model)
    try:
        with tiny_model.hooks([(f"blocks.{last}.hook_resid_post", lambda x, h: kept.append(x))]):
            result = patching.sweep(tiny_model, clean, corrupted, _last, normalize=False,
                                    progress=False)  # fmt: skip
    finally:
        handle.remove()
    assert seen and min(seen) > 1
    torch.testing.assert_close(result.raw, _loop(tiny_model, clean, corrupted), atol=1e-4,
                               rtol=1e-4)  # fmt: skip
    assert all(torch.isfinite(x).all() for x in kept)
