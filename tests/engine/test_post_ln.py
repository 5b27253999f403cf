"""Post-LN encoder blocks used as decoders (BERT, RoBERTa, ...): TransformerLens's BertBlock
points, the embedding's token types and norm, the LM head's transform before the unembedding,
partial forwards, and the refusals where a post-LN model cannot mean what is asked."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens._engine.partial import RecordedRun
from hooklens._engine.points import is_on_demand
from hooklens.architectures._registry import VOCAB, tiny_config

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def bert(registry):
    _, model = registry("bert")
    assert model is not None and model.spec.post_ln
    return model


def test_points_follow_transformer_lens_bert_block(bert):
    n = bert.cfg.n_layers
    with torch.no_grad():
        logits, cache = bert.run_with_cache(TOKENS)
    names = bert.hook_names()
    assert "hook_token_type_embed" in names and "hook_pos_embed" in names
    for layer in range(n):
        assert f"blocks.{layer}.hook_normalized_resid_post" in names
    # the stream entering block 0 is the norm of the three embeddings' sum
    norm = bert.hf_model.get_submodule(bert.spec.embed_sum_norm)
    embeds = cache["hook_embed"] + cache["hook_pos_embed"] + cache["hook_token_type_embed"]
    torch.testing.assert_close(norm(embeds), cache["blocks.0.hook_resid_pre"])
    # the block's output enters the next block, and the last one is the logit lens's input
    out = cache["blocks.0.hook_normalized_resid_post"]
    torch.testing.assert_close(out, cache["blocks.1.hook_resid_pre"])
    last = cache[f"blocks.{n - 1}.hook_normalized_resid_post"]
    with torch.no_grad():
        torch.testing.assert_close(bert.unembed_resid(last), logits)
    # ln_final is the LM head's LayerNorm: its output is the unembedding's input
    with torch.no_grad():
        direct = cache["ln_final.hook_normalized"] @ bert.W_U + bert.b_U
    torch.testing.assert_close(direct, logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_type", ["bert", "bart", "openai-gpt", "xlm", "gpt2"])
def test_hook_names_are_in_the_order_the_points_fire(registry, model_type):
    """A post-LN block's norms run after what they normalize (ln1 on resid_mid, ln2 on the
    block's sum): `hook_names()`, and so a cache's keys, list them there, as TransformerLens's
    BertBlock runs them (pre-LN GPT-2 for contrast)."""
    _, model = registry(model_type)
    names = [n for n in model.hook_names() if n.startswith("blocks.") and not is_on_demand(n)]
    fired: list[str] = []
    with (
        torch.no_grad(),
        model.hooks([(n, lambda x, hook: fired.append(hook.name)) for n in names]),
    ):
        model(TOKENS)
    assert fired == names


def test_stop_at_layer_returns_the_blocks_output(bert):
    """The stream after the last block is its ln2 output, the logit lens's input."""
    with torch.no_grad():
        _, cache = bert.run_with_cache(TOKENS)
        last = bert(TOKENS, stop_at_layer=bert.cfg.n_layers)
        first = bert(TOKENS, stop_at_layer=1)
    n = bert.cfg.n_layers
    torch.testing.assert_close(last, cache[f"blocks.{n - 1}.hook_normalized_resid_post"])
    torch.testing.assert_close(first, cache["blocks.1.hook_resid_pre"])


def test_hook_points_without_meaning_on_post_ln_raise(bert):
    with pytest.raises(hl.HookNameError, match="pre-norm"):
        hl.HookedModel(tiny_llama()).run_with_cache(
            TOKENS, names_filter="blocks.0.hook_normalized_resid_post"
        )
    with torch.no_grad():
        _, cache = bert.run_with_cache(TOKENS)
    with pytest.raises(hl.InputError, match="post-LN"):
        cache.decompose_resid()
    with pytest.raises(hl.InputError, match="post-LN"):
        cache.accumulated_resid(apply_ln=True)


def test_partial_forward_equals_a_patched_full_forward(bert):
    """Blocks from layer 1, positions 3.. on a noised stream: what the full forward with the
    same edit at blocks.1.hook_resid_pre gives."""
    tokens = TOKENS[:1]
    noise = torch.randn(1, 3, bert.cfg.d_model, generator=torch.Generator().manual_seed(5))

    def edit(x, hook):
        x[:, 3:] += noise
        return x

    with torch.no_grad(), bert.hooks():
        run = RecordedRun(bert, tokens)
        assert run.skips, run.why_not
        normed = run.run_blocks(run.resid_pre(1)[:, 3:] + noise, layer=1, pos0=3)
        partial = run.logits_from(normed)
    with torch.no_grad():
        full = bert.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_pre", edit)])
    torch.testing.assert_close(partial, full[:, 3:], atol=1e-4, rtol=1e-4)


def tiny_llama() -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(tiny_config("llama")).eval()


def test_an_encoder_that_is_not_a_decoder_is_refused():
    """BERT loaded with is_decoder=False attends to later positions: no causal LM."""
    from transformers import AutoModelForCausalLM

    config = tiny_config("bert")
    config.is_decoder = False
    hf = AutoModelForCausalLM.from_config(config).eval()
    with pytest.raises(hl.UnsupportedModelError, match="is_decoder=True"):
        hl.HookedModel(hf)
