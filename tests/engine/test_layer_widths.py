"""Layers whose heads differ in width or in key/value heads (Gemma 4: its global layers' heads are
wider than its sliding ones', and may have fewer key/value heads): every point, per-head site and
weight uses the layer's own widths (`cfg.layer(l)`), and stacking weights of different widths
raises, pointing at one layer's."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens._engine.points import split_name
from hooklens._engine.verify import declared_shape
from hooklens.architectures._registry import _sharpen

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "Gemma4TextConfig"):
    pytest.skip("this transformers has no Gemma 4", allow_module_level=True)

LAYERS = ["sliding_attention", "full_attention", "full_attention"]


def _gemma4(**overrides) -> hl.HookedModel:
    """A tiny Gemma 4 text model: sliding layers with 2 key/value heads of width 16, global
    layers with one key/value head of width 32 (keys and values share its projection)."""
    config = transformers.Gemma4TextConfig(
        **{
            "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "global_head_dim": 32, "num_global_key_value_heads": 1,
            "attention_k_eq_v": True, "hidden_size_per_layer_input": 0, "layer_types": LAYERS,
            "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1,
            "eos_token_id": 2, **overrides,
        }
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).eval()
    _sharpen(hf)
    return hl.HookedModel(hf)


@pytest.fixture(scope="module")
def model() -> hl.HookedModel:
    return _gemma4()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(3, 128, (2, 7), generator=torch.Generator().manual_seed(1))


def test_layer_widths_in_config(model):
    c = model.cfg
    assert (c.d_head, c.n_kv_heads) == (16, 2)  # the first layer's, TransformerLens's one d_head
    assert [(c.layer(i).d_head, c.layer(i).n_kv_heads) for i in range(3)] == [
        (16, 2),
        (32, 1),
        (32, 1),
    ]
    assert c.layer(1).layer(1) == c.layer(1)  # a layer's config is uniform


def test_points_have_their_layers_shapes(model, tokens):
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(tokens, names_filter=model.hook_names())
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    for name, value in cache.items():
        layer = split_name(name)[0]
        c = model.cfg if layer is None else model.cfg.layer(layer)
        want = (2, *declared_shape(c, name, tokens.shape[1])[1:])
        assert tuple(value.shape) == want, name
    assert cache["blocks.1.attn.hook_z"].shape == (2, 7, 4, 32)
    assert cache["blocks.1.attn.hook_v"].shape == (2, 7, 1, 32)
    # per-head results sum to what attention adds (through the post-attention norm)
    for layer in range(3):
        block = model.hf_model.model.layers[layer]
        total = cache[f"blocks.{layer}.attn.hook_result"].sum(-2)
        torch.testing.assert_close(
            block.post_attention_layernorm(total), cache[f"blocks.{layer}.hook_attn_out"]
        )


def test_weights_per_layer_reproduce_the_projections(model, tokens):
    assert model.blocks[0].attn.W_V.shape == (4, 64, 16)
    with pytest.raises(ValueError, match=r"has no self_attn\.v_proj"):
        _ = model.blocks[1].attn.W_Q  # values reuse the keys' projection on global layers
    model = _gemma4(attention_k_eq_v=False)  # global layers: 2 key/value heads of width 32
    seen: dict[str, torch.Tensor] = {}
    attn = model.hf_model.model.layers[1].self_attn
    handles = [
        attn.q_proj.register_forward_hook(lambda m, a, out: seen.update(q=out)),
        attn.k_proj.register_forward_hook(lambda m, a, out: seen.update(k=out)),
    ]
    try:
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
    finally:
        for handle in handles:
            handle.remove()
    x = cache["blocks.1.ln1.hook_normalized"]
    w = model.blocks[1].attn
    assert w.W_Q.shape == (4, 64, 32) and w._W_K.shape == (2, 64, 32)
    assert w.W_K.shape == (4, 64, 32)  # expanded to every query head, as TransformerLens does
    q = torch.einsum("bpd,hde->bphe", x, w.W_Q).flatten(-2)
    k = torch.einsum("bpd,hde->bphe", x, w._W_K).flatten(-2)
    torch.testing.assert_close(q, seen["q"])
    torch.testing.assert_close(k, seen["k"])
    out = torch.einsum("bphe,hed->bpd", cache["blocks.1.attn.hook_z"], w.W_O)
    block = model.hf_model.model.layers[1]
    torch.testing.assert_close(block.post_attention_layernorm(out), cache["blocks.1.hook_attn_out"])
    ov = model.blocks[1].attn.OV  # one layer's, though model.OV cannot stack the layers
    assert ov.AB.shape == (4, 64, 64)
    torch.testing.assert_close(ov.AB, w.W_V @ w.W_O)
    torch.testing.assert_close(model.blocks[1].attn.QK.AB, w.W_Q @ w.W_K.transpose(-2, -1))


def test_stacked_weights_of_different_widths_raise(model):
    widths = r"(?s)layer 0: n_kv_heads 2, d_head 16.*layers 1, 2: n_kv_heads 1, d_head 32"
    with pytest.raises(ValueError, match=widths + r".*model\.blocks\[l\]\.attn\.W_O"):
        _ = model.W_O
    assert model.W_in.shape == (3, 64, 128)  # the MLPs are alike: they stack


def test_edits_of_wide_heads_equal_torch_hooks(model, tokens):
    """Zeroing head 2 of the wide layer at hook_z equals zeroing it in o_proj's input."""

    def zero(z, hook):
        z[:, :, 2] = 0

    def raw(mod, args):
        z = args[0].view(*args[0].shape[:-1], 4, 32).clone()
        z[:, :, 2] = 0
        return (z.flatten(-2),)

    with torch.no_grad():
        got = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero)])
        handle = model.hf_model.model.layers[1].self_attn.o_proj.register_forward_pre_hook(raw)
        try:
            want = model.hf_model(tokens, use_cache=False).logits
        finally:
            handle.remove()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_head_inputs_on_layers_with_their_own_projections(model, tokens):
    """hook_q_input etc. on the sliding layer (its own k and v projections); the global layers,
    whose values reuse the keys' projection, have hook_result but no per-head inputs."""
    names = model.hook_names()
    assert "blocks.0.hook_k_input" in names and "blocks.1.attn.hook_result" in names
    assert "blocks.1.hook_k_input" not in names
    with torch.no_grad():
        ref = model(tokens)
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: "input" in n)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    assert cache["blocks.0.hook_k_input"].shape == (2, 7, 2, 64)


def _ple(**overrides) -> hl.HookedModel:
    """A tiny Gemma 4 with per-layer embeddings (its own k/v projections on every layer)."""
    return _gemma4(
        attention_k_eq_v=False,
        hidden_size_per_layer_input=8,
        vocab_size_per_layer_input=128,
        **overrides,
    )


def test_per_layer_embeddings_are_what_the_block_adds_last(tokens):
    model = _ple()
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    for layer in range(3):
        b = f"blocks.{layer}."
        parts = ("hook_attn_out", "hook_mlp_out", "hook_per_layer_out")
        total = cache[b + "hook_resid_pre"] + sum(cache[b + p] for p in parts)
        torch.testing.assert_close(total, cache[b + "hook_resid_post"], atol=1e-4, rtol=1e-4)
        assert cache[b + "hook_per_layer_out"].abs().max() > 0
    stack, labels = cache.decompose_resid(layer=-1, return_labels=True)
    assert labels[-3:] == ["2_attn_out", "2_mlp_out", "2_per_layer_out"]
    torch.testing.assert_close(stack.sum(0), cache["blocks.2.hook_resid_post"], atol=1e-4, rtol=0)

    def zero(x, hook):
        return torch.zeros_like(x)

    def raw(mod, args, out):
        return torch.zeros_like(out)

    with torch.no_grad():
        got = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_per_layer_out", zero)])
        norm = model.hf_model.model.layers[1].post_per_layer_input_norm
        handle = norm.register_forward_hook(raw)
        try:
            want = model.hf_model(tokens, use_cache=False).logits
        finally:
            handle.remove()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - ref).abs().max() > 1e-3


def test_per_layer_input_makes_patching_run_full_passes(tokens):
    from hooklens._engine.partial import RecordedRun

    model = _ple()
    with model.hooks():
        run = RecordedRun(model, tokens)
    assert not run.skips and "per_layer_input" in run.why_not


def test_no_per_layer_out_without_the_branch(model, tokens):
    with pytest.raises(hl.HookNameError, match="no per-layer embedding branch"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_per_layer_out", lambda x, hook: x)])


def test_a_stream_scaled_after_the_block_has_its_points_but_no_sums(tokens):
    """Published Gemma 4 checkpoints multiply the whole stream by `layer_scalar` after each
    block adds its parts: every point is as the model computes it, resid_post is the sum times
    the scalar, and sums of parts raise, saying so."""
    torch.manual_seed(0)
    hf = _ple().hf_model
    with torch.no_grad():
        for scale, block in zip((0.5, 0.25, 2.0), hf.model.layers, strict=True):
            block.layer_scalar.fill_(scale)
        ref = hf(tokens, use_cache=False).logits
    model = hl.HookedModel(hf)
    assert "layer_scalar (0.5, 0.25, 2)" in (model.spec.unsummed or "")
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    for layer, scale in enumerate((0.5, 0.25, 2.0)):
        b = f"blocks.{layer}."
        parts = ("hook_attn_out", "hook_mlp_out", "hook_per_layer_out")
        total = cache[b + "hook_resid_pre"] + sum(cache[b + p] for p in parts)
        torch.testing.assert_close(total * scale, cache[b + "hook_resid_post"], atol=1e-4, rtol=0)
    with pytest.raises(hl.InputError, match="layer_scalar"):
        cache.decompose_resid()
