"""Every family on a tiny random config: parity, completeness, shapes, patterns, edits."""

from __future__ import annotations

import pytest
import torch

from hooklens._engine.points import POINTS, POINTS_BY_SUFFIX, is_on_demand, split_name
from hooklens.architectures._norms import norm_eps as _norm_eps

from .conftest import FAMILIES

#: the output projection whose input is z, per family (test-side knowledge, for raw-hook edits)
O_PROJ = {
    "gpt2": "attn.c_proj",
    "gpt_neox": "attention.dense",
    "gpt_neox_seq": "attention.dense",
    "gptj": "attn.out_proj",
    "opt": "self_attn.out_proj",
}
ALL = [*FAMILIES, "gpt_neox_seq"]


def _o_proj(model, layer):
    block = model.hf_model.get_submodule(model.spec.blocks)[layer]
    return block.get_submodule(O_PROJ.get(model.cfg.family, "self_attn.o_proj"))


def _hf_eager(hf, tokens, **kwargs):
    """HF's own eager forward with attentions and hidden states, implementation restored."""
    before = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        return hf(tokens, output_attentions=True, output_hidden_states=True, **kwargs)
    finally:
        hf.set_attn_implementation(before)


def _dims(model, t: torch.Tensor, name: str) -> dict[str, int]:
    c = model.cfg
    return {
        "batch": t.shape[0], "pos": t.shape[1], "q": t.shape[1], "k": t.shape[1],
        "d_model": c.d_model, "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads,
        "d_head": c.d_head, "d_head_qk": c.d_head_qk, "d_mlp": c.d_mlp, "1": 1,
    }  # fmt: skip


@pytest.mark.parametrize("family", ALL)
def test_parity_and_completeness(tiny, tokens, family):
    model = tiny(family)
    hf = model.hf_model
    before = hf.config._attn_implementation
    with torch.no_grad():
        ref = hf(tokens).logits
        plain = model(tokens)
        logits, cache = model.run_with_cache(tokens)
    assert (plain - ref).abs().max() <= 1e-4
    assert (logits - ref).abs().max() <= 1e-4
    # every declared point fired, in hook_names order, with its declared shape (caching every
    # point leaves out the on-demand ones, which are cached when named)
    assert list(cache.keys()) == [n for n in model.hook_names() if not is_on_demand(n)]
    with torch.no_grad():
        on_demand_logits, extra = model.run_with_cache(tokens, names_filter=is_on_demand)
    assert (on_demand_logits - ref).abs().max() <= 1e-4
    cache = {**cache, **extra}
    dims = _dims(model, tokens, "")
    for name, value in cache.items():
        spec = POINTS_BY_SUFFIX[split_name(name)[1]]
        want = tuple(dims[s] for s in spec.shape)
        assert tuple(value.shape) == want, name
    # the implementation name is restored once nothing listens
    assert hf.config._attn_implementation == before
    # optional points follow the adapter's features, and only those are missing
    feats = model.spec.features(hf.config)
    for p in POINTS:
        name = p.suffix if p.scope != "block" else f"blocks.0.{p.suffix}"
        assert (name in cache) == (p.lacking(feats) is None), name


@pytest.mark.parametrize("family", ALL)
def test_values_match_hf(tiny, tokens, family):
    """Patterns equal HF eager's attentions; residual points equal HF hidden states;
    z = pattern @ v; softmax(scores) = pattern; at position 0 rotary is the identity."""
    model = tiny(family)
    hf = model.hf_model
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        out = _hf_eager(hf, tokens)
    c = model.cfg
    rep = c.n_heads // c.n_kv_heads
    for layer in range(c.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        torch.testing.assert_close(pattern, out.attentions[layer], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
        scores = cache[f"blocks.{layer}.attn.hook_attn_scores"]
        torch.testing.assert_close(scores.softmax(-1), pattern, atol=1e-5, rtol=1e-4)
        v = cache[f"blocks.{layer}.attn.hook_v"].repeat_interleave(rep, dim=2)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        torch.testing.assert_close(z, cache[f"blocks.{layer}.attn.hook_z"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            cache[f"blocks.{layer}.hook_resid_pre"], out.hidden_states[layer], atol=1e-5, rtol=1e-4
        )
        if c.positional == "rotary":
            for x in ("q", "k"):
                pre, rot = (
                    cache[f"blocks.{layer}.attn.hook_{x}"],
                    cache[f"blocks.{layer}.attn.hook_rot_{x}"],
                )
                torch.testing.assert_close(pre[:, 0], rot[:, 0], atol=1e-5, rtol=1e-4)
                assert not torch.allclose(pre[:, 1:], rot[:, 1:])
    torch.testing.assert_close(
        model.unembed_resid(cache[f"blocks.{c.n_layers - 1}.hook_resid_post"]), out.logits,
        atol=1e-4, rtol=1e-4,
    )  # fmt: skip
    # ln1.hook_scale is the divisor of the norm that reads resid_pre: std or RMS (+ eps).
    for layer in range(c.n_layers):
        x = cache[f"blocks.{layer}.hook_resid_pre"].double()
        ln1 = hf.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.ln1}")
        eps = _norm_eps(ln1)
        if c.norm == "layernorm":
            x = x - x.mean(-1, keepdim=True)
        expected = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt().float()
        torch.testing.assert_close(cache[f"blocks.{layer}.ln1.hook_scale"], expected)


@pytest.mark.parametrize("family", ALL)
def test_hook_order_is_execution_order(tiny, tokens, family):
    model = tiny(family)
    seen: list[str] = []
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: True, lambda x, h: seen.append(h.name))])
    assert seen == model.hook_names()


@pytest.mark.parametrize("family", ALL)
def test_edits_match_raw_torch_hooks(tiny, tokens, family):
    model = tiny(family)
    hf = model.hf_model
    c = model.cfg
    blocks = hf.get_submodule(model.spec.blocks)
    noise = torch.randn(
        tokens.shape[0], tokens.shape[1], c.d_model, generator=torch.Generator().manual_seed(3)
    )
    head = 1

    def raw_run(module, pre_hook):
        handle = module.register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            return hf(tokens).logits
        finally:
            handle.remove()

    with torch.no_grad():
        base = hf(tokens).logits
        # 1. resid_pre of block 1: add noise
        ours = model.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, h: x + noise)]
        )

        def raw_resid(mod, args, kwargs):
            if args:
                return (args[0] + noise, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + noise}

        raw = raw_run(blocks[1], raw_resid)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)

        # 2. z of block 0: zero one head
        def zero_head(x, hook):
            x[:, :, head] = 0

        ours = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", zero_head)])

        def raw_z(mod, args, kwargs):
            z = args[0].clone()
            z[..., head * c.d_head : (head + 1) * c.d_head] = 0
            return (z, *args[1:]), kwargs

        raw = raw_run(_o_proj(model, 0), raw_z)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)

        # 3. pattern of block 0: one head attends only to position 0, so its z is v[0]
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_v")
        v0 = cache["blocks.0.attn.hook_v"][:, 0, head // (c.n_heads // c.n_kv_heads)]

        def to_bos(p, hook):
            p[:, head] = 0
            p[:, head, :, 0] = 1

        ours = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", to_bos)])

        def raw_pattern(mod, args, kwargs):
            z = args[0].clone()
            z[..., head * c.d_head : (head + 1) * c.d_head] = v0[:, None, :]
            return (z, *args[1:]), kwargs

        raw = raw_run(_o_proj(model, 0), raw_pattern)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "phi3", "gemma3", "opt", "gpt_neox_seq"])
def test_every_point_edit_round_trips(tiny, tokens, family):
    """Returning a copy of the activation at any point leaves the logits unchanged, and
    replacing it by something else changes them (every edit reaches the model)."""
    model = tiny(family)
    with torch.no_grad():
        base = model(tokens)
        for name in model.hook_names():
            same = model.run_with_hooks(tokens, fwd_hooks=[(name, lambda x, h: x.clone())])
            torch.testing.assert_close(same, base, atol=1e-5, rtol=1e-4, msg=name)
            if (family, split_name(name)[1]) in _SCALE_INVARIANT:
                continue
            changed = model.run_with_hooks(tokens, fwd_hooks=[(name, _bend)])
            assert (changed - base).abs().max() > 1e-4, name


#: Gemma 3 normalizes q and k per head and attention's output after it, so rescaling ln1's
#: output (what an ln1.hook_scale edit does) provably changes nothing.
_SCALE_INVARIANT = {("gemma3", "ln1.hook_scale")}


def _bend(x, hook):
    """A non-affine-per-row edit (a norm would undo x * a + b)."""
    return x * 1.5 + 0.05 * torch.arange(x.shape[-1], dtype=x.dtype)


def test_gqa_shapes(tiny, tokens):
    model = tiny("llama")
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.startswith("blocks.0.attn"))
    assert cache["blocks.0.attn.hook_k"].shape[2] == 2
    assert cache["blocks.0.attn.hook_v"].shape[2] == 2
    assert cache["blocks.0.attn.hook_rot_k"].shape[2] == 2
    assert cache["blocks.0.attn.hook_q"].shape[2] == 4
    assert cache["blocks.0.attn.hook_pattern"].shape[1] == 4
    assert cache["blocks.0.attn.hook_z"].shape[2] == 4


@pytest.mark.parametrize("family", ["gpt2", "llama", "mistral"])
def test_padded_batch_matches_hf(tiny, tokens, family):
    """With an attention mask (left padding), patterns and logits equal HF eager's."""
    model = tiny(family)
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0  # the first sequence is left-padded by 3
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, attention_mask=mask)
        out = _hf_eager(model.hf_model, tokens, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(logits[real], out.logits[real], atol=1e-4, rtol=1e-4)
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        torch.testing.assert_close(pattern[1], out.attentions[layer][1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            pattern[0, :, 3:], out.attentions[layer][0, :, 3:], atol=1e-5, rtol=1e-4
        )
        assert pattern[0, :, 3:, :3].abs().max() < 1e-6  # padding is never attended to
