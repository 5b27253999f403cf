"""A factor attention applies to its values after `v_proj` (MiMo-V2-Flash's `v_scale`): W_V
includes it, and the per-head input points, which replace the projections' outputs, do not
apply it a second time."""

from __future__ import annotations

import torch

from hooklens.architectures._registry import VOCAB


def test_per_head_inputs_leave_a_value_factor_to_the_model(registry):
    outcome, model = registry("mimo_v2_flash")
    assert model is not None, outcome.reason
    attn = model.hf_model.get_submodule(f"{model.spec.blocks}.0.{model.spec.attn}")
    assert attn.v_scale != 1  # the factor this test is about acts
    tokens = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))
    names = [f"blocks.{layer}.hook_{x}_input" for layer in (0, 1) for x in "qkv"]
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(
            tokens, names_filter=[*names, "blocks.0.attn.hook_v", "blocks.0.ln1.hook_normalized"]
        )
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-4)
    w = model.weights.layer(0)
    v = torch.einsum("bpd,hde->bphe", cache["blocks.0.ln1.hook_normalized"], w.W_V)
    c = model.cfg.layer(0)  # W_V has every query head's copy (grouped-query attention)
    want = cache["blocks.0.attn.hook_v"].repeat_interleave(c.n_heads // c.n_kv_heads, dim=2)
    torch.testing.assert_close(v, want, atol=1e-5, rtol=1e-4)
