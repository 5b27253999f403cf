"""Blocks whose residual additions are not one module's output added once: a shared MLP beside
a mixture of experts (its output added in the same step), residual multipliers."""

from __future__ import annotations

import pytest
import torch

from hooklens.architectures._registry import VOCAB

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))


def _raw_logits(hf, modules, factor):
    """The model's logits with each of `modules`' outputs multiplied by `factor` (torch hooks)."""
    handles = [m.register_forward_hook(lambda m, a, out: out * factor) for m in modules]
    try:
        with torch.no_grad():
            return hf(TOKENS, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()


def test_shared_mlp_beside_the_experts_is_part_of_mlp_out(registry):
    """GraniteMoeShared adds moe(x) + shared_mlp(x): hook_mlp_out is that sum (times the
    residual multiplier), and editing it edits both."""
    _, model = registry("granitemoeshared")
    assert model is not None and model.spec.mlp_beside == "shared_mlp"
    block = model.hf_model.get_submodule(model.spec.blocks)[1]
    mods = [block.get_submodule(model.spec.mlp_out), block.get_submodule("shared_mlp")]
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, a, out: seen.append(out)) for m in mods]
    try:
        _, cache = model.run_with_cache(TOKENS, names_filter="blocks.1.hook_mlp_out")
    finally:
        for h in handles:
            h.remove()
    want = (seen[0] + seen[1]) * float(block.residual_multiplier)
    torch.testing.assert_close(cache["blocks.1.hook_mlp_out"], want)
    for factor in (0.0, 2.5):
        with torch.no_grad():
            got = model.run_with_hooks(
                TOKENS, fwd_hooks=[("blocks.1.hook_mlp_out", lambda x, hook, f=factor: x * f)]
            )
        torch.testing.assert_close(got, _raw_logits(model.hf_model, mods, factor))


def test_a_forward_stopped_between_the_two_leaves_nothing_behind(registry):
    """A forward that stops after the experts ran but before the shared MLP did (an error)
    does not leak the experts' output into the next forward's hook_mlp_out."""
    _, model = registry("granitemoeshared")
    assert model is not None
    name = "blocks.0.hook_mlp_out"
    _, want = model.run_with_cache(TOKENS, names_filter=name)
    shared = model.hf_model.get_submodule(model.spec.blocks)[0].get_submodule("shared_mlp")

    def fail(mod, args):
        raise RuntimeError("stopped")

    with model.hooks(fwd_hooks=[(name, lambda x, hook: x)]):
        handle = shared.register_forward_pre_hook(fail)
        try:
            with pytest.raises(RuntimeError, match="stopped"):
                model(TOKENS[:, :3])
        finally:
            handle.remove()
        _, got = model.run_with_cache(TOKENS, names_filter=name)
    torch.testing.assert_close(got[name], want[name])
