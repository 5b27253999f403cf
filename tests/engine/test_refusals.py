"""Registry types hooklens refuses on purpose: the refusal says what the model does that its
points cannot describe, and why."""

from __future__ import annotations

import pytest

import hooklens as hl
from hooklens.architectures._registry import build

from .conftest import _tokenizer


@pytest.mark.parametrize(
    ("model_type", "says"),
    [
        # several streams, and blocks the template cannot take apart either
        ("qwen4_exp_text", ["4 parallel streams (hyper-connections, config hc_count=4)"]),
        ("deepseek_v4", ["4 parallel streams (hyper-connections, config hc_mult=4)"]),
        ("qwen4_exp", ["4 parallel streams (hyper-connections, config hc_count=4)"]),
        ("hrm_text", ["no list of 16 blocks", "model.L_module.layers.0: 6 times", "recurrent"]),
        (
            "dory",
            ["DoryL2Norm computes neither an RMSNorm nor a LayerNorm", "(model.layers.0: 2 times)"],
        ),
        ("cpmant", ["prepends 32 learned prompt tokens (config.prompt_length=32)"]),
        ("reformer", ["its layers are reversible", "no one d_model-wide stream"]),
        ("xlnet", ["two-stream attention", "no one d_model-wide stream"]),
        ("prophetnet", ["layers run 2 n-gram prediction streams", "config ngram=2"]),
        # several stacks of layers (a byte encoder and decoder around a patch transformer)
        ("blt", ["no num_hidden_layers", "several stacks", "global_config: 2"]),
        # layers that read a learned attention over earlier blocks' outputs
        ("inkling2_text", ["attention residuals, config n_layers_per_attn_res_block=6"]),
        ("inkling2_loop_text", ["attention residuals, config n_layers_per_attn_res_block"]),
    ],
)
def test_refusal_names_what_and_why(tmp_path, model_type, says):
    assert build(model_type, tmp_path) is None
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    for words in says:
        assert words in str(info.value)


def test_an_error_while_deriving_is_a_refusal_naming_it(tmp_path, monkeypatch):
    """An exception other than a refusal while the adapter is derived (a config attribute that
    raises, as a per-layer config's may) refuses the model, naming the exception."""
    import hooklens.architectures as architectures

    def broken(*args, **kwargs):
        raise AttributeError("'num_attention_heads' is a per-layer attribute")

    assert build("olmo2", tmp_path) is None
    monkeypatch.setattr(architectures, "derive", broken)
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    assert "deriving its adapter raised AttributeError: 'num_attention_heads'" in str(info.value)


def test_a_module_run_twice_in_one_forward_is_refused(tmp_path, monkeypatch):
    """A block that runs its parts twice per forward (a loop over the same modules, as looped
    models do) would fire their points twice, each keeping only its last activation: the check
    at load counts every point's firings and refuses, naming the points."""
    from transformers.models.olmo2 import modeling_olmo2

    layer = modeling_olmo2.Olmo2DecoderLayer
    once = layer.forward

    def twice(self, hidden_states, *args, **kwargs):
        return once(self, once(self, hidden_states, *args, **kwargs), *args, **kwargs)

    assert build("olmo2", tmp_path) is None
    hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())  # wrapped as it is
    monkeypatch.setattr(layer, "forward", twice)
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    message = str(info.value)
    assert "points fired more than once in one forward" in message
    assert "blocks.0.hook_resid_mid (2 times)" in message
