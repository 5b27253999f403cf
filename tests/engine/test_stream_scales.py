"""Granite scales the token embedding and what attention and the MLP add to the stream by config
factors applied outside any module (real checkpoints: embedding_multiplier 12,
residual_multiplier 0.22). hook_embed / hook_attn_out / hook_mlp_out include them, and edits
there act on what enters the stream."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import VOCAB, _sharpen

from .conftest import _tokenizer
from .test_registry import _check_edits

TOKENS = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def granite(tmp_path_factory):
    from transformers import AutoModelForCausalLM, GraniteConfig

    config = GraniteConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, embedding_multiplier=12.0,
        residual_multiplier=0.22, attention_multiplier=0.0078125, logits_scaling=8.0,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    _sharpen(hf)
    folder = tmp_path_factory.mktemp("granite")
    hf.save_pretrained(folder)
    return hl.HookedModel.from_pretrained(str(folder), tokenizer=_tokenizer())


def test_points_include_the_multipliers(granite):
    hf = granite.hf_model
    assert (granite.spec.embed_scale, granite.spec.output_scale) == (
        "embedding_multiplier",
        "residual_multiplier",
    )
    seen = {}

    def keep(key):
        def hook(module, args, out):
            seen[key] = out[0] if isinstance(out, tuple) else out

        return hook

    handles = [
        hf.model.embed_tokens.register_forward_hook(keep("e")),
        hf.model.layers[0].self_attn.register_forward_hook(keep("a")),
    ]
    try:
        with torch.no_grad():
            ref = hf(TOKENS).logits
            logits, cache = granite.run_with_cache(TOKENS)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(cache["hook_embed"], seen["e"] * 12.0)
    torch.testing.assert_close(cache["blocks.0.hook_attn_out"], seen["a"] * 0.22)
    for layer in range(2):
        b = f"blocks.{layer}."
        torch.testing.assert_close(
            cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"] + cache[b + "hook_mlp_out"],
            cache[b + "hook_resid_post"],
        )


def test_edits_act_on_the_stream(granite):
    """Adding to hook_attn_out adds to the stream (not 0.22 times it), as a raw edit of the
    block's input after it would; and the shared edit checks (resid_pre, z, pattern) hold."""
    hf = granite.hf_model
    with torch.no_grad():
        base = hf(TOKENS).logits
        delta = torch.randn(2, 7, 64, generator=torch.Generator().manual_seed(4))
        ours = granite.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.0.hook_attn_out", lambda x, h: x + delta)]
        )
        mid = granite.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.0.hook_resid_mid", lambda x, h: x + delta)]
        )
    torch.testing.assert_close(ours, mid, atol=1e-4, rtol=1e-4)
    assert (ours - base).abs().max() > 1e-3
    _check_edits(granite, TOKENS, base)


def test_weights_give_what_enters_the_stream(granite):
    """W_O / b_O and W_out / b_out include residual_multiplier (copies, not views), so that
    z @ W_O + b_O is hook_attn_out and hook_post @ W_out + b_out is hook_mlp_out, and the
    per-head and per-neuron decompositions sum to what the block adds."""
    with torch.no_grad():
        _, cache = granite.run_with_cache(TOKENS)
    for layer in range(2):
        b, attn = f"blocks.{layer}.", granite.blocks[layer].attn
        mlp = granite.weights.layer(layer)
        attn_out = torch.einsum("bphd,hdm->bpm", cache[b + "attn.hook_z"], attn.W_O) + attn.b_O
        torch.testing.assert_close(attn_out, cache[b + "hook_attn_out"], atol=1e-5, rtol=1e-4)
        mlp_out = cache[b + "mlp.hook_post"] @ mlp.W_out + mlp.b_out
        torch.testing.assert_close(mlp_out, cache[b + "hook_mlp_out"], atol=1e-5, rtol=1e-4)
    heads = cache.stack_head_results(layer=2, pos_slice=None)
    torch.testing.assert_close(
        heads.sum(0),
        sum(cache[f"blocks.{i}.hook_attn_out"] - granite.blocks[i].attn.b_O for i in range(2)),
        atol=1e-4, rtol=1e-4,
    )  # fmt: skip


def test_head_results_sum_to_what_attention_adds(granite):
    """hook_result (computed on demand) includes residual_multiplier like W_O: the heads' results
    plus b_O are hook_attn_out, the logits do not change, and an edit of one head's result
    reaches the stream as it is (not 0.22 times it)."""
    granite.set_use_attn_result(True)
    try:
        with torch.no_grad():
            base = granite(TOKENS)
            logits, cache = granite.run_with_cache(TOKENS)
            delta = torch.randn(2, 7, 64, generator=torch.Generator().manual_seed(5))

            def add_to_head(x, hook):
                x[:, :, 1] += delta
                return x

            edited = granite.run_with_hooks(
                TOKENS, fwd_hooks=[("blocks.0.attn.hook_result", add_to_head)]
            )
            via_stream = granite.run_with_hooks(
                TOKENS, fwd_hooks=[("blocks.0.hook_attn_out", lambda x, h: x + delta)]
            )
    finally:
        granite.set_use_attn_result(False)
    torch.testing.assert_close(logits, base, atol=1e-4, rtol=1e-4)
    for layer in range(2):
        b = f"blocks.{layer}."
        heads = cache[b + "attn.hook_result"].sum(-2) + granite.blocks[layer].attn.b_O
        torch.testing.assert_close(heads, cache[b + "hook_attn_out"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(edited, via_stream, atol=1e-4, rtol=1e-4)
    assert (edited - base).abs().max() > 1e-3
