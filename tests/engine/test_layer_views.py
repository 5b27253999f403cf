"""Layers that are parallel lists of parts (XLM): hooklens names each layer's parts through a
view the model never sees, and places the block's points on the parts
(`hooklens/architectures/_split_layers.py`)."""

from __future__ import annotations

import warnings

import pytest
import torch

import hooklens as hl
from hooklens._engine.partial import RecordedRun
from hooklens.architectures._registry import VOCAB, build

from .conftest import _tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("xlm") / "xlm"
    assert build("xlm", path) is None
    return path


@pytest.fixture(scope="module")
def model(folder):
    return hl.HookedModel.from_pretrained(str(folder), tokenizer=_tokenizer())


def _tokens(seed=1):
    return torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(seed))


def test_views_leave_the_model_as_loaded(folder, model, tmp_path):
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_pretrained(folder).eval()
    hf = model.hf_model
    assert list(hf.state_dict()) == list(fresh.state_dict())
    assert [n for n, _ in hf.named_modules()] == [n for n, _ in fresh.named_modules()]
    assert len(model.blocks) == model.cfg.n_layers == fresh.config.n_layers
    # the parts a view names are the model's own modules
    views = "transformer.hooklens_layers"
    assert hf.get_submodule(f"{views}.1.attention") is hf.transformer.attentions[1]
    assert hf.get_submodule(f"{views}.0.ln2") is hf.transformer.layer_norm2[0]
    hf.save_pretrained(tmp_path)  # no duplicated tensors to refuse
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokens = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(again(tokens).logits, fresh(tokens).logits, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="layer 1 of this model is a view"):
        hf.transformer.hooklens_layers[1](torch.zeros(1, 2, model.cfg.d_model))


def test_stream_points_are_the_models_hidden_states(model):
    tokens = _tokens()
    with torch.no_grad():
        hidden = model.hf_model(tokens, output_hidden_states=True).hidden_states
        _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        b = f"blocks.{layer}."
        torch.testing.assert_close(cache[b + "hook_resid_pre"], hidden[layer], rtol=0, atol=0)
        torch.testing.assert_close(
            cache[b + "hook_normalized_resid_post"], hidden[layer + 1], rtol=0, atol=0
        )
        torch.testing.assert_close(
            cache[b + "hook_resid_mid"], cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"]
        )
        torch.testing.assert_close(
            cache[b + "hook_resid_post"],
            cache[b + "ln1.hook_normalized"] + cache[b + "hook_mlp_out"],
        )


def test_a_padded_batch_matches_the_model_with_every_point_attached(model):
    tokens = _tokens(2)
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0  # left padding
    with torch.no_grad():
        ref = model.hf_model(tokens, attention_mask=mask).logits
        logits, cache = model.run_with_cache(tokens, attention_mask=mask)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert pattern[0, :, :, :3].abs().max() == 0  # no query attends to a padded key
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))


def test_an_edit_of_the_next_stream_leaves_the_cached_norm_outputs(model):
    """The model writes an edit of hook_resid_pre into the tensor ln2 returned one layer down:
    ln2's points hand it a copy, so what they cached stays what ln2 computed."""
    tokens = _tokens()
    names = ["blocks.0.ln2.hook_normalized", "blocks.0.hook_normalized_resid_post"]
    with torch.no_grad():
        _, plain = model.run_with_cache(tokens, names_filter=names)
        with model.hooks([("blocks.1.hook_resid_pre", lambda x, hook: x * 0 + 1)]):
            edited_logits, edited = model.run_with_cache(tokens, names_filter=names)
        base = model(tokens)
    assert (edited_logits - base).abs().max() > 1e-3
    for name in names:
        torch.testing.assert_close(edited[name], plain[name], rtol=0, atol=0)


def test_partial_forwards_run_full_passes(model):
    tokens = _tokens()[:1]
    with model.owner.hold(), torch.no_grad():
        run = RecordedRun(model, tokens)
    assert not run.skips
    assert "parallel lists of parts" in run.why_not
    torch.testing.assert_close(run.logits, model(tokens), rtol=0, atol=0)


def test_a_model_with_layer_lists_and_no_adapter_is_refused(folder):
    from transformers import XLMWithLMHeadModel

    class UnlistedXLM(XLMWithLMHeadModel):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = UnlistedXLM.from_pretrained(folder).eval()
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel(hf)
    said = str(info.value)
    assert "its layers are not modules" in said
    assert "attentions, layer_norm1, ffns, layer_norm2" in said


def test_a_causal_xlm_matches_and_extends_its_key_value_cache(folder):
    """With `causal=True` (a mask per query and key), every point attached matches the model;
    while attention's points are hooked, hooklens's attention forward updates the model's cache
    as its own does, so a run continuing from a cache equals the full run. (XLM's own code
    cannot continue a cache without `causal`: its per-key mask loses the cached keys.)"""
    from transformers import AutoModelForCausalLM, DynamicCache, EncoderDecoderCache

    hf = AutoModelForCausalLM.from_pretrained(folder, causal=True).eval()
    model = hl.HookedModel(hf)
    tokens = _tokens()
    patterns = []
    with torch.no_grad():
        full = hf(tokens).logits
        logits, cache = model.run_with_cache(tokens)
        with model.hooks([("blocks.1.attn.hook_pattern", lambda p, hook: patterns.append(p))]):
            kv = EncoderDecoderCache(DynamicCache(), DynamicCache())
            hf(tokens[:, :5], cache=kv)
            step = hf(tokens, cache=kv).logits  # the model runs the 2 positions not cached
    torch.testing.assert_close(logits, full, atol=1e-4, rtol=1e-4)
    assert cache["blocks.0.attn.hook_pattern"][..., 0, 1:].abs().max() == 0  # causal
    assert [p.shape[-2:] for p in patterns] == [(5, 5), (2, 7)]
    torch.testing.assert_close(step, full[:, 5:], atol=1e-5, rtol=1e-4)
