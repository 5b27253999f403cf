"""Attention sinks (GPT-OSS, Flint, Granite SWA): each head's learned logit joins every row of
scores in the softmax and is dropped after it. `hook_pattern` holds the keys' shares, so a row
sums to 1 minus the sink's share, `hook_sink`; editing the pattern acts on z as it would with a
raw torch hook; sliding-window layers mask exactly as the model does."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import hooklens as hl
from hooklens.architectures._registry import VOCAB, _sharpen, tiny_config

from .conftest import assert_resid_pre_sweep_equals_each_patch

SINK_TYPES = ["gpt_oss", "flint", "granite_swa"]
WINDOW = 3


def _windowed(model_type: str) -> hl.HookedModel:
    """A tiny model whose sliding window (3) is shorter than the prompts, random sinks."""
    config = tiny_config(model_type)
    config.sliding_window = WINDOW
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    _sharpen(hf)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("sinks"):
                p.normal_(0, 1.5)
    return hl.HookedModel(hf)


@pytest.fixture(scope="module")
def windowed():
    made: dict[str, hl.HookedModel] = {}

    def get(model_type: str) -> hl.HookedModel:
        if model_type not in made:
            made[model_type] = _windowed(model_type)
        return made[model_type]

    return get


def _tokens(n: int = 8) -> torch.Tensor:
    return torch.randint(4, VOCAB, (2, n), generator=torch.Generator().manual_seed(5))


def _attn(model: hl.HookedModel, layer: int) -> torch.nn.Module:
    return model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.attn}")


@pytest.mark.parametrize("model_type", SINK_TYPES)
def test_sink_takes_the_rest_of_each_row(registry, model_type):
    """pattern.sum(-1) + sink = 1, the sink's share is sigmoid(sink logit - logsumexp(scores)),
    and the pattern is softmax(scores) scaled by the keys' share."""
    _, model = registry(model_type)
    assert model is not None and model.spec.sink_layers
    with torch.no_grad():
        _, cache = model.run_with_cache(_tokens())
    for layer in model.spec.sink_layers:
        b = f"blocks.{layer}.attn."
        pattern, sink = cache[b + "hook_pattern"], cache[b + "hook_sink"]
        scores = cache[b + "hook_attn_scores"]
        assert sink.shape == pattern.shape[:-1]
        assert cache["sink", layer] is sink  # TransformerLens's shorthand, as for "pattern"
        assert float(sink.max()) > 0.1  # the sink takes a real share here
        torch.testing.assert_close(pattern.sum(-1) + sink, torch.ones_like(sink))
        logits = _attn(model, layer).sinks.detach().float()[None, :, None]
        torch.testing.assert_close(sink, torch.sigmoid(logits - scores.logsumexp(-1)))
        torch.testing.assert_close(scores.softmax(-1) * (1 - sink[..., None]), pattern)


@pytest.mark.parametrize("model_type", SINK_TYPES)
def test_pattern_edits_equal_raw_hooks(registry, model_type):
    """Editing hook_pattern changes z as the same edit made on z at the output projection:
    halving one head's pattern halves its z; renormalizing every row to 1 (the sink taken away)
    divides z by the keys' share."""
    _, model = registry(model_type)
    assert model is not None
    layer, head, c = model.spec.sink_layers[0], 1, model.cfg
    tokens = _tokens()
    o_proj = model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.o_proj}")
    with torch.no_grad():
        base, cache = model.run_with_cache(tokens)
    # the keys' share of each row, (batch, q, heads): pattern.sum(-1), which is 1 - hook_sink
    # (1 - hook_sink itself loses float precision in rows the sink takes almost entirely)
    keys = cache[f"blocks.{layer}.attn.hook_pattern"].sum(-1).transpose(1, 2)

    def half(p, hook):
        p[:, head] *= 0.5

    def raw_half(mod, args):
        z = args[0].clone()
        z[..., head * c.d_head : (head + 1) * c.d_head] *= 0.5
        return (z,)

    def renormalize(p, hook):
        return p / p.sum(-1, keepdim=True)

    def raw_renormalize(mod, args):
        z = args[0].unflatten(-1, (c.n_heads, c.d_head)) / keys[..., None]
        return (z.flatten(-2),)

    # dividing by the keys' share (far below 1% in some rows) scales float rounding up with it
    for edit, raw, atol in ((half, raw_half, 1e-5), (renormalize, raw_renormalize, 1e-4)):
        with torch.no_grad():
            ours = model.run_with_hooks(
                tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", edit)]
            )
            handle = o_proj.register_forward_pre_hook(raw)
            try:
                want = model.hf_model(tokens, use_cache=False).logits
            finally:
                handle.remove()
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, want, atol=atol, rtol=1e-4)


def test_sink_is_read_only_and_only_where_there_is_one(registry, tiny):
    _, model = registry("gpt_oss")
    assert model is not None
    tokens, name = _tokens(4), "blocks.0.attn.hook_sink"

    def replace(x, hook):
        return x * 0

    def in_place(x, hook):
        x.zero_()

    for fn in (replace, in_place):
        with pytest.raises(hl.HookError, match="read-only") as info:
            model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])
        assert "blocks.0.attn.hook_pattern" in str(info.value)
    # reading it (and returning it unchanged) is fine
    with torch.no_grad():
        torch.testing.assert_close(
            model.run_with_hooks(tokens, fwd_hooks=[(name, lambda x, h: x)]), model(tokens)
        )
    mistral = tiny("mistral")
    assert name not in mistral.hook_names()
    with pytest.raises(hl.HookNameError, match="has no attention sink"):
        mistral.run_with_cache(tokens, names_filter=name)


@pytest.mark.parametrize("model_type", ["gpt_oss", "granite_swa"])
def test_sliding_window_with_sinks_masks_as_the_model(windowed, model_type):
    """With a window shorter than the prompt, the wrapped model (every point attached) gives
    the model's own logits; a sliding layer's pattern is zero outside the window and its sink
    still completes each row."""
    model = windowed(model_type)
    tokens = _tokens(9)
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-4)
    types = model.hf_model.config.layer_types
    assert "sliding_attention" in types and "full_attention" in types
    q, k = torch.arange(9)[:, None], torch.arange(9)[None, :]
    for layer, kind in enumerate(types):
        b = f"blocks.{layer}.attn."
        pattern = cache[b + "hook_pattern"]
        allowed = (k <= q) & ((q - k < WINDOW) if kind == "sliding_attention" else True)
        assert bool((pattern[..., ~allowed] == 0).all())
        assert bool((pattern[..., allowed] > 0).all())
        torch.testing.assert_close(pattern.sum(-1) + cache[b + "hook_sink"], torch.ones(2, 4, 9))


def test_sweep_with_sinks_and_a_window_equals_patching_each_cell(windowed):
    """Partial forwards (keys and values of the unpatched prefix, sliding-window layers, sinks)
    give what patching each cell in a full forward gives."""
    model = windowed("gpt_oss")
    clean, corrupted = _tokens(7)[:1], _tokens(7)[1:]

    def metric(logits):
        return logits[:, -1, 7] - logits[:, -1, 8]

    result = hl.patching.sweep(
        model, clean, corrupted, metric, "resid_pre", normalize=False, progress=False
    )
    assert_resid_pre_sweep_equals_each_patch(model, clean, corrupted, metric, result.values)


def test_gradients_through_the_sink(windowed):
    """With every point cached with gradients, the pattern's gradient is the loss's; the
    sink's share reaches nothing, so it has none."""
    model = windowed("granite_swa")
    tokens = _tokens(6)
    names = ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_sink", "blocks.0.attn.hook_z"]
    _, cache = model.run_with_cache(tokens, names_filter=names, incl_bwd=True, return_type="loss")
    assert "blocks.0.attn.hook_sink" in cache and "blocks.0.attn.hook_sink_grad" not in cache
    grad_z = cache["blocks.0.attn.hook_z_grad"]  # (batch, q, heads, d_head)
    _, values = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_v")
    rep = model.cfg.n_heads // model.cfg.n_kv_heads
    full_v = values["blocks.0.attn.hook_v"].repeat_interleave(rep, dim=2)
    # z = pattern @ v, so d loss / d pattern[b, h, q, k] = grad_z[b, q, h] . v[b, k, h]
    want = torch.einsum("bqhd,bkhd->bhqk", grad_z, full_v)
    torch.testing.assert_close(cache["blocks.0.attn.hook_pattern_grad"], want, atol=1e-5, rtol=1e-4)
