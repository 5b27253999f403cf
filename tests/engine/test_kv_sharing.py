"""Layers that reuse the keys and values an earlier layer computed (Gemma 4's KV sharing, as
its smaller checkpoints ship): which layer they read from, what their points are, and edits
equal to the same edits made with raw torch hooks."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import hooklens as hl
from hooklens.architectures._registry import tiny_config

TOKENS = torch.tensor([[5, 9, 17, 33, 8, 2], [7, 7, 40, 3, 11, 60]])
KINDS = ["sliding_attention", "full_attention"] * 3


def _gemma4(shared: int) -> hl.HookedModel:
    base = tiny_config("gemma4_text").to_dict()
    for key in ("per_layer_config", "layer_types", "rope_parameters"):
        base.pop(key, None)  # derived from the layer kinds
    base.update(num_hidden_layers=len(KINDS), layer_types=KINDS, num_kv_shared_layers=shared)
    config = tf.Gemma4TextConfig(**base)
    torch.manual_seed(0)
    return hl.HookedModel(tf.AutoModelForCausalLM.from_config(config).eval())


@pytest.fixture(scope="module")
def model() -> hl.HookedModel:
    return _gemma4(shared=3)


def _hf_logits(model: hl.HookedModel) -> torch.Tensor:
    with torch.no_grad():
        return model.hf_model(TOKENS, use_cache=False).logits


def _attn(model: hl.HookedModel, layer: int) -> torch.nn.Module:
    return model.hf_model.model.layers[layer].self_attn


def test_each_reusing_layer_reads_the_last_earlier_layer_of_its_kind(model):
    # transformers: layers 3.. reuse; each reads the last layer before 3 of its own kind
    modes = model.hf_model.config.kv_sharing_modes
    assert modes == [None, "store", "store", "reuse", "reuse", "reuse"]
    assert model.spec.kv_reused == ((3, 1), (4, 2), (5, 1))
    assert model.spec.v_source is not None and model.spec.v_source.module == "self_attn.v_norm"
    logits, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(logits, _hf_logits(model), atol=1e-5, rtol=1e-5)
    for layer, source in model.spec.kv_reused:
        for suffix in ("attn.hook_rot_k", "attn.hook_v"):
            torch.testing.assert_close(
                cache[f"blocks.{layer}.{suffix}"], cache[f"blocks.{source}.{suffix}"]
            )
        assert f"blocks.{layer}.attn.hook_k" not in cache
        assert f"blocks.{layer}.attn.hook_q" in cache


def test_a_reusing_layers_keys_before_the_rotation_say_whose_they_are(model):
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter="blocks.4.attn.hook_k")
    said = str(info.value)
    assert "reuses the keys and values layer 2 computed" in said
    assert "blocks.2.attn.hook_k" in said and "blocks.4.attn.hook_rot_k" in said


@pytest.mark.parametrize("letter, module", [("k", "k_norm"), ("v", "v_norm")])
def test_an_edit_where_keys_and_values_are_computed_reaches_every_layer_reusing_them(
    model, letter, module
):
    source = 2

    def halve(x: torch.Tensor, hook: object) -> torch.Tensor:
        return x * 0.5

    name = f"blocks.{source}.attn.hook_{letter}"
    got = model.run_with_hooks(TOKENS, fwd_hooks=[(name, halve)])
    handle = (
        _attn(model, source).get_submodule(module).register_forward_hook(lambda m, a, out: out / 2)
    )
    try:
        want = _hf_logits(model)
    finally:
        handle.remove()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # layer 4 reads them: what its attention reads changed with them
    seen = "attn.hook_rot_k" if letter == "k" else "attn.hook_v"
    with model.hooks(fwd_hooks=[(name, halve)]):
        _, edited = model.run_with_cache(TOKENS, names_filter=f"blocks.4.{seen}")
    _, plain = model.run_with_cache(TOKENS, names_filter=f"blocks.4.{seen}")
    torch.testing.assert_close(edited[f"blocks.4.{seen}"], plain[f"blocks.4.{seen}"] * 0.5)


def test_an_edit_of_a_reusing_layers_values_changes_that_layer_alone(model):
    layer, source = 4, 2

    def zero_head(x: torch.Tensor, hook: object) -> torch.Tensor:
        x = x.clone()
        x[:, :, 0] = 0
        return x

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_v", zero_head)]):
        got, cache = model.run_with_cache(TOKENS, names_filter=lambda n: "hook_v" in n)
    _, plain = model.run_with_cache(TOKENS, names_filter=lambda n: "hook_v" in n)
    torch.testing.assert_close(
        cache[f"blocks.{source}.attn.hook_v"], plain[f"blocks.{source}.attn.hook_v"]
    )

    # the same edit by hand: layer 4's attention is handed its own copy of the shared values
    def hand_over(module, args, kwargs):
        shared = kwargs["shared_kv_states"]
        copy = type(shared)(dict(shared))
        keys, values = copy[module.layer_type]
        values = values.clone()
        values[:, 0] = 0  # (batch, kv heads, pos, d_head)
        copy[module.layer_type] = (keys, values)
        return args, {**kwargs, "shared_kv_states": copy}

    handle = _attn(model, layer).register_forward_pre_hook(hand_over, with_kwargs=True)
    try:
        want = _hf_logits(model)
    finally:
        handle.remove()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, _hf_logits(model), atol=1e-3)


def test_weights_of_a_reusing_layer(model):
    w = model.weights.layer(4)
    for letter in "KV":
        with pytest.raises(ValueError, match="reuses the keys and values layer 2") as info:
            _ = getattr(w, f"W_{letter}")
        assert "model.weights.layer(2)" in str(info.value)
    # its own queries' projection: W_Q of ln1's output is q_proj's output
    _, cache = model.run_with_cache(TOKENS, names_filter="blocks.4.ln1.hook_normalized")
    x = cache["blocks.4.ln1.hook_normalized"]
    q_proj = _attn(model, 4).q_proj
    with torch.no_grad():
        want = q_proj(x).view(*x.shape[:2], model.cfg.n_heads, -1)
    torch.testing.assert_close(torch.einsum("bpd,hde->bphe", x, w.W_Q), want)


def test_partial_runs_fall_back_to_full_passes_and_patching_is_exact(model):
    from hooklens._engine.partial import RecordedRun

    with model.hooks():
        run = RecordedRun(model, TOKENS[:1])
    assert not run.skips and "reuses the keys and values layer 1" in run.why_not
    clean, corrupt = TOKENS[:1], TOKENS[1:]
    _, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n.endswith("resid_pre"))

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, 3] - logits[0, -1, 4]

    def patch(x: torch.Tensor, hook: object) -> torch.Tensor:
        x = x.clone()
        x[:, 2] = clean_cache["blocks.4.hook_resid_pre"][:, 2]
        return x

    result = hl.patching.get_act_patch_resid_pre(model, corrupt, clean_cache, metric)
    by_hand = model.run_with_hooks(corrupt, fwd_hooks=[("blocks.4.hook_resid_pre", patch)])
    torch.testing.assert_close(result[4, 2], metric(by_hand), atol=1e-5, rtol=1e-5)


def test_without_sharing_every_layer_computes_its_own():
    model = _gemma4(shared=0)
    assert model.spec.kv_reused == () and model.spec.v_source is None
    _, cache = model.run_with_cache(TOKENS)
    assert all(f"blocks.{i}.attn.hook_k" in cache for i in range(len(KINDS)))


def test_without_layer_kinds_one_forward_finds_the_same_sources(monkeypatch):
    from hooklens.architectures import _kv_sharing

    monkeypatch.setattr(_kv_sharing, "by_kind", lambda *args: None)
    assert _gemma4(shared=3).spec.kv_reused == ((3, 1), (4, 2), (5, 1))


def test_a_wrong_source_is_refused_by_the_check_at_load(monkeypatch):
    """The sources read from the layers' kinds are a guess: the check at load compares each
    reusing layer's keys and values with its source's."""
    from hooklens.architectures import _kv_sharing

    monkeypatch.setattr(_kv_sharing, "by_kind", lambda *args: ((3, 2), (4, 1), (5, 2)))
    with pytest.raises(hl.UnsupportedModelError, match="keys and values reused"):
        _gemma4(shared=3)


def test_generation_with_the_cache_applies_an_edit_at_the_source_as_a_full_forward_does(model):
    """During cached generation a reusing layer reads its source's keys and values from the
    cache: with an edit of the source's values on, each step's logits are the logits of a full
    forward of the generated sequence with the same edit."""
    width = model.cfg.layer(1).d_head  # layer 1 attends to the full context: wider heads
    delta = torch.randn(width, generator=torch.Generator().manual_seed(9)) * 3

    def shift(v: torch.Tensor, hook: object) -> torch.Tensor:
        return v + delta

    prompt = TOKENS[:1, :4]
    with model.hooks(fwd_hooks=[("blocks.1.attn.hook_v", shift)]), torch.no_grad():
        out = model.hf_model.generate(
            prompt, max_new_tokens=5, do_sample=False, output_logits=True,
            return_dict_in_generate=True,
        )  # fmt: skip
    steps = torch.stack(out.logits, dim=1)  # (1, 5, vocab)
    with torch.no_grad():
        full = model.run_with_hooks(out.sequences, fwd_hooks=[("blocks.1.attn.hook_v", shift)])
        plain = model(out.sequences)
    torch.testing.assert_close(full[:, 3:-1], steps, atol=1e-4, rtol=0)
    assert (plain[:, 3:-1] - steps).abs().max() > 1e-2  # the edit acts on the generated steps
