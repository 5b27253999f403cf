"""Blocks whose residual is not their input plus their parts' outputs (MiniMax keeps alpha *
ln1(x) as its residual, Beam scales the stream at each addition): every point inside the block
is read as on any family; sums of parts raise, saying why."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

TOKENS = torch.tensor([[5, 9, 17, 33, 8]])
RESCALED = {
    "minimax": ["normalized stream as their residual", "attn_alpha_factor"],
    "beam": ["scale the residual stream itself", "attn_residual_add_idx=2", "0.707"],
}


@pytest.mark.parametrize(("model_type", "says"), RESCALED.items())
def test_rescaled_residual_has_its_parts_but_no_sums(registry, model_type, says):
    outcome, model = registry(model_type)
    assert model is not None, outcome
    assert model.spec.derived and model.spec.whole_blocks() is None
    for words in says:
        assert words in (model.spec.unsummed or "")
    layer = model.spec.attention_layers(model.cfg.n_layers)[-1]
    b = f"blocks.{layer}."
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    pattern = cache[b + "attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
    # the block's output is not its input plus its parts: the sum the template would claim fails
    added = cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"] + cache[b + "hook_mlp_out"]
    assert (added - cache[b + "hook_resid_post"]).abs().max() > 1e-3
    with pytest.raises(hl.InputError) as info:
        cache.decompose_resid()
    assert says[0] in str(info.value)
    stack = cache.accumulated_resid(layer=-1, apply_ln=True)
    assert stack.shape[0] == model.cfg.n_layers + 1
