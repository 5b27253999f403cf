"""Falcon-H1: attention and a Mamba mixer side by side in every layer, and µP multipliers the
block applies outside its modules. Each point holds what the model computes where it sits."""

from __future__ import annotations

import torch

TOKENS = torch.tensor([[5, 9, 17, 33, 40], [7, 7, 60, 3, 12]])


def _falcon_h1(registry):
    outcome, model = registry("falcon_h1")
    assert model is not None, outcome.reason
    return model


def test_attention_and_mixer_side_by_side(registry):
    """Every layer attends and has a mixer beside attention: both points exist, and what the
    two add (with their multipliers) is resid_mid minus resid_pre."""
    model = _falcon_h1(registry)
    n = model.cfg.n_layers
    assert model.spec.attention_layers(n) == list(range(n))
    names = model.hook_names()
    for layer in range(n):
        b = f"blocks.{layer}."
        assert b + "attn.hook_pattern" in names and b + "hook_mixer_out" in names
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    for layer in range(n):
        b = f"blocks.{layer}."
        added = cache[b + "hook_attn_out"] + cache[b + "hook_mixer_out"]
        torch.testing.assert_close(cache[b + "hook_resid_pre"] + added, cache[b + "hook_resid_mid"])
        parts, labels = cache.decompose_resid(layer=layer + 1, return_labels=True)
        assert f"{layer}_attn_out" in labels and f"{layer}_mixer_out" in labels
        torch.testing.assert_close(parts.sum(0), cache[b + "hook_resid_post"])


def test_multipliers_are_in_the_points(registry):
    """The µP factors (none is 1 in the tiny config) sit in the points: the mixer's and
    attention's outputs times theirs, k_proj's output times the key multiplier, the gate
    projection's output times the gate multiplier (hook_pre, before the activation)."""
    model = _falcon_h1(registry)
    hf = model.hf_model
    cfg = hf.config
    block = hf.get_submodule(model.spec.blocks)[0]
    factors = dict(model.spec.factors)
    assert set(factors) == {"attn_in", "k", "attn_out", "mixer_out", "mlp_pre"}
    seen = {}
    hooks = [
        block.mamba.register_forward_hook(lambda m, a, o: seen.__setitem__("mamba", o)),
        block.self_attn.register_forward_hook(lambda m, a, o: seen.__setitem__("attn", o[0])),
        block.self_attn.k_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("k", o)),
        block.feed_forward.gate_proj.register_forward_hook(
            lambda m, a, o: seen.__setitem__("gate", o)
        ),
    ]
    try:
        with torch.no_grad():
            _, cache = model.run_with_cache(TOKENS)
    finally:
        for h in hooks:
            h.remove()
    c = "blocks.0."
    torch.testing.assert_close(cache[c + "hook_mixer_out"], seen["mamba"] * cfg.ssm_out_multiplier)
    torch.testing.assert_close(
        cache[c + "hook_attn_out"], seen["attn"] * cfg.attention_out_multiplier
    )
    k = cache[c + "attn.hook_k"]
    torch.testing.assert_close(k.flatten(-2), seen["k"] * cfg.key_multiplier)
    pre = cache[c + "mlp.hook_pre"]
    torch.testing.assert_close(pre, seen["gate"] * cfg.mlp_multipliers[0])
    act = block.feed_forward.act_fn
    torch.testing.assert_close(
        act(pre) * cache[c + "mlp.hook_pre_linear"], cache[c + "mlp.hook_post"]
    )
    # the weights give the points: W_K includes the input and key multipliers, W_O the output's
    w = model.weights.layer(0)
    x = cache[c + "ln1.hook_normalized"]
    torch.testing.assert_close(torch.einsum("bpd,hde->bphe", x, w._W_K) + w._b_K, k)
    z = cache[c + "attn.hook_z"]
    out = torch.einsum("bphd,hde->bpe", z, w.W_O) + w.b_O
    torch.testing.assert_close(out, cache[c + "hook_attn_out"])
    assert block.feed_forward.gate_proj.bias is None
    x2 = cache[c + "ln2.hook_normalized"]
    torch.testing.assert_close(x2 @ w.W_gate, pre, atol=1e-5, rtol=1e-4)


def _logits_with_raw_hook(hf, module, hook):
    """The plain model's logits on TOKENS with a raw torch forward hook on `module`."""
    handle = module.register_forward_hook(hook)
    try:
        return hf(TOKENS, use_cache=False).logits
    finally:
        handle.remove()


def test_edits_of_both_parts_reach_the_model(registry):
    """Zeroing hook_mixer_out removes the mixer's contribution (as zeroing mamba's output by
    hand does), and an edit of hook_k equals the same edit of the keys by hand."""
    model = _falcon_h1(registry)
    hf = model.hf_model
    block = hf.get_submodule(model.spec.blocks)[1]
    with torch.no_grad():
        base = hf(TOKENS, use_cache=False).logits
        ours = model.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.1.hook_mixer_out", lambda x, hook: x * 0)]
        )
        want = _logits_with_raw_hook(hf, block.mamba, lambda m, a, o: o * 0)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)
        ours = model.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.1.attn.hook_k", lambda x, hook: x + 1)]
        )
        k_mult = hf.config.key_multiplier  # hook_k is k_proj's output times it
        want = _logits_with_raw_hook(hf, block.self_attn.k_proj, lambda m, a, o: o + 1 / k_mult)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)


def test_points_recomputed_from_the_weights_are_left_out_saying_why(registry):
    """The multiplier on its keys makes the per-head inputs' recomputation differ from the
    model: they are left out, and asking says why. (hook_result includes the multiplier on
    attention's output, as W_O does: test_stream_scales.py.)"""
    import pytest

    import hooklens as hl

    model = _falcon_h1(registry)
    assert "blocks.0.attn.hook_result" in model.hook_names()
    for name in ("blocks.0.hook_q_input",):
        assert name not in model.hook_names()
        with pytest.raises(hl.HookNameError, match="left out rather than computed wrong"):
            model.run_with_cache(TOKENS, names_filter=name)


def test_patching_sweep_runs_full_forwards(registry):
    """The Mamba mixers beside attention keep a recurrent state: partial forwards are refused
    and a resid_pre sweep runs full passes, equal to patching each cell by hand."""
    from hooklens import patching
    from hooklens._engine.partial import RecordedRun

    from .conftest import assert_resid_pre_sweep_equals_each_patch

    model = _falcon_h1(registry)
    clean, corrupted = torch.tensor([[5, 9, 17, 33]]), torch.tensor([[5, 9, 18, 33]])

    def metric(logits):
        return logits[:, -1, 7] - logits[:, -1, 8]

    with model.owner.hold():
        run = RecordedRun(model, corrupted)
    assert not run.skips
    assert run.why_not == "its FalconH1Mixer layers keep a recurrent state, not keys/values"
    result = patching.sweep(
        model, clean, corrupted, metric, "resid_pre", normalize=False, progress=False
    )
    assert_resid_pre_sweep_equals_each_patch(model, clean, corrupted, metric, result.values)
