"""Attention that rounds its keys and values before attending (Kolibri 1.1's sparse layers round
them to NVFP4; its tiny model: layer 0 a sliding-window layer that does not round, layer 1 a
sparse layer that rounds and hands its keys and values on, layer 2 a sparse layer that reuses
them and rounds them again). `hook_k`/`hook_v` are the keys and values as computed, before the
rounding; `hook_rot_k` and `hook_rounded_v` what the scores read and what z is made of."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

from .conftest import _tokenizer, raw_edit_logits

TOKENS = torch.tensor([[5, 9, 17, 33, 40, 21], [7, 7, 60, 3, 12, 44]])


@pytest.fixture(scope="module")
def kolibri():
    import transformers as tf

    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("kolibri1_1")).eval()
    return hl.HookedModel(hf)


def test_the_layers_that_round_are_found_from_the_forward(kolibri):
    assert kolibri.spec.kv_rounded == (1, 2)
    assert kolibri.spec.kv_reused == ((2, 1),)
    with pytest.raises(hl.HookNameError, match="attends to its values as computed"):
        kolibri.run_with_cache(TOKENS, names_filter="blocks.0.attn.hook_rounded_v")
    with pytest.raises(hl.HookNameError, match="reuses the values layer 1 computed"):
        kolibri.run_with_cache(TOKENS, names_filter="blocks.2.attn.hook_v")


def test_values_before_and_after_the_rounding(kolibri):
    """hook_v is what v_proj computes; hook_rounded_v its rounding, which z is made of, and
    the layer reusing them reads the same; hook_rot_k is the rounding of hook_k (no rotary on
    the sparse layers)."""
    from transformers.models.kolibri1_1.modeling_kolibri1_1 import nvfp4_fake_quantize as nvfp4

    hf = kolibri.hf_model
    seen = {}
    v_proj = hf.model.layers[1].self_attn.v_proj
    handle = v_proj.register_forward_hook(lambda m, a, out: seen.setdefault("v", out))
    try:
        with torch.no_grad():
            logits, cache = kolibri.run_with_cache(TOKENS)
            ref = hf(TOKENS, use_cache=False).logits
    finally:
        handle.remove()
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    v, rounded = cache["blocks.1.attn.hook_v"], cache["blocks.1.attn.hook_rounded_v"]
    torch.testing.assert_close(v, seen["v"].view(v.shape))
    torch.testing.assert_close(rounded, nvfp4(v))
    assert (rounded - v).abs().max() > 1e-3  # the rounding does change the values
    k = cache["blocks.1.attn.hook_k"]
    torch.testing.assert_close(cache["blocks.1.attn.hook_rot_k"], nvfp4(k))
    rep = kolibri.cfg.n_heads // kolibri.cfg.n_kv_heads
    for layer in (1, 2):
        b = f"blocks.{layer}.attn."
        z = torch.einsum(
            "bhqk,bkhd->bqhd",
            cache[b + "hook_pattern"],
            cache[b + "hook_rounded_v"].repeat_interleave(rep, dim=2),
        )
        torch.testing.assert_close(cache[b + "hook_z"], z, atol=1e-5, rtol=1e-4)
    assert torch.equal(cache["blocks.2.attn.hook_rounded_v"], rounded)
    assert cache["rounded_v", 1] is rounded  # TransformerLens's short names know it too


def test_an_edit_of_hook_v_goes_through_the_rounding_to_both_layers(kolibri):
    """Editing the computed values is the raw edit of v_proj's output: both the layer that
    computes them and the layer that reuses them attend to the rounding of the edited values."""
    hf = kolibri.hf_model

    def double(v, hook):
        return v * 2

    with torch.no_grad():
        _, clean = kolibri.run_with_cache(TOKENS)
        with kolibri.hooks([("blocks.1.attn.hook_v", double)]):
            logits, edited = kolibri.run_with_cache(TOKENS)
    raw = raw_edit_logits(hf, hf.model.layers[1].self_attn.v_proj, lambda out: out * 2, TOKENS)
    torch.testing.assert_close(logits, raw, atol=1e-5, rtol=1e-4)
    for layer in (1, 2):
        b = f"blocks.{layer}.attn."
        assert not torch.equal(edited[b + "hook_rounded_v"], clean[b + "hook_rounded_v"])
        assert not torch.equal(edited[b + "hook_z"], clean[b + "hook_z"])
    assert torch.equal(edited["blocks.0.attn.hook_z"], clean["blocks.0.attn.hook_z"])


def test_an_edit_of_the_rounded_values_changes_that_layer_alone(kolibri):
    """hook_rounded_v is what this layer's attention reads: an edit there changes its z, not
    that of the other layer reading the same values."""

    def zero(v, hook):
        return torch.zeros_like(v)

    with torch.no_grad():
        _, clean = kolibri.run_with_cache(TOKENS)
        with kolibri.hooks([("blocks.2.attn.hook_rounded_v", zero)]):
            _, edited = kolibri.run_with_cache(TOKENS)
    assert torch.equal(edited["blocks.1.attn.hook_z"], clean["blocks.1.attn.hook_z"])
    assert edited["blocks.2.attn.hook_z"].abs().max() == 0


def test_values_that_are_neither_computed_nor_rounded_are_refused(tmp_path, monkeypatch):
    """Where the attention is handed values that are neither those its layer computed nor their
    rounding, hooklens cannot place hook_v: the template refuses the attention, naming the layer
    (its blocks are then kept whole)."""
    import hooklens.architectures._rounded_kv as rounded_kv
    from hooklens.architectures._registry import build

    assert build("kolibri1_1", tmp_path) is None
    monkeypatch.setattr(rounded_kv, "kv_rounding", lambda attn: torch.round)
    model = hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter="blocks.1.attn.hook_pattern")
    assert "rounds keys and values (round) before attending, and on layer 1" in str(info.value)


def test_rounding_without_a_value_module_to_read_is_refused(tmp_path, monkeypatch):
    """hook_v is read before the rounding, at the value projection (or norm): an attention that
    rounds but has none hooklens can find is refused, saying so."""
    import hooklens.architectures._derive as derive
    import hooklens.architectures._rounded_kv as rounded_kv
    from hooklens.architectures._registry import build

    assert build("kolibri1_1", tmp_path) is None
    monkeypatch.setattr(rounded_kv, "value_source", lambda *args: None)
    monkeypatch.setattr(derive, "rounded_kv", _without_v_source(rounded_kv.rounded_kv))
    model = hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter="blocks.1.attn.hook_pattern")
    assert "has no value projection (or value norm)" in str(info.value)


def _without_v_source(find):
    """`rounded_kv` as if the KV sharing had found no value module either."""

    def wrapped(model, blocks, attending, attn, attn_mod, v_source, kv_reused):
        return find(model, blocks, attending, attn, attn_mod, None, kv_reused)

    return wrapped
