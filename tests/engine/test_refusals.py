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
        ("qwen4_exp_text", ["4 parallel streams (hyper-connections, config hc_count=4)"]),
        ("hy_v4", ["4 parallel streams (hyper-connections, config hc_mult=4)"]),
        ("deepseek_v4", ["4 parallel streams (hyper-connections, config hc_mult=4)"]),
        ("qwen4_exp", ["4 parallel streams (hyper-connections, config hc_count=4)"]),
        ("longcat_flash", ["no list of 4 blocks", "each hold 2 attention sublayers", "(mlp)"]),
        ("hrm_text", ["no list of 16 blocks", "model.L_module.layers.0: 6 times", "recurrent"]),
        ("dory", ["DoryL2Norm computes neither an RMSNorm nor a LayerNorm"]),
        ("cpmant", ["prepends 32 learned prompt tokens (config.prompt_length=32)"]),
        ("reformer", ["its layers are reversible", "no one d_model-wide stream"]),
        ("xlnet", ["two-stream attention", "no one d_model-wide stream"]),
        ("prophetnet", ["layers run 2 n-gram prediction streams", "config ngram=2"]),
        ("xlm", ["its layers are not modules", "attentions, layer_norm1, ffns, layer_norm2"]),
    ],
)
def test_refusal_names_what_and_why(tmp_path, model_type, says):
    assert build(model_type, tmp_path) is None
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    for words in says:
        assert words in str(info.value)


def test_mixture_of_attention_heads_is_kept_whole(tmp_path):
    """JetMoE's attention fills its query heads from routed experts, so a head index is a
    routing slot: the derivation keeps the module whole, as its layer's mixer, and says why (the
    model's blocks are kept whole for its MLP, whose experts sit where hooklens does not read
    them: `test_whole_blocks.py`)."""
    import transformers

    from hooklens.architectures._hybrid import hybrid_layers
    from hooklens.architectures._layer_checks import routed_queries
    from hooklens.architectures._names import ATTN, MLP

    assert build("jetmoe", tmp_path) is None
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    blocks = list(hf.model.layers)
    why = routed_queries(blocks[0].self_attention)
    assert why is not None and "JetMoeAttention is a mixture of attention heads" in why
    attn, layers = hybrid_layers(blocks, hf.config, ATTN, MLP, why)
    assert attn is None and layers is not None
    assert all(lay.kind == "mixer" and lay.opaque == why for lay in layers)
