"""`from_pretrained(fold_ln=True, center_unembed=True)`: TransformerLens's load-time processing,
applied in place to the model hooklens loads, with TransformerLens's meanings."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import build

from .conftest import _tokenizer, build_hf, randomize_biases

LN = ["gpt2", "gpt_neox", "gptj"]
RMS = ["llama", "gemma2", "phi3"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> folder of a tiny model with random norm weights and biases."""
    made = {}

    def get(family):
        if family not in made:
            hf = build_hf(family)
            randomize_biases(hf)
            made[family] = tmp_path_factory.mktemp(family)
            hf.save_pretrained(made[family])
            _tokenizer().save_pretrained(made[family])
        return str(made[family])

    return get


def _load(folder, **kwargs):
    return hl.HookedModel.from_pretrained(folder, **kwargs)


@pytest.mark.parametrize("family", LN + RMS)
def test_fold_ln_at_load_is_transformer_lens_fold(saved, tokens, family):
    plain = _load(saved(family))
    folded = _load(saved(family), fold_ln=True)
    assert folded.cfg.processing == ("fold_ln",)
    assert plain.cfg.normalization_type == ("LN" if family in LN else "RMS")
    assert folded.cfg.normalization_type == ("LNPre" if family in LN else "RMSPre")
    with torch.no_grad():
        logits, cache = folded.run_with_cache(tokens)
        torch.testing.assert_close(logits, plain(tokens), atol=1e-4, rtol=1e-4)
    # the folded model's weights are what processed_weights(fold_ln=True) makes of the plain one
    p = plain.processed_weights(fold_ln=True)
    for name in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_in", "b_in", "W_U", "b_U"):
        torch.testing.assert_close(getattr(folded, name), getattr(p, name), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(folded.W_E, plain.W_E, atol=0, rtol=0)  # a tied W_U was untied
    for layer in range(folded.cfg.n_layers):
        # TransformerLens's LNPre / RMSPre: hook_normalized is the stream centred (LN) and
        # divided by hook_scale, with no weight
        x = cache[f"blocks.{layer}.hook_resid_pre"]
        x = x - x.mean(-1, keepdim=True) if family in LN else x
        torch.testing.assert_close(
            cache[f"blocks.{layer}.ln1.hook_normalized"],
            x / cache[f"blocks.{layer}.ln1.hook_scale"],
            atol=1e-5,
            rtol=1e-4,
        )
        norm = folded.hf_model.get_submodule(folded.spec.blocks)[layer].get_submodule(
            folded.spec.ln1
        )
        assert torch.all(norm.weight + folded.spec.norm_weight_offset == 1)


def test_center_unembed_at_load(saved, tokens):
    plain = _load(saved("llama"))
    centred = _load(saved("llama"), fold_ln=True, center_unembed=True)
    assert centred.cfg.processing == ("fold_ln", "center_unembed")
    with torch.no_grad():
        a, b = plain(tokens), centred(tokens)
    torch.testing.assert_close(b.log_softmax(-1), a.log_softmax(-1), atol=1e-4, rtol=1e-4)
    assert (b - a).abs().max() > 1e-2  # the logits themselves moved by a constant per position
    torch.testing.assert_close(centred.W_U.mean(-1), torch.zeros(centred.cfg.d_model), atol=1e-6,
                               rtol=0)  # fmt: skip
    p = plain.processed_weights(fold_ln=True, center_unembed=True)
    torch.testing.assert_close(centred.W_U, p.W_U, atol=1e-5, rtol=1e-4)


def test_what_cannot_be_processed_at_load_says_why(saved, tiny):
    with pytest.raises(hl.ArgumentError, match=r"(?s)fold_ln=True with hf_model=.*would change"):
        hl.HookedModel.from_pretrained("x", hf_model=tiny("llama").hf_model, fold_ln=True)
    with pytest.raises(hl.ArgumentError, match="soft-cap"):
        _load(saved("gemma2"), center_unembed=True)
    with pytest.raises(hl.ArgumentError, match=r"(?s)LayerNorm model \(gpt2\).*processed_weights"):
        _load(saved("gpt2"), center_writing_weights=True)
    with pytest.raises(hl.ArgumentError, match=r"(?s)value biases.*processed_weights"):
        _load(saved("gpt2"), fold_value_biases=True)  # GPT-2's fused qkv has a bias


@pytest.mark.parametrize(
    ("model_type", "why"),
    [
        ("bert", "post-LN"),  # a norm's output is the stream itself
        ("mixtral", r"no linear layer.*reads the output of\nblocks\.0\.ln2"),  # experts' tensors
        ("qwen2_moe", r"changed this qwen2_moe model.*of blocks\.\*\.ln2 also goes"),  # gathered
    ],
)
def test_fold_ln_refuses_what_it_cannot_fold(tmp_path, model_type, why):
    assert build(model_type, tmp_path) is None
    with pytest.raises(hl.ArgumentError, match=f"(?s){why}"):
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer(), fold_ln=True)


def test_transformer_lens_defaults_load_a_llama_model(saved, tokens):
    """TransformerLens's four load-time flags on an RMSNorm model without value biases: the two
    that change nothing there (as in TransformerLens) are accepted and not listed."""
    model = _load(saved("llama"), fold_ln=True, center_writing_weights=True, center_unembed=True,
                  fold_value_biases=True)  # fmt: skip
    assert model.cfg.processing == ("fold_ln", "center_unembed")
    with torch.no_grad():
        torch.testing.assert_close(
            model(tokens).log_softmax(-1), _load(saved("llama"))(tokens).log_softmax(-1),
            atol=1e-4, rtol=1e-4,
        )  # fmt: skip
