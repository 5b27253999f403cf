"""The TransformerLens meanings and gradients hold on every family of the family test."""

from __future__ import annotations

import pytest
import torch

from hooklens._engine.points import is_on_demand

from .conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_stop_and_logit_lens_on_every_family(tiny, tokens, family):
    model = tiny(family)
    n = model.cfg.n_layers
    loss, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True)
    model.hf_model.zero_grad(set_to_none=True)
    assert loss.ndim == 0
    for name in model.hook_names():
        if is_on_demand(name):  # hook_result & co. are cached only when named
            continue
        grad = cache[name + "_grad"]
        assert grad.shape == cache[name].shape and torch.isfinite(grad).all(), name
    assert cache[f"blocks.{n - 1}.hook_resid_post_grad"].abs().max() > 0
    assert not [p.name for p in model.hook_dict.values() if p.active]
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, stop_at_layer=1), cache["resid_pre", 1])
        torch.testing.assert_close(model(tokens, stop_at_layer=-1), cache["resid_pre", -1])
        torch.testing.assert_close(model(tokens, stop_at_layer=n), cache["resid_post", -1])
    norm = model.hf_model.get_submodule(model.spec.final_norm)
    bias = getattr(norm, "bias", None)
    lens, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == [*(f"{i}_pre" for i in range(n)), "final_post"]
    with torch.no_grad():
        expected = norm(cache["resid_pre", 1]) - (bias if bias is not None else 0)
    torch.testing.assert_close(lens[1], expected, atol=1e-4, rtol=1e-4)
