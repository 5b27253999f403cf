"""Decoders of sequence-to-sequence families used as causal LMs: BART's post-LN layers (with
TransformerLens's BertBlock points and no final norm), the embedding's norm and scale where
each family puts them, and pre-LN decoders of the same modules (Pegasus, BigBird-Pegasus)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens._engine.partial import RecordedRun
from hooklens.architectures._registry import VOCAB, tiny_config
from hooklens.architectures._seq2seq import is_post_ln_decoder

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def bart(registry):
    _, model = registry("bart")
    assert model is not None and model.spec.post_ln and model.spec.final_norm is None
    return model


def _tiny(model_type: str, **changes: object) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    config = tiny_config(model_type)
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def test_bart_blocks_are_post_ln_with_no_final_norm(bart):
    """The embeddings' sum is normalized into block 0; each block's output is its ln2 output;
    the last one is the unembedding's input, and there is no ln_final to ask for."""
    n = bart.cfg.n_layers
    with torch.no_grad():
        logits, cache = bart.run_with_cache(TOKENS)
    names = bart.hook_names()
    assert not any(name.startswith("ln_final.") for name in names)
    norm = bart.hf_model.get_submodule(bart.spec.embed_sum_norm)
    with torch.no_grad():
        embeds = norm(cache["hook_embed"] + cache["hook_pos_embed"])
    torch.testing.assert_close(embeds, cache["blocks.0.hook_resid_pre"])
    for layer in range(n):
        b = f"blocks.{layer}."
        mid = cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"]
        torch.testing.assert_close(mid, cache[b + "hook_resid_mid"])
        post = cache[b + "ln1.hook_normalized"] + cache[b + "hook_mlp_out"]
        torch.testing.assert_close(post, cache[b + "hook_resid_post"])
    last = cache[f"blocks.{n - 1}.hook_normalized_resid_post"]
    torch.testing.assert_close(last @ bart.W_U + bart.b_U, logits, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(bart.unembed_resid(last), logits)
        torch.testing.assert_close(bart(TOKENS, stop_at_layer=n), last)
    with pytest.raises(hl.HookNameError, match="no final norm"):
        bart.run_with_cache(TOKENS, names_filter="ln_final.hook_normalized")
    with pytest.raises(hl.InputError, match="post-LN"):
        cache.accumulated_resid(apply_ln=True)


def test_bart_partial_forward_equals_a_patched_full_forward(bart):
    tokens = TOKENS[:1]
    noise = torch.randn(1, 3, bart.cfg.d_model, generator=torch.Generator().manual_seed(5))

    def edit(x, hook):
        x[:, 3:] += noise
        return x

    with torch.no_grad(), bart.hooks():
        run = RecordedRun(bart, tokens)
        assert run.skips, run.why_not
        normed = run.run_blocks(run.resid_pre(1)[:, 3:] + noise, layer=1, pos0=3)
        partial = run.logits_from(normed)
    with torch.no_grad():
        full = bart.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_pre", edit)])
    torch.testing.assert_close(partial, full[:, 3:], atol=1e-4, rtol=1e-4)


def test_marian_scales_the_embedding_outside_its_module():
    """Marian's decoder multiplies the token embedding by sqrt(d_model) itself: hook_embed and
    W_E include the factor (what enters the stream with the positions)."""
    model = hl.HookedModel(_tiny("marian", scale_embedding=True))
    decoder = model.hf_model.get_submodule(model.spec.embed_scale_at)
    assert decoder.embed_scale == pytest.approx(model.cfg.d_model**0.5)
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS, names_filter=["hook_embed"])
        raw = model.hf_model.get_submodule(model.spec.embed)(TOKENS)
    torch.testing.assert_close(cache["hook_embed"], raw * decoder.embed_scale)
    torch.testing.assert_close(cache["hook_embed"], model.W_E[TOKENS])


def test_blenderbot_small_normalizes_the_token_embedding_before_positions():
    """BlenderbotSmall normalizes the (scaled) token embedding, then adds positions: hook_embed
    is that norm's output (as BLOOM's), and no scale is applied after it."""
    model = hl.HookedModel(_tiny("blenderbot-small", scale_embedding=True))
    assert model.spec.embed_norm is not None and model.spec.embed_sum_norm is None
    assert model.spec.embed_scale_at is None
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(
        cache["hook_embed"] + cache["hook_pos_embed"], cache["blocks.0.hook_resid_pre"]
    )


@pytest.mark.parametrize("model_type", ["pegasus", "bigbird_pegasus", "mbart"])
def test_pre_ln_decoders_of_the_same_modules_keep_their_final_norm(registry, model_type):
    """Pegasus-style layers hold the same modules as BART's but normalize first: told apart by
    the order they run, they keep ln_final (BigBird-Pegasus's is `layernorm_embedding`)."""
    _, model = registry(model_type)
    assert model is not None
    assert not is_post_ln_decoder(model.hf_model) and not model.spec.post_ln
    assert "ln_final.hook_normalized" in model.hook_names()
    if model_type == "bigbird_pegasus":
        assert model.spec.final_norm.endswith("layernorm_embedding")


#: the causal LM of these flat encoder-decoder configs is the decoder, whose counts the config
#: holds apart from the encoder's (`num_hidden_layers`/`num_attention_heads` alias the encoder's)
ENCODER_DECODER = [
    "bart", "whisper", "marian", "pegasus", "mbart", "blenderbot", "blenderbot-small", "plbart",
    "mvp", "bigbird_pegasus",
]  # fmt: skip


@pytest.mark.parametrize("model_type", ENCODER_DECODER)
def test_a_decoder_unlike_its_encoder_is_read_as_the_decoder(model_type):
    """Distilled checkpoints keep fewer decoder layers than encoder layers (distilbart-cnn-12-6,
    distil-whisper): the decoder's counts (4 layers, 2 heads, against the encoder's 2 and 4)
    give the blocks and the heads, and the model wraps with its own logits."""
    hf = _tiny(
        model_type, encoder_layers=2, decoder_layers=4, encoder_attention_heads=4,
        decoder_attention_heads=2,
    )  # fmt: skip
    model = hl.HookedModel(hf)
    assert (model.cfg.n_layers, model.cfg.n_heads) == (4, 2)
    with torch.no_grad():
        ref = hf(TOKENS, use_cache=False).logits
        logits, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(logits, ref)
    assert cache["blocks.3.attn.hook_pattern"].shape == (2, 2, 6, 6)
