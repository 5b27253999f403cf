"""Bad input: a clear error, and nothing left behind."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens._engine.module_hooks import has_hooks


def _is_hooklens(fn: object) -> bool:
    fn = getattr(fn, "__func__", getattr(fn, "func", fn))
    return getattr(fn, "__module__", "").startswith("hooklens")


def _no_hooks_left(model: hl.HookedModel) -> bool:
    """No hook of hooklens's is left, torch's or its own (`module_hooks.py`). transformers keeps
    its own output-recording hooks on modules once `output_attentions`/`output_hidden_states`
    has been asked for."""
    hf = model.hf_model
    torch_hooks = any(
        _is_hooklens(fn)
        for m in hf.modules()
        for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
    )
    own_hooks = any(has_hooks(m) for m in hf.modules())
    fns = any(p.fns for p in model.hook_dict.values())
    switched = hf.config._attn_implementation == "hooklens"
    return not torch_hooks and not own_hooks and not fns and not switched


def test_unknown_hook_name_suggests(tiny, tokens):
    model = tiny("gpt2")
    with pytest.raises(hl.HookNameError, match=r"blocks\.0\.attn\.hook_pattern") as info:
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_patern", lambda x, h: None)])
    assert "Did you mean" in str(info.value)
    with pytest.raises(hl.HookNameError, match=r"blocks\.1\.hook_resid_pre"):
        model.run_with_cache(tokens, names_filter=["blocks.9.hook_resid_pre"])
    assert _no_hooks_left(model)


def test_missing_point_explains_why(tiny, tokens):
    neox = tiny("gpt_neox")
    with pytest.raises(hl.HookNameError, match="parallel residual") as info:
        neox.run_with_cache(tokens, names_filter="blocks.0.hook_resid_mid")
    assert "hook_resid_pre" in str(info.value)
    with pytest.raises(hl.HookNameError, match="rotat"):
        neox.run_with_cache(tokens, names_filter="hook_pos_embed")
    with pytest.raises(hl.HookNameError, match="learned absolute positions"):
        tiny("gpt2").run_with_cache(tokens, names_filter="blocks.0.attn.hook_rot_q")
    with pytest.raises(hl.HookNameError, match="not gated"):
        tiny("gpt2").run_with_cache(tokens, names_filter="blocks.0.mlp.hook_pre_linear")
    with pytest.raises(hl.HookNameError, match="ln1"):
        tiny("gptj").run_with_cache(tokens, names_filter="blocks.0.ln2.hook_normalized")


@pytest.mark.parametrize(
    ("ret", "match"),
    [
        (lambda x: x[:, :-1], r"shape \(2, 7, 4, 8\).*\(2, 8, 4, 8\)"),
        (lambda x: x.double(), "dtype torch.float64"),
        (lambda x: "oops", "returned a str"),
    ],
)
def test_hook_returning_wrong_thing(tiny, tokens, ret, match):
    model = tiny("llama")
    with pytest.raises(hl.HookError, match=r"blocks\.0\.attn\.hook_z") as info:
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", lambda x, h: ret(x))])
    assert info.value.hook_name == "blocks.0.attn.hook_z"
    import re

    assert re.search(match, str(info.value), re.S)
    assert _no_hooks_left(model)


def test_hook_that_raises_leaves_model_usable(tiny, tokens):
    model = tiny("mistral")
    with torch.no_grad():
        base = model(tokens)

    def boom(x, hook):
        raise ValueError("boom")

    hooks = [
        ("blocks.0.hook_resid_pre", lambda x, h: x * 0),
        ("blocks.0.attn.hook_pattern", lambda x, h: None),
        ("blocks.1.mlp.hook_post", boom),
    ]
    with pytest.raises(hl.HookError, match=r"blocks\.1\.mlp\.hook_post.*ValueError: boom") as info:
        model.run_with_hooks(tokens, fwd_hooks=hooks)
    assert isinstance(info.value.__cause__, ValueError)
    assert _no_hooks_left(model)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), base)
    # the same inside a hooks() context and run_with_cache
    with pytest.raises(hl.HookError), model.hooks(fwd_hooks=hooks):
        model.run_with_cache(tokens)
    assert _no_hooks_left(model)


def test_prompt_too_long_and_empty(tiny):
    model = tiny("gpt2")
    with pytest.raises(hl.InputError, match="longer than this model's context of 64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(hl.InputError, match="empty"):
        model(torch.ones(1, 0, dtype=torch.long))
    with pytest.raises(hl.InputError, match="empty"):
        model("")
    with pytest.raises(hl.InputError, match="integers in"):
        model(torch.tensor([[1, 500]]))


def test_names_filter_matching_nothing(tiny, tokens):
    model = tiny("qwen2")
    with pytest.raises(hl.HookNameError, match="matches no hook point"):
        model.run_with_cache(tokens, names_filter=lambda n: n.endswith("nothing"))
    with pytest.raises(hl.HookNameError, match="matches no hook point"):
        model.run_with_cache(tokens, names_filter=[])
    assert _no_hooks_left(model)


def test_unsupported_architecture(tmp_path):
    from transformers import XLNetConfig, XLNetLMHeadModel

    config = XLNetConfig(vocab_size=64, d_model=16, n_layer=1, n_head=2, d_inner=32)
    model = XLNetLMHeadModel(config)
    with pytest.raises(hl.UnsupportedModelError, match="XLNetLMHeadModel") as info:
        hl.HookedModel(model)
    assert "GPT2LMHeadModel" in str(info.value) and "architectures/README.md" in str(info.value)
    model.save_pretrained(tmp_path)
    with pytest.raises(hl.UnsupportedModelError, match="LlamaForCausalLM"):
        hl.HookedModel.from_pretrained(str(tmp_path))


def test_unsupported_config(tiny_dir):
    from transformers import OPTConfig, OPTForCausalLM

    cfg = OPTConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        do_layer_norm_before=False,
    )
    with pytest.raises(hl.UnsupportedModelError, match="post-LN"):
        hl.HookedModel(OPTForCausalLM(cfg))


def test_text_without_tokenizer(tiny):
    model = tiny("gpt2")
    bare = hl.HookedModel(model.hf_model, tokenizer=None)
    with pytest.raises(hl.InputError, match="tokenizer="):
        bare("hello world")
    with torch.no_grad():
        assert bare(torch.tensor([[1, 2, 3]])).shape == (1, 3, 128)


def test_remove_batch_dim_needs_batch_one(tiny, tokens):
    with pytest.raises(hl.InputError, match="batch of 1"):
        tiny("gpt2").run_with_cache(tokens, remove_batch_dim=True)
