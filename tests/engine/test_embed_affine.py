"""ZAYA shifts and scales the token embeddings by parameters of its model, outside any module,
before block 0: `(embedding + shift) * scale`. hook_embed holds the result (block 0's input), W_E
too, and an edit of hook_embed is what block 0 reads."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

TOKENS = torch.tensor([[5, 9, 17, 33, 40], [7, 7, 60, 3, 12]])


@pytest.fixture(scope="module")
def zaya():
    """A tiny ZAYA whose shift and scale are not the identity they start as."""
    import transformers as tf

    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("zaya")).eval()
    with torch.no_grad():
        hf.model.input_hidden_states_bias.normal_(0, 0.5)
        hf.model.input_hidden_states_scale.uniform_(0.5, 1.5)
    return hl.HookedModel(hf)


def test_hook_embed_is_the_shifted_and_scaled_embedding(zaya):
    hf = zaya.hf_model
    with torch.no_grad():
        logits, cache = zaya.run_with_cache(TOKENS)
        ref = hf(TOKENS, use_cache=False).logits
        raw = hf.model.embed_tokens(TOKENS)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    shift, scale = hf.model.input_hidden_states_bias, hf.model.input_hidden_states_scale
    want = (raw + shift) * scale
    torch.testing.assert_close(cache["hook_embed"], want)
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], want)
    with torch.no_grad():
        torch.testing.assert_close(zaya.W_E[TOKENS], want)


def test_edit_of_hook_embed_is_what_block_0_reads(zaya):
    """Zeroing hook_embed at position 2 gives the logits of zeroing block 0's input there."""
    hf = zaya.hf_model

    def zero_pos_2(x, hook):
        x = x.clone()
        x[:, 2] = 0
        return x

    def raw(module, args, kwargs):
        x = (args[0] if args else kwargs["hidden_states"]).clone()
        x[:, 2] = 0
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    with torch.no_grad():
        ours = zaya.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", zero_pos_2)])
        handle = hf.model.layers[0].register_forward_pre_hook(raw, with_kwargs=True)
        try:
            want = hf(TOKENS, use_cache=False).logits
        finally:
            handle.remove()
    torch.testing.assert_close(ours, want, atol=1e-4, rtol=1e-4)
