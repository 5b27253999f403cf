"""Public API: loading, tokens, hooks contexts, generate, dtypes, device_map, patching internals."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

from .conftest import FAMILIES, build_hf


def test_tokens_round_trip(tiny):
    model = tiny("llama")
    toks = model.to_tokens("the cat sat")
    assert toks.tolist() == [[1, *toks[0, 1:].tolist()]] and toks.shape == (1, 4)
    assert model.to_tokens("the cat sat", prepend_bos=False).shape == (1, 3)
    assert model.to_str_tokens("the cat sat") == ["<bos>", "the", "cat", "sat"]
    assert model.to_str_tokens(toks) == ["<bos>", "the", "cat", "sat"]
    assert model.to_string(toks[0, 1:]) == "the cat sat"
    batch = model.to_tokens(["the cat", "the cat sat on"])
    assert batch.shape == (2, 5) and batch[0, -1] == 0  # right-padded with <pad>
    with torch.no_grad():
        text_logits = model("the cat sat")
        torch.testing.assert_close(text_logits, model(toks))


def test_hooks_context_and_nesting(tiny, tokens):
    model = tiny("gpt2")
    seen: list[str] = []
    with torch.no_grad():
        base = model(tokens)
        with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, h: x * 0)]):
            zeroed = model(tokens)
            with model.hooks(
                fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, h: seen.append(h.name))]
            ):
                _, cache = model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_pre")
            # the cache sees the edited value (hooks run in registration order, cache last)
            assert cache["blocks.0.hook_resid_pre"].abs().max() == 0
        after = model(tokens)
    assert seen == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    assert (zeroed - base).abs().max() > 1e-3
    torch.testing.assert_close(after, base)
    assert model.hf_model.config._attn_implementation == "sdpa"


def test_hook_object_and_return_none(tiny, tokens):
    model = tiny("qwen3")
    layers = []

    def fn(x, hook):
        layers.append((hook.name, hook.layer()))
        x.mul_(1.0)  # in-place edits are allowed
        return None

    model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_q", fn), ("hook_embed", fn)])
    assert layers == [("hook_embed", None), ("blocks.1.attn.hook_q", 1)]


def test_residual_only_cache_keeps_attention_fused(tiny, tokens):
    model = tiny("llama")
    switched = []

    def spy(x, hook):
        switched.append(model.hf_model.config._attn_implementation)

    model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", spy)])
    assert switched == ["sdpa"]  # no attention internals asked for: HF's own sdpa path ran
    model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", spy)])
    assert switched[-1] == "hooklens"


def test_two_wrappers_of_one_model(tiny, tokens):
    model = tiny("gpt_neox")
    other = hl.HookedModel(model.hf_model, model.tokenizer)
    for m in (model, other):
        _, cache = m.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
        assert cache["blocks.0.attn.hook_pattern"].shape == (2, 4, 8, 8)


def test_from_pretrained_local_folder_dtype(tiny_dir, tokens):
    model = hl.HookedModel.from_pretrained(str(tiny_dir("llama")), dtype=torch.bfloat16)
    assert model.cfg.dtype == torch.bfloat16 and model.tokenizer is not None
    with torch.no_grad():
        ref = model.hf_model(tokens).logits
        torch.testing.assert_close(model(tokens), ref, atol=0, rtol=0)  # no hooks: HF's path
        logits, cache = model.run_with_cache(tokens)
        _assert_half_close(model, tokens, logits, ref)
    assert logits.dtype == torch.bfloat16
    assert cache["blocks.0.attn.hook_pattern"].dtype == torch.bfloat16
    torch.testing.assert_close(
        cache["blocks.0.attn.hook_pattern"].float().sum(-1), torch.ones(2, 4, 8), atol=2e-2, rtol=0
    )


def test_fp16_wrapped_model(tokens):
    hf = build_hf("gemma2").to(torch.float16)
    model = hl.HookedModel(hf)
    with torch.no_grad():
        ref = hf(tokens).logits
        logits, cache = model.run_with_cache(tokens)
        _assert_half_close(model, tokens, logits, ref)
    assert cache["blocks.1.attn.hook_pattern"].dtype == torch.float16


def _assert_half_close(model, tokens, logits, ref):
    """In half precision, explicit attention is as close to HF's fused path as HF's own
    float32 result is (we compute scores and softmax in float32)."""
    hf = model.hf_model
    dtype = next(hf.parameters()).dtype
    hf.float()
    try:
        full = hf(tokens).logits
    finally:
        hf.to(dtype)
    ours, theirs = (logits.float() - full).abs().max(), (ref.float() - full).abs().max()
    assert ours <= 2 * theirs + 1e-3, (ours, theirs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_points_are_what_the_model_goes_on_with(tokens, dtype):
    """In half precision a hooked point's activation (in the model's dtype) is what the
    attention goes on with: the pattern is the softmax of the scores hook_attn_scores shows,
    and z is made of the pattern hook_pattern shows (an in-place edit of either is honoured)."""
    model = hl.HookedModel(build_hf("llama").to(dtype))
    names = [f"blocks.0.attn.hook_{s}" for s in ("attn_scores", "pattern", "v", "z")]

    def silence_key_0(scores, hook):  # in place: query rows 1.. stop attending to key 0
        scores[:, :, 1:, 0] = torch.finfo(scores.dtype).min

    with torch.no_grad(), model.hooks([(names[0], silence_key_0)]):
        _, cache = model.run_with_cache(tokens, names_filter=names)
    scores, pattern, v, z = (cache[n] for n in names)
    assert scores.dtype == pattern.dtype == z.dtype == dtype
    torch.testing.assert_close(pattern, torch.softmax(scores.float(), -1).to(dtype))
    assert (pattern[:, :, 1:, 0] == 0).all()
    v = v.repeat_interleave(pattern.shape[1] // v.shape[2], dim=2)  # (batch, k, heads, d_head)
    expected = torch.einsum("bhqk,bkhd->bqhd", pattern.float(), v.float()).to(dtype)
    torch.testing.assert_close(z, expected)


def test_half_precision_model_with_a_float32_stream(tokens):
    """Mamba keeps its residual stream in float32 in a bfloat16 model (`residual_in_fp32`): it
    wraps (the load check's logit lens casts the stream to the head's dtype, as the model
    does), the cache holds the stream as the model keeps it, and the logits are HF's."""
    import transformers as tf

    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("mamba")).eval().to(torch.bfloat16)
    model = hl.HookedModel(hf)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        ref = hf(tokens).logits
        logits, cache = model.run_with_cache(tokens)
        lens = model.unembed_resid(cache[last])
    assert cache[last].dtype == torch.float32 and logits.dtype == ref.dtype
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(lens.float(), ref)


def test_half_precision_load_check_allows_the_models_own_spread():
    """Kolibri 1's tiny model in bfloat16 is this sensitive to rounding (HF's own eager and sdpa
    attention give logits several percent apart): the load check lets ours stray as far as
    the model's eager attention does from its default, so it wraps, and no further."""
    import transformers as tf

    from hooklens._engine.closeness import eager_spread, gap
    from hooklens._engine.verify import N_TOKENS
    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("kolibri1")).eval().to(torch.bfloat16)
    tokens = torch.randint(0, 128, (1, N_TOKENS), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(tokens).logits
    spread = eager_spread(hf, tokens, ref)
    assert spread > 2e-2 and hf.config._attn_implementation == "sdpa"  # restored
    model = hl.HookedModel(hf)
    with torch.no_grad():
        logits, _ = model.run_with_cache(tokens)
    assert gap(logits, ref) <= 2 * spread


def test_float32_load_check_allows_a_deep_models_own_spread():
    """Gemma 4's language model 32 layers deep (random weights, width 256) in float32: HF's own
    eager and sdpa attention give logits more than 1e-4 apart, and ours (every point attached:
    attention computed explicitly) as far again. The load check lets ours stray twice as far as
    the model's eager attention does, so it wraps; before, it refused with "off by 0.00019"."""
    import transformers as tf

    from hooklens._engine.closeness import eager_spread, gap
    from hooklens._engine.verify import N_TOKENS
    from hooklens.architectures._registry import tiny_config

    deep = {"num_hidden_layers": 32, "hidden_size": 256, "intermediate_size": 512,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
            "vocab_size": 512, "vocab_size_per_layer_input": 512}  # fmt: skip
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("gemma4_text", deep)).eval()
    tokens = torch.randint(0, 512, (1, N_TOKENS), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(tokens).logits
    spread = eager_spread(hf, tokens, ref)
    assert spread > 1e-4  # the model's own two attentions: beyond float32's tolerance
    model = hl.HookedModel(hf)
    with torch.no_grad():
        logits, _ = model.run_with_cache(tokens, names_filter=model.hook_names())
    assert 1e-4 < gap(logits, ref) <= 2 * spread
    torch.testing.assert_close(model(tokens), ref)  # no point attached: HF's own forward


def test_generate_with_hooks(tiny):
    model = tiny("llama")
    calls = []

    def count(x, hook):
        calls.append(x.shape[2])  # query positions of (batch, n_heads, q, k)

    out = model.generate(
        "the cat", max_new_tokens=3, stop_at_eos=False,
        fwd_hooks=[("blocks.0.attn.hook_pattern", count)],
    )  # fmt: skip
    assert isinstance(out, str) and out.startswith("the cat")
    assert calls[0] == 3 and calls[1:] == [1, 1]  # prompt, then one new position per step
    toks = model.to_tokens("the cat")
    ids = model.generate(toks, max_new_tokens=3, stop_at_eos=False)
    assert ids.shape == (1, 6)
    # a hook that forces a token changes what is generated
    forced = model.generate(
        toks, max_new_tokens=2, stop_at_eos=False,
        fwd_hooks=[("ln_final.hook_normalized", lambda x, h: torch.zeros_like(x))],
    )  # fmt: skip
    assert forced.shape == (1, 5)


def test_unembed_resid_is_logit_lens(tiny, tokens):
    model = tiny("gemma2")  # has a final soft-cap
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        lens = model.unembed_resid(cache.accumulated_resid())
    assert lens.shape == (3, 2, 8, 128)
    torch.testing.assert_close(lens[-1], logits)


@pytest.mark.parametrize("family", FAMILIES)
def test_partial_forward_calls_the_blocks_themselves(tiny, family):
    """The engine entry point for batched patching: start at block l on a given residual
    stream, reuse the recorded keys/values for the positions before the patch."""
    from hooklens._engine.partial import RecordedRun

    model = tiny(family)
    toks = torch.randint(4, 128, (1, 8), generator=torch.Generator().manual_seed(5))
    modules_before = list(model.hf_model.modules())
    with torch.no_grad():
        logits = model(toks)
        with model.owner.hold():
            run = RecordedRun(model, toks)
        assert run.skips, run.why_not
        torch.testing.assert_close(run.logits, logits, atol=1e-5, rtol=1e-4)
        # All positions from layer 1.
        out = run.logits_from(run.run_blocks(run.resid_pre(1), 1, 0))
        torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-4)
        # Positions 5..7 of a batch of 3 from layer 1, one of them changed.
        resid = run.resid_pre(1)[:, 5:].repeat(3, 1, 1)
        resid[1] += torch.randn(resid.shape[1:], generator=torch.Generator().manual_seed(0))
        out = run.logits_from(run.run_blocks(resid, 1, 5))
        last = run.logits_from(run.run_blocks(resid, 1, 5, last_only=True), [3, 7])
    torch.testing.assert_close(out[0], logits[0, 5:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[2], logits[0, 5:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last[:, 0], out[:, -1, [3, 7]], atol=1e-5, rtol=1e-4)
    assert (out[1] - logits[0, 5:]).abs().max() > 1e-3
    assert list(model.hf_model.modules()) == modules_before  # nothing swapped, ever


def test_device_map_with_offload(tiny_dir, tokens, tmp_path):
    pytest.importorskip("accelerate")
    path = str(tiny_dir("llama"))
    ref_model = hl.HookedModel.from_pretrained(path)
    model = hl.HookedModel.from_pretrained(
        path,
        device_map={"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                    "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"},
        offload_folder=str(tmp_path),
    )  # fmt: skip
    assert "disk" in set(model.hf_model.hf_device_map.values())
    # accelerate's device hooks are forwards in the modules' __dict__: hooklens's hooks go
    # around them while a call runs and leave them as they were
    forwards = {n: m.__dict__.get("forward") for n, m in model.hf_model.named_modules()}
    assert forwards["model.layers.1"] is not None
    with torch.no_grad():
        ref_logits, ref_cache = ref_model.run_with_cache(tokens)
        logits, cache = model.run_with_cache(tokens)
        edited = model.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.attn.hook_z", lambda x, h: x * 0)]
        )
        ref_edited = ref_model.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.attn.hook_z", lambda x, h: x * 0)]
        )
    torch.testing.assert_close(logits, ref_logits)
    assert list(cache) == list(ref_cache)
    torch.testing.assert_close(
        cache["blocks.1.attn.hook_pattern"], ref_cache["blocks.1.attn.hook_pattern"]
    )
    torch.testing.assert_close(edited, ref_edited)
    assert {n: m.__dict__.get("forward") for n, m in model.hf_model.named_modules()} == forwards


def test_cfg(tiny):
    c = tiny("phi3").cfg
    assert (
        c.n_layers,
        c.d_model,
        c.n_heads,
        c.n_kv_heads,
        c.d_head,
        c.d_mlp,
        c.d_vocab,
        c.n_ctx,
    ) == (
        2,
        32,
        4,
        2,
        8,
        64,
        128,
        64,
    )
    assert (
        c.gated_mlp and not c.parallel_residual and c.norm == "rmsnorm" and c.positional == "rotary"
    )
    g = tiny("gpt2").cfg
    assert g.positional == "learned" and g.normalization_type == "LN" and g.rotary_dim is None
    assert tiny("gptj").cfg.parallel_residual and tiny("gptj").cfg.rotary_dim == 4


def test_ids_of_any_integer_dtype_are_the_same_ids(tiny, tokens):
    """Ids are checked (and made long) where they come from, then moved: int32 and uint8 ids
    give the long ids' logits; ids outside the vocabulary raise before any forward."""
    model = tiny("llama")
    with torch.no_grad():
        want = model(tokens)
        for dtype in (torch.int32, torch.uint8):
            torch.testing.assert_close(model(tokens.to(dtype)), want, atol=0, rtol=0)
    with pytest.raises(hl.InputError, match=r"in \[0, 128\); got ids from \d+ to 128"):
        model(torch.cat([tokens, torch.full((2, 1), 128)], dim=1))


def test_ids_checked_once_are_checked_again_after_a_write(tiny, tokens):
    """The range check is skipped only for the same ids tensor unchanged since its last check:
    an in-place write (to it or to a view of it), or a model with a smaller vocabulary,
    checks again."""
    model = tiny("llama")
    ids = tokens.clone()
    with torch.no_grad():
        model(ids)  # checked, and remembered
        ids[0, 0] = 128  # out of range now
        with pytest.raises(hl.InputError, match=r"got ids from \d+ to 128"):
            model(ids)
        ids[0, 0] = 3
        model(ids)
        ids[:, :1].fill_(-1)  # through a view
        with pytest.raises(hl.InputError, match=r"got ids from -1 to \d+"):
            model(ids)
