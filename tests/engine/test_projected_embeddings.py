"""Embeddings projected to the stream before block 0 (RemBERT, also where its embeddings are as
wide as the stream; ELECTRA's generators, whose `embedding_size` is smaller than
`hidden_size`): `hook_embed` is the projection's output, and the weights no matrix describes
raise, saying why."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import hooklens as hl
from hooklens.architectures._registry import VOCAB, tiny_config

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(5))
REMBERT_PROJ = "rembert.encoder.embedding_hidden_mapping_in"
#: (id, type, config key of the embeddings' width, that width, the projection, the LM head's
#: width); RemBERT projects its embeddings even when they are as wide as the stream (64)
CASES = [
    ("rembert", "rembert", "input_embedding_size", 256, REMBERT_PROJ, 1664),
    ("rembert-as-wide", "rembert", "input_embedding_size", 64, REMBERT_PROJ, 1664),
    ("electra", "electra", "embedding_size", 32, "electra.embeddings_project", 32),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def projected(request):
    _, model_type, key, width, proj, head_width = request.param
    config = tiny_config(model_type)
    setattr(config, key, width)
    hf = AutoModelForCausalLM.from_config(config).eval()
    return hl.HookedModel(hf), proj, head_width


def _side_by_side(model, proj):
    """HF's logits, the model's logits and cache, and {"out": `proj`'s output} as it left the
    module (a copy: a model may add to it in place afterwards, RoCBert's positions)."""
    seen = {}
    hook = model.hf_model.get_submodule(proj).register_forward_hook(
        lambda m, a, out: seen.update(out=out.clone())
    )
    try:
        with torch.no_grad():
            ref = model.hf_model(TOKENS, use_cache=False).logits
            logits, cache = model.run_with_cache(TOKENS)
    finally:
        hook.remove()
    return ref, logits, cache, seen


def test_hook_embed_is_the_projection_output_entering_block_0(projected):
    model, proj, _ = projected
    assert model.spec.embed_proj == proj
    ref, logits, cache, seen = _side_by_side(model, proj)
    torch.testing.assert_close(logits, ref)
    assert cache["hook_embed"].shape == (*TOKENS.shape, model.cfg.d_model)
    torch.testing.assert_close(cache["hook_embed"], seen["out"])
    torch.testing.assert_close(cache["hook_embed"], cache["blocks.0.hook_resid_pre"])
    # positions and token types are added before the projection, at the embeddings' width
    names = model.hook_names()
    assert "hook_pos_embed" not in names and "hook_token_type_embed" not in names
    with pytest.raises(hl.HookNameError, match="before their projection"):
        model.run_with_cache(TOKENS, names_filter=["hook_pos_embed"])


def test_an_edit_of_hook_embed_equals_one_of_the_projection_output(projected):
    model, proj, _ = projected
    hf = model.hf_model
    gen = torch.Generator().manual_seed(6)
    noise = torch.randn(*TOKENS.shape, model.cfg.d_model, generator=gen)
    handle = hf.get_submodule(proj).register_forward_hook(lambda m, a, out: out + noise)
    try:
        with torch.no_grad():
            want = hf(TOKENS, use_cache=False).logits
    finally:
        handle.remove()
    with torch.no_grad():
        ours = model.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", lambda x, hook: x + noise)])
        base = model(TOKENS)
    assert (ours - base).abs().max() > 1e-3
    torch.testing.assert_close(ours, want)


def test_weights_no_matrix_describes_raise_saying_why(projected):
    model, proj, head_width = projected
    for name in ("W_E", "W_pos"):
        with pytest.raises(AttributeError) as info:
            getattr(model, name)
        assert f"its hook_embed is {proj}'s output" in str(info.value)
        assert "LayerNorm" in str(info.value)
        table = "word_embeddings" if name == "W_E" else "position_embeddings"
        assert f"embeddings.{table}').weight" in str(info.value)  # where the narrower table is
    with pytest.raises(AttributeError, match=f"(?s)LM head.* \\(width {head_width}\\)"):
        _ = model.W_U
    assert model.W_Q.shape[-2] == model.cfg.d_model  # the blocks' weights are as usual


def test_the_head_maps_the_stream_to_its_own_width_so_no_ln_final(projected):
    """The LM head's norm works at the unembedding's width, not d_model: no ln_final points;
    unembed_resid applies the whole head, so the logit lens of the last block is the logits."""
    model, _, _ = projected
    assert model.spec.final_norm is None and model.spec.head is not None
    assert not any(n.startswith("ln_final") for n in model.hook_names())
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
    last = cache[f"blocks.{model.cfg.n_layers - 1}.hook_normalized_resid_post"]
    torch.testing.assert_close(model.unembed_resid(last), logits)


def test_embeddings_of_another_width_without_a_known_projection_are_refused():
    config = tiny_config("rembert")
    config.input_embedding_size = 32
    hf = AutoModelForCausalLM.from_config(config).eval()
    hf.rembert.encoder.embedding_hidden_mapping_in = torch.nn.Identity()  # not a projection
    with pytest.raises(hl.UnsupportedModelError, match="no projection between them"):
        hl.HookedModel(hf)


def test_token_embeddings_mixed_before_positions_roc_bert():
    """RoCBert concatenates the token embedding with its glyph-shape and pronunciation
    embeddings and projects them to the stream's width, then adds positions and token types and
    normalizes: `hook_embed` is the projection's output, positions have their point, `W_pos`
    is the position table and `W_E` raises, saying why."""
    hf = AutoModelForCausalLM.from_config(tiny_config("roc_bert")).eval()
    model = hl.HookedModel(hf)
    proj = "roc_bert.embeddings.map_inputs_layer"
    assert model.spec.embed_proj == proj and model.spec.pos_embed is not None
    ref, logits, cache, seen = _side_by_side(model, proj)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(cache["hook_embed"], seen["out"])
    embeddings = hf.roc_bert.embeddings
    with torch.no_grad():
        summed = embeddings.LayerNorm(
            cache["hook_embed"] + cache["hook_pos_embed"] + cache["hook_token_type_embed"]
        )
    torch.testing.assert_close(summed, cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(
        model.W_pos, embeddings.position_embeddings.weight[: model.cfg.n_ctx]
    )
    with pytest.raises(AttributeError, match="map_inputs_layer"):
        _ = model.W_E
