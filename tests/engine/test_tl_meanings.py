"""TransformerLens's meanings where hooklens used to differ silently (one regression test each)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_negative_layers_everywhere(run, family):
    model, _, cache = run(family)
    n = model.cfg.n_layers
    full, labels = cache.decompose_resid(return_labels=True)
    neg, neg_labels = cache.decompose_resid(layer=-1, return_labels=True)
    assert neg_labels == labels and neg_labels[-1] == f"{n - 1}_mlp_out"  # not just the embed
    torch.testing.assert_close(neg, full)
    torch.testing.assert_close(cache.decompose_resid(layer=n), full)
    # -2 is the stream entering the last block, as in Python over the n + 1 streams
    torch.testing.assert_close(cache.decompose_resid(layer=-2), cache.decompose_resid(layer=n - 1))
    torch.testing.assert_close(cache.accumulated_resid(layer=-1), cache.accumulated_resid())
    torch.testing.assert_close(
        cache.accumulated_resid(layer=-2), cache.accumulated_resid(layer=n - 1)
    )
    stack = cache.accumulated_resid()
    torch.testing.assert_close(
        cache.apply_ln_to_stack(stack, layer=-1), cache.apply_ln_to_stack(stack)
    )
    torch.testing.assert_close(
        cache.apply_ln_to_stack(stack, layer=-2), cache.apply_ln_to_stack(stack, layer=n - 1)
    )
    assert cache["resid_post", -1] is cache[f"blocks.{n - 1}.hook_resid_post"]
    assert cache["pattern", -2] is cache[f"blocks.{n - 2}.attn.hook_pattern"]
    assert cache.stack_activation("resid_pre", -1).shape[0] == n
    with pytest.raises(hl.InputError, match="out of range"):
        cache.decompose_resid(layer=n + 1)
    with pytest.raises(KeyError, match="out of range"):
        cache["resid_post", n]


def test_accumulated_resid_labels_match_transformerlens(run):
    _, _, cache = run("llama")
    assert cache.accumulated_resid(layer=1, return_labels=True)[1] == ["0_pre", "1_pre"]
    assert cache.accumulated_resid(layer=0, return_labels=True)[1] == ["0_pre"]
    assert cache.accumulated_resid(layer=1, incl_mid=True, return_labels=True)[1] == [
        "0_pre", "0_mid", "1_pre",
    ]  # fmt: skip
    assert cache.accumulated_resid(layer=1, mlp_input=True, return_labels=True)[1] == [
        "0_pre", "1_pre", "1_mid",
    ]  # fmt: skip
    assert cache.accumulated_resid(return_labels=True)[1] == ["0_pre", "1_pre", "final_post"]
    stack = cache.accumulated_resid(layer=1)
    torch.testing.assert_close(stack[1], cache["blocks.1.hook_resid_pre"])


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_accumulated_resid_apply_ln_recomputes_the_final_norm(run, family):
    """The logit lens: every stream goes through the final norm with its own statistics (the
    norm's bias, a constant, left out), not divided by the final stream's cached scale."""
    model, _, cache = run(family)
    norm = model.hf_model.get_submodule(model.spec.final_norm)
    bias = getattr(norm, "bias", None)
    stack = cache.accumulated_resid(apply_ln=True)
    raw = cache.accumulated_resid()
    with torch.no_grad():
        for i in range(raw.shape[0]):
            expected = norm(raw[i]) - (bias if bias is not None else 0)
            torch.testing.assert_close(stack[i], expected, atol=1e-4, rtol=1e-4)
    # the old behaviour (the final cached scale for every stream) differs on inner streams
    cached = cache.apply_ln_to_stack(raw)
    assert (cached[0] - stack[0]).abs().max() > 1e-2
    torch.testing.assert_close(cached[-1], stack[-1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_stop_at_layer(tiny, tokens, family):
    model = tiny(family)
    n = model.cfg.n_layers
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        for k, expected in ((0, "blocks.0.hook_resid_pre"), (1, "blocks.1.hook_resid_pre"),
                            (-1, f"blocks.{n - 1}.hook_resid_pre"),
                            (n, f"blocks.{n - 1}.hook_resid_post")):  # fmt: skip
            out = model(tokens, stop_at_layer=k)
            torch.testing.assert_close(out, cache[expected])
            assert out.shape == (2, 8, model.cfg.d_model)
    # no block from k on runs: none of its hook points fire, and nothing after it
    fired: list[str] = []
    with torch.no_grad():
        model.run_with_hooks(
            tokens, fwd_hooks=[(lambda name: True, lambda x, h: fired.append(h.name))],
            stop_at_layer=1, return_type="loss",
        )  # fmt: skip
    assert "blocks.0.hook_resid_post" in fired
    assert not [f for f in fired if f.startswith("blocks.1.") or f.startswith("ln_final")]
    with torch.no_grad():
        resid, short = model.run_with_cache(tokens, stop_at_layer=1)
    torch.testing.assert_close(resid, cache["blocks.1.hook_resid_pre"])
    assert "blocks.0.hook_resid_post" in short and "blocks.1.hook_resid_pre" not in short
    assert not [name for name in model.hook_dict.values() if name.active]  # hooks all removed
    with pytest.raises(hl.InputError, match="stop_at_layer"):
        model(tokens, stop_at_layer=n + 1)


def test_loss_per_token_and_both(tiny, tokens):
    model = tiny("llama")
    with torch.no_grad():
        logits = model(tokens)
        per_token = model(tokens, return_type="loss", loss_per_token=True)
        mean = model(tokens, return_type="loss")
        both = model(tokens, return_type="both", loss_per_token=True)
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
    ).view(2, 7)
    assert per_token.shape == (2, 7)
    torch.testing.assert_close(per_token, expected)
    torch.testing.assert_close(mean, expected.mean())
    assert isinstance(both, hl.Output) and both.loss.shape == (2, 7)
    torch.testing.assert_close(both[0], logits)
    torch.testing.assert_close(model.loss_fn(logits, tokens, per_token=True), expected)
    torch.testing.assert_close(hl.loss_fn(logits, tokens), expected.mean())
    mask = torch.ones_like(tokens)
    mask[0, 5:] = 0  # positions 5.. of the first row are padding: 4 + 7 predictions count
    masked = hl.loss_fn(logits, tokens, mask)
    torch.testing.assert_close(masked, (expected[0, :4].sum() + expected[1].sum()) / 11)
    with pytest.raises(hl.InputError, match="return_type"):
        model(tokens, return_type="logit")


def test_generate_samples_by_default_like_transformerlens(tiny):
    model = tiny("llama")
    toks = model.to_tokens("the cat")
    outs = set()
    for seed in range(4):
        torch.manual_seed(seed)
        out = model.generate(toks, max_new_tokens=6, stop_at_eos=False, temperature=3.0)
        outs.add(tuple(out[0].tolist()))
    assert len(outs) > 1  # sampled: different seeds, different continuations
    greedy = model.generate(toks, max_new_tokens=6, stop_at_eos=False, do_sample=False)
    zero = model.generate(toks, max_new_tokens=6, stop_at_eos=False, temperature=0.0)
    assert torch.equal(greedy, zero)
    ids = toks
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, model(ids)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(greedy, ids)
    torch.manual_seed(0)
    top1 = model.generate(toks, max_new_tokens=6, stop_at_eos=False, top_k=1, temperature=3.0)
    assert torch.equal(top1, greedy)  # top_k=1 leaves only the argmax to sample


def test_sampler_matches_transformerlens_rules():
    from hooklens._engine.generate import TransformerLensSampler

    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    ids = torch.tensor([[0, 0, 2]])
    out = TransformerLensSampler(2.0, 0.5, None, None)(ids, scores)
    torch.testing.assert_close(out, torch.tensor([[1.0 - 1.0, 0.5, 0.25 - 0.5, -0.5]]))
    top2 = TransformerLensSampler(1.0, 0.0, 2, None)(ids, scores)
    assert torch.isinf(top2[0, 2:]).all() and torch.isfinite(top2[0, :2]).all()
    nucleus = TransformerLensSampler(1.0, 0.0, None, 0.5)(ids, scores)
    assert torch.isfinite(nucleus[0, 0]) and torch.isinf(nucleus[0, 1:]).all()


def test_typos_and_unimplemented_arguments_raise(tiny, tokens):
    model = tiny("gpt2")
    fn = lambda x, h: None  # noqa: E731
    with pytest.raises(hl.ArgumentError, match=r"fwd_hook=.*Did you mean 'fwd_hooks'"):
        model.run_with_hooks(tokens, fwd_hook=[("hook_embed", fn)])
    with pytest.raises(TypeError, match=r"names_filters=.*Did you mean 'names_filter'"):
        model.run_with_cache(tokens, names_filters="hook_embed")
    with pytest.raises(hl.ArgumentError, match=r"padding_side.*pads a batch of texts"):
        model(tokens, padding_side="left")
    with pytest.raises(hl.ArgumentError, match="output_attentions"):
        model.run_with_cache(tokens, output_attentions=True)
    with pytest.raises(hl.ArgumentError, match=r"temprature.*temperature"):
        model.generate(tokens, temprature=0.5)
    with pytest.raises(hl.ArgumentError, match="bwd_hook="):
        model.hooks(bwd_hook=[("hook_embed", fn)])
    with pytest.raises(hl.ArgumentError, match="includeing_permanent"):
        model.reset_hooks(includeing_permanent=True)
    with pytest.raises(hl.InputError, match="list of"):
        model.run_with_hooks(tokens, fwd_hooks=("hook_embed", fn))
    with pytest.raises(hl.InputError, match="verbose"):
        model.generate(tokens, verbose=True)


def test_pos_slice_in_run_with_cache(tiny, tokens):
    model = tiny("llama")
    with torch.no_grad():
        _, full = model.run_with_cache(tokens)
        _, last = model.run_with_cache(tokens, pos_slice=-1)
        _, some = model.run_with_cache(tokens, pos_slice=(2, 5))
    torch.testing.assert_close(
        last["blocks.0.hook_resid_pre"], full["blocks.0.hook_resid_pre"][:, -1]
    )
    torch.testing.assert_close(last["blocks.0.attn.hook_z"], full["blocks.0.attn.hook_z"][:, -1])
    torch.testing.assert_close(
        some["blocks.1.attn.hook_pattern"], full["blocks.1.attn.hook_pattern"][:, :, 2:5]
    )


def test_every_entry_point_names_what_it_does_not_take(tiny, tokens, tiny_dir):
    model = tiny("llama")
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: "resid" in n)
    with pytest.raises(hl.ArgumentError, match=r"return_label=.*'return_labels'"):
        cache.accumulated_resid(return_label=True)
    with pytest.raises(hl.ArgumentError, match=r"layers=.*'layer'"):
        cache.decompose_resid(layers=1)
    with pytest.raises(hl.ArgumentError, match="padding_side"):
        model.to_tokens(["the cat", "the"], padding_side="left")
    with pytest.raises(hl.ArgumentError, match="truncate"):
        model.to_tokens("the cat", truncate=True)
    with pytest.raises(
        hl.ArgumentError,
        match=r"(?s)refactor_factored_attn_matrices=True.*model\.QK",
    ):
        hl.HookedModel.from_pretrained(str(tiny_dir("llama")), refactor_factored_attn_matrices=True)
    with pytest.raises(hl.ArgumentError, match="default_prepend_bos"):
        hl.HookedModel.from_pretrained(str(tiny_dir("llama")), default_prepend_bos=False)
    with pytest.raises(hl.ArgumentError, match="already loaded"):
        hl.HookedModel.from_pretrained("x", hf_model=model.hf_model, low_cpu_mem_usage=True)
    # the processing flags given as False mean what hooklens does: accepted
    same = hl.HookedModel.from_pretrained(
        str(tiny_dir("llama")), fold_ln=False, center_writing_weights=False, center_unembed=False
    )
    with torch.no_grad():
        torch.testing.assert_close(same(tokens), model(tokens))
    with model.hooks([("hook_embed", lambda x, h: None)]) as hooked:
        assert hooked is model  # TransformerLens's `with model.hooks(...) as model`


def test_generate_pads_a_batch_of_texts_on_the_left(tiny):
    model = tiny("llama")
    texts = ["the cat sat on the", "a dog"]
    both = model.generate(texts, max_new_tokens=3, stop_at_eos=False, do_sample=False)
    alone = [model.generate(t, max_new_tokens=3, stop_at_eos=False, do_sample=False) for t in texts]
    assert both == alone  # the short prompt continues from its own end, not from padding


def test_loss_of_a_batch_of_texts_skips_the_padding(tiny):
    model = tiny("llama")
    texts = ["the cat sat on the mat", "a dog"]
    with torch.no_grad():
        per_token = model(texts, return_type="loss", loss_per_token=True)
        alone = model(texts[1], return_type="loss", loss_per_token=True)
        mean = model(texts, return_type="loss")
    assert per_token.shape == (2, 6)
    torch.testing.assert_close(per_token[1, :2], alone[0])
    assert (per_token[1, 2:] == 0).all()  # predictions of padding are not counted
    torch.testing.assert_close(mean, per_token.sum() / 8)


def test_set_use_switches_put_on_demand_points_in_the_default_cache(tiny, tokens):
    """`model.set_use_attn_result(True)` (TransformerLens's loading-cell switch) makes
    `run_with_cache` cache `hook_result` with no names_filter; the logits do not change."""
    model = tiny("llama")
    result, z = "blocks.1.attn.hook_result", "blocks.1.attn.hook_z"
    plain_logits, plain = model.run_with_cache(tokens)
    assert result not in plain and "blocks.0.hook_q_input" not in plain
    try:
        model.set_use_attn_result(True)
        logits, cache = model.run_with_cache(tokens)
        _, asked = model.run_with_cache(tokens, names_filter=[result])
        assert "blocks.0.hook_q_input" not in cache
        model.set_use_split_qkv_input(True)
        _, split = model.run_with_cache(tokens)
    finally:
        model.set_use_attn_result(False)
        model.set_use_split_qkv_input(False)
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(cache[result], asked[result])
    torch.testing.assert_close(cache[z], plain[z])
    assert cache[result].shape == (*tokens.shape, model.cfg.n_heads, model.cfg.d_model)
    assert "blocks.0.hook_q_input" in split and result in split
    assert result not in model.run_with_cache(tokens)[1]  # switched off again
    with pytest.raises(hl.InputError, match="True or False"):
        model.set_use_attn_result("yes")  # type: ignore[arg-type]


def test_get_corner():
    from hooklens.analysis import FactoredMatrix

    x = torch.arange(5 * 6 * 7).reshape(5, 6, 7)
    torch.testing.assert_close(hl.utils.get_corner(x), x[:3, :3, :3])
    torch.testing.assert_close(hl.utils.get_corner(x, 2), x[:2, :2, :2])
    fm = FactoredMatrix(torch.randn(6, 2), torch.randn(2, 5))
    torch.testing.assert_close(hl.utils.get_corner(fm), (fm.A @ fm.B)[:3, :3])
    with pytest.raises(TypeError, match="tensor or FactoredMatrix"):
        hl.utils.get_corner([1, 2])


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_ungroup_grouped_query_attention(tiny_dir, tokens, family):
    """TransformerLens's load option: one key/value head per query head, same outputs, and a
    single query head's values can be patched alone."""
    grouped = hl.HookedModel.from_pretrained(str(tiny_dir(family)))
    model = hl.HookedModel.from_pretrained(
        str(tiny_dir(family)), ungroup_grouped_query_attention=True
    )
    n, group = model.cfg.n_heads, grouped.cfg.n_heads // grouped.cfg.n_kv_heads
    assert grouped.cfg.n_kv_heads < n and model.cfg.n_kv_heads == n
    with torch.no_grad():
        want, g_cache = grouped.run_with_cache(tokens)
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)
    for letter in "kv":
        got = cache[f"blocks.1.attn.hook_{letter}"]
        assert got.shape == (*tokens.shape, n, model.cfg.d_head)
        torch.testing.assert_close(
            got, g_cache[f"blocks.1.attn.hook_{letter}"].repeat_interleave(group, dim=2)
        )
    assert model.blocks[1].attn.W_V.shape == (n, model.cfg.d_model, model.cfg.d_head)

    def zero_head_1(v, hook):
        v = v.clone()
        v[:, :, 1] = 0
        return v

    with torch.no_grad():
        z = {}
        model.run_with_hooks(
            tokens,
            fwd_hooks=[
                ("blocks.1.attn.hook_v", zero_head_1),
                ("blocks.1.attn.hook_z", lambda act, hook: z.setdefault("z", act.clone())),
            ],
        )
    assert z["z"][:, :, 1].abs().max() == 0  # the head whose values were zeroed
    torch.testing.assert_close(z["z"][:, :, 0], cache["blocks.1.attn.hook_z"][:, :, 0])  # its group


def test_ungroup_grouped_query_attention_errors(tiny_dir, tiny):
    with pytest.raises(hl.ArgumentError, match="concat_qkv"):
        hl.HookedModel.from_pretrained(str(tiny_dir("phi3")), ungroup_grouped_query_attention=True)
    with pytest.raises(hl.ArgumentError, match="hf_model="):
        hl.HookedModel.from_pretrained(
            "x", hf_model=tiny("llama").hf_model, ungroup_grouped_query_attention=True
        )


MODES = {"no_grad": torch.no_grad, "grad": torch.enable_grad, "inference": torch.inference_mode}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "name", ["blocks.0.hook_resid_mid", "blocks.0.attn.hook_v", "blocks.0.attn.hook_rot_k"]
)
def test_what_a_function_kept_survives_a_later_replacement(tiny, tokens, name, mode):
    """Points whose edits are written into the model's own tensor (the residual kept by the
    block, the heads handed to the KV cache): what an earlier function kept changes with a later
    function's in-place edit (the same tensor, as in TransformerLens) but not with a replacement
    returned, by a later function or by itself."""
    model = tiny("llama")
    kept: dict[str, torch.Tensor] = {}

    def keep(x, hook):
        kept["x"] = x

    def replace(x, hook):
        return torch.zeros_like(x)

    def keep_and_replace(x, hook):
        keep(x, hook)
        return torch.zeros_like(x)

    def in_place(x, hook):
        x[:] = 1.0

    with MODES[mode]():
        _, cache = model.run_with_cache(tokens, names_filter=name)
        clean = cache[name]
        for edit, value in ((replace, 0.0), (in_place, 1.0)):
            alone = model.run_with_hooks(tokens, fwd_hooks=[(name, edit)])
            after_keep = model.run_with_hooks(tokens, fwd_hooks=[(name, keep), (name, edit)])
            torch.testing.assert_close(after_keep, alone, rtol=0, atol=0)
            if edit is replace:
                torch.testing.assert_close(kept["x"], clean, rtol=0, atol=0)
            else:
                assert bool((kept["x"] == value).all())
        # one function that keeps its input and returns a replacement
        alone = model.run_with_hooks(tokens, fwd_hooks=[(name, replace)])
        torch.testing.assert_close(
            model.run_with_hooks(tokens, fwd_hooks=[(name, keep_and_replace)]),
            alone,
            rtol=0,
            atol=0,
        )
        torch.testing.assert_close(kept["x"], clean, rtol=0, atol=0)


@pytest.mark.parametrize("model_type", ["xlm", "flint", "llama4_text", "lara_mini", "gpt2"])
def test_an_edit_leaves_what_earlier_points_kept(registry, model_type):
    """An edit at any point of block 0, or at the rotated q/k of any layer, leaves every
    earlier point's cached activation as it was. Two ways it did not: two points on one
    module's output run in the order their functions were attached (XLM's ln2 and
    hook_normalized_resid_post), and a layer that does not rotate hands the attention function
    the projection's output itself, into which an edit of hook_rot_q/hook_rot_k was written
    (Flint's, Llama 4's and LaraMini's NoPE layers)."""
    from hooklens._engine.points import is_on_demand

    _, model = registry(model_type)
    names = [n for n in model.hook_names() if not is_on_demand(n)]
    tokens = torch.randint(4, 60, (2, 6), generator=torch.Generator().manual_seed(3))
    read_only = ("hook_sink", "hook_router_logits")
    targets = [
        n
        for n in names
        if (n.startswith("blocks.0.") or "hook_rot_" in n) and not n.endswith(read_only)
    ]

    def replace(x, hook):
        return torch.full_like(x, 0.5) if x.is_floating_point() else torch.zeros_like(x)

    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names_filter=names)
        for target in targets:
            with model.hooks([(target, replace)]):  # attached before the cache's functions
                _, edited = model.run_with_cache(tokens, names_filter=names)
            for name in names[: names.index(target)]:
                where = f"{name} after an edit of {target}"
                torch.testing.assert_close(
                    edited[name], clean[name], rtol=0, atol=1e-5, equal_nan=True,
                    msg=lambda m, where=where: f"{where}: {m}",
                )  # fmt: skip


def _edited(x):
    """The edit of the in-place / returned tests: any change, of any dtype."""
    return x * 0.5 + 0.25 if x.is_floating_point() else torch.zeros_like(x)


def returned(x, hook):
    return _edited(x)


def in_place(x, hook):
    x.copy_(_edited(x))


@pytest.mark.parametrize(
    "model_type",
    [
        "gpt2",
        "llama",
        "zaya",
        "granitemoeshared",
        "mixtral",
        "jetmoe",
        "llama4_text",
        "qwen3_next",
        "falcon_h1",
    ],
)
def test_an_edit_in_place_acts_as_the_same_edit_returned(registry, model_type):
    """At every point of block 0 and the model's own: writing into the activation is the same
    edit as returning it (TransformerLens's hooks allow both). Points whose activation hooklens
    computes for them (norm scales, ZAYA's shifted embedding, a sum of two MLPs' outputs,
    Falcon-H1's scaled keys) ignored edits in place."""
    _, model = registry(model_type)
    read_only = ("hook_sink", "hook_router_logits")
    names = [
        n
        for n in model.hook_names()
        if (n.startswith("blocks.0.") or not n.startswith("blocks.")) and not n.endswith(read_only)
    ]
    tokens = torch.randint(4, 60, (2, 6), generator=torch.Generator().manual_seed(5))

    with torch.no_grad():
        clean = model(tokens)
        for name in names:
            by_return = model.run_with_hooks(tokens, fwd_hooks=[(name, returned)])
            by_writing = model.run_with_hooks(tokens, fwd_hooks=[(name, in_place)])
            torch.testing.assert_close(
                by_writing, by_return, rtol=0, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}"
            )
            assert not torch.equal(by_return, clean), f"the edit of {name} changed nothing"


@pytest.mark.parametrize(
    ("model_type", "name"),
    [
        ("gpt2", "blocks.0.attn.hook_q"),  # views of a split the model made
        ("gpt2", "blocks.0.attn.hook_pattern"),  # the softmax keeps its output for its backward
        ("llama", "blocks.0.attn.hook_z"),  # sdpa keeps its output (z is a view of it)
        ("mixtral", "blocks.0.mlp.hook_expert_indices"),  # ids the experts' gather keeps
        ("llama", "blocks.0.hook_resid_mid"),
    ],
)
def test_an_edit_in_place_with_gradients(registry, model_type, name):
    """With gradients on, an edit in place neither raises (in the forward, or in the backward
    for a tensor autograd kept) nor differs from the same edit returned, logits and gradients
    alike, as in TransformerLens."""
    _, model = registry(model_type)
    weight = model.hf_model.get_input_embeddings().weight
    tokens = torch.randint(4, 60, (2, 6), generator=torch.Generator().manual_seed(6))

    results = []
    for fn in (returned, in_place):
        model.hf_model.zero_grad(set_to_none=True)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])
        logits.pow(2).mean().backward()
        results.append((logits.detach(), weight.grad.clone()))
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=1e-6)
    model.hf_model.zero_grad(set_to_none=True)
