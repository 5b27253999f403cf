"""Configuration variants the registry's tiny models do not cover, of families with one adapter
per variant (chosen by the configuration): Falcon's block layouts, GPTBigCode without multi-query
attention, Persimmon (and Fuyu's Persimmon language model) without q/k norms. Each must
reproduce the model with every point attached, pass the load-time check, and take edits at
resid_pre, z and pattern like raw torch hooks."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import hooklens as hl
from hooklens._engine.verify import verify
from hooklens.architectures._registry import VOCAB, _sharpen, tiny_config

from .test_registry import _check_edits

#: the explicit adapters of families whose attention does not fit the derived template
EXPLICIT = [
    "gpt_neo", "bloom", "falcon", "gpt_bigcode", "codegen", "mpt", "persimmon", "fuyu", "xglm",
    "gpt_neox_japanese", "ctrl", "modernbert-decoder",
]  # fmt: skip


@pytest.mark.parametrize("model_type", EXPLICIT)
def test_explicit_adapter_passes_the_load_time_check(registry, model_type):
    """Explicit adapters are not checked at load; these must pass the same check anyway
    (every point fires with its declared shape, the points compose into the model's
    computation, z is pattern @ v, the output projection's input is z)."""
    _, model = registry(model_type)
    assert model is not None and not model.spec.derived
    verify(model)


#: (model type, variant) -> (config changes, key/value heads)
VARIANTS = {
    ("falcon", "parallel_alibi"): ({"alibi": True}, 1),
    ("falcon", "sequential_rotary"): ({"parallel_attn": False}, 1),
    ("falcon", "sequential_alibi_mha"): (
        {"parallel_attn": False, "alibi": True, "multi_query": False},
        4,
    ),
    ("falcon", "new_architecture_two_norms"): (
        {"new_decoder_architecture": True, "num_kv_heads": 2},
        2,
    ),
    ("falcon", "new_architecture_one_norm"): (
        {"new_decoder_architecture": True, "num_kv_heads": 2, "num_ln_in_parallel_attn": 1},
        2,
    ),
    ("gpt_bigcode", "per_head"): ({"multi_query": False, "num_key_value_heads": 4}, 4),
    ("persimmon", "no_qk_norm"): ({"qk_layernorm": False}, 4),
    # Fuyu's language model is Persimmon's: its text config chooses the variant
    ("fuyu", "no_qk_norm"): ({"qk_layernorm": False}, 4),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v))
def test_configuration_variant(tmp_path, variant):
    from transformers import AutoModelForCausalLM

    config = tiny_config(variant[0])
    changes, kv_heads = VARIANTS[variant]
    text = config.get_text_config()  # the config itself, or a composite model's text part
    for key, value in changes.items():
        setattr(text, key, value)
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    _sharpen(hf)
    hf.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.NoTokenizerWarning)
        model = hl.HookedModel.from_pretrained(str(tmp_path))
    assert all(getattr(text, k) == v for k, v, _ in model.spec.config_requirements)
    assert model.spec.family == variant[0]
    verify(model)  # every claim of the adapter, against the model's own forward
    tokens = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.hf_model(tokens).logits
        logits, cache = model.run_with_cache(tokens)
    assert (logits - ref).abs().max() <= 1e-4
    assert cache["blocks.0.attn.hook_k"].shape[2] == model.cfg.n_kv_heads == kv_heads
    _check_edits(model, tokens, ref)


def test_bias_the_block_adds_after_attention(registry):
    """GPT-NeoX-Japanese's last attention returns `dense_bias` beside its output and the block
    adds it: hook_attn_out and b_O include it, and an edit of hook_attn_out is what enters
    the stream (equal to the same edit of the block's sum by a raw hook)."""
    from .conftest import randomize_biases

    _, wrapped = registry("gpt_neox_japanese")
    assert wrapped is not None and wrapped.spec.o_bias is not None
    hf = copy.deepcopy(wrapped.hf_model)
    randomize_biases(hf)
    model = hl.HookedModel(hf)
    last = model.cfg.n_layers - 1
    block = model.hf_model.get_submodule(model.spec.blocks)[last]
    bias = block.attention.dense_bias
    assert bias is not None and bias.abs().max() > 0
    assert block.attention.dense.bias is None  # only the block adds a bias
    tokens = torch.randint(4, VOCAB, (1, 6), generator=torch.Generator().manual_seed(1))
    b = f"blocks.{last}."
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        torch.testing.assert_close(model.weights.layer(last).b_O, bias)
        heads = torch.einsum("bphe,hed->bpd", cache[b + "attn.hook_z"], model.W_O[last])
        torch.testing.assert_close(cache[b + "hook_attn_out"], heads + bias)
        torch.testing.assert_close(
            cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"] + cache[b + "hook_mlp_out"],
            cache[b + "hook_resid_post"],
        )
        ours = model.run_with_hooks(tokens, fwd_hooks=[(b + "hook_attn_out", lambda x, h: x * 0)])
        handle = block.attention.register_forward_hook(lambda m, a, out: (-out[2], *out[1:]))
        try:
            want = model.hf_model(tokens).logits
        finally:
            handle.remove()
    torch.testing.assert_close(ours, want)


def test_falcon_forward_takes_both_releases_calls():
    """Up to transformers 5.24 Falcon's block passes the ALiBi bias (`alibi=`) and no mask where
    none is needed; from 5.25 the model adds the bias to the mask and passes no `alibi`. The
    adapter's forward gives the same output for both calls."""
    from transformers import AutoModelForCausalLM
    from transformers.models.falcon.modeling_falcon import build_alibi_tensor

    from hooklens.architectures.falcon import _forward

    config = tiny_config("falcon")
    config.alibi, config.new_decoder_architecture, config.multi_query = True, False, False
    torch.manual_seed(0)
    attn = AutoModelForCausalLM.from_config(config).eval().transformer.h[0].self_attention
    x = torch.randn(2, 5, config.hidden_size)
    alibi = build_alibi_tensor(torch.ones(2, 5, dtype=torch.long), attn.num_heads, x.dtype)
    causal = torch.full((5, 5), torch.finfo(x.dtype).min).triu(1)
    with torch.no_grad():
        old, _ = _forward(attn, x, attention_mask=None, alibi=alibi)
        mask = alibi.view(2, attn.num_heads, 1, 5) * attn.inv_norm_factor + causal
        new, _ = _forward(attn, x, attention_mask=mask)
        unbiased, _ = _forward(attn, x, attention_mask=causal.expand(2, 1, 5, 5))
    torch.testing.assert_close(new, old)
    assert (unbiased - old).abs().max() > 1e-3  # the bias acts
