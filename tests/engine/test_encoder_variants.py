"""Encoder blocks used as decoders beyond BERT's own: rotary positions inside the
self-attention (RoFormer), and the refusals where such a model cannot mean what hooklens's
points say."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import hooklens as hl
from hooklens.architectures._registry import VOCAB, tiny_config
from hooklens.architectures._rotary_encoder import rotate_pairs

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def roformer(registry):
    _, model = registry("roformer")
    assert model is not None and model.spec.positional == "rotary"
    return model


def test_rotate_pairs_is_roformers_rotation():
    from transformers.models.roformer.modeling_roformer import RoFormerSelfAttention

    gen = torch.Generator().manual_seed(0)
    q, k, table = (torch.randn(2, 3, 5, 8, generator=gen) for _ in range(3))
    want_q, want_k = RoFormerSelfAttention.apply_rotary_position_embeddings(table, q, k)
    torch.testing.assert_close(rotate_pairs(q, table), want_q)
    torch.testing.assert_close(rotate_pairs(k, table), want_k)


def test_roformer_rotates_q_and_k_between_hook_q_and_hook_rot_q(roformer):
    with torch.no_grad():
        _, cache = roformer.run_with_cache(TOKENS)
    encoder = roformer.hf_model.get_submodule(roformer.spec.blocks.rpartition(".")[0])
    table = encoder.embed_positions(TOKENS.shape)  # (pos, d_head): sines, then cosines
    for layer in range(roformer.cfg.n_layers):
        q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
        # hook_q is the query projection's output on the block's input (post-LN: no norm first)
        w, b = roformer.W_Q[layer], roformer.b_Q[layer]
        x = cache[f"blocks.{layer}.hook_resid_pre"]
        torch.testing.assert_close(torch.einsum("bpd,hde->bphe", x, w) + b, q)
        rot_q = rotate_pairs(q.transpose(1, 2), table).transpose(1, 2)
        rot_k = rotate_pairs(k.transpose(1, 2), table).transpose(1, 2)
        torch.testing.assert_close(rot_q, cache[f"blocks.{layer}.attn.hook_rot_q"])
        torch.testing.assert_close(rot_k, cache[f"blocks.{layer}.attn.hook_rot_k"])
        # the rotation moves q at later positions
        assert (rot_q[:, 1:] - q[:, 1:]).abs().max() > 1e-2


def test_edit_of_hook_q_before_the_rotation_reaches_the_scores(roformer):
    """Zeroing a head's pre-rotary q makes its scores 0 (before the mask)."""

    def zero(q, hook):
        q[:, :, 1] = 0
        return q

    with torch.no_grad(), roformer.hooks(fwd_hooks=[("blocks.0.attn.hook_q", zero)]):
        _, cache = roformer.run_with_cache(TOKENS)
    scores = cache["blocks.0.attn.hook_attn_scores"][:, 1]
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    assert scores[:, causal].abs().max() == 0


def test_rotary_values_are_refused_saying_why():
    config = tiny_config("roformer")
    config.rotary_value = True
    hf = AutoModelForCausalLM.from_config(config).eval()
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel(hf)
    message = str(info.value)
    assert "rotates the values" in message and "rotary_value=False" in message


def test_block_sparse_attention_is_refused_saying_how_to_load_it():
    """BigBird's default attention is block-sparse: not causal, and swapped for full attention
    by the model itself at its first short forward (hooks on the old modules would go quiet)."""
    config = tiny_config("big_bird")
    config.attention_type = "block_sparse"
    hf = AutoModelForCausalLM.from_config(config).eval()
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel(hf)
    message = str(info.value)
    assert "block-sparse" in message and "attention_type='original_full'" in message


def test_bigbird_with_full_attention_serves_every_point(registry):
    _, model = registry("big_bird")
    assert model is not None and model.spec.post_ln
    with torch.no_grad():
        ref = model.hf_model(TOKENS, use_cache=False).logits
        logits, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(logits, ref)
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert pattern.triu(1).abs().max() == 0  # causal


def test_a_head_that_only_unembeds_has_no_final_norm(registry):
    """BertGeneration's LM head is the unembedding alone: the last post-LN block's output is
    its input, and there are no ln_final points."""
    _, model = registry("bert-generation")
    assert model is not None and model.spec.final_norm is None and model.spec.head is None
    assert not any(n.startswith("ln_final") for n in model.hook_names())
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
    last = cache[f"blocks.{model.cfg.n_layers - 1}.hook_normalized_resid_post"]
    torch.testing.assert_close(last @ model.W_U + model.b_U, logits, atol=1e-4, rtol=1e-4)


def test_roformer_generates_as_hf_with_rotary_points_hooked(roformer):
    """With a cache, later tokens are rotated by their own positions (the encoder's table
    starts at the cache's length): greedy generation with hook_rot_q hooked is HF's."""
    tokens = TOKENS[:1, :4]
    calls = []

    def keep(x, hook):
        calls.append(x.shape[1])
        return x

    with torch.no_grad():
        ref = roformer.hf_model.generate(tokens, max_new_tokens=4, do_sample=False, pad_token_id=0)
        with roformer.hooks(fwd_hooks=[("blocks.0.attn.hook_rot_q", keep)]):
            out = roformer.generate(tokens, max_new_tokens=4, do_sample=False, stop_at_eos=False)
    assert out.tolist() == ref.tolist()
    assert calls == [4, 1, 1, 1]  # one position per step after the prompt: the cache was used


def test_git_reads_its_text_blocks_and_a_copy_of_its_embedding(registry):
    """GIT holds a vision encoder with as many layers as its text decoder: the blocks are the
    text model's (a nested model with the vision config is another tower). Its embeddings add
    the positions into the word embedding's output in place, so hook_embed hands the model a
    copy and keeps the token embedding alone."""
    _, model = registry("git")
    assert model is not None
    assert model.spec.blocks == "git.encoder.layer"
    assert model.spec.edited_in_place == ("hook_embed",)
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(cache["hook_embed"], model.W_E[TOKENS], atol=0, rtol=0)
    torch.testing.assert_close(
        cache["hook_pos_embed"], model.W_pos[: TOKENS.shape[1]].expand(2, -1, -1), atol=0, rtol=0
    )
