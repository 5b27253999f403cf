"""Every causal-LM type of the installed transformers, from its own registry: a tiny model of
each is built, saved and loaded through the real loader; wrapped ones must match HF exactly.

Types whose tiny model cannot run here, and types hooklens does not wrap, are skipped with
their reason and listed by `test_registry_summary` (run with `-s` to see the table).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from hooklens._engine.points import is_on_demand
from hooklens.architectures._registry import (
    PARTIAL,
    PARTS_ONLY,
    STREAM_ONLY,
    VOCAB,
    build,
    causal_lm_types,
    family_table,
)

from .conftest import _tokenizer, assert_full_pass_sweep
from .test_families import O_PROJ

TYPES = list(causal_lm_types())
#: the internal points of attention a layer runs off the stream (Zamba's shared block)
INTERNALS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
#: Raise these as more types are wrapped; they must never go down: types with every point, and
#: types with the residual stream's points only (their blocks kept whole).
WRAPPED_AT_LEAST = 177
STREAM_ONLY_AT_LEAST = 3
#: and types with the points of their blocks' parts only (several parallel residual streams)
PARTS_ONLY_AT_LEAST = 2
README = Path(__file__).parents[2] / "hooklens" / "architectures" / "README.md"


def _o_proj(model, layer):
    block = model.hf_model.get_submodule(model.spec.blocks)[layer]
    path = model.spec.o_proj or O_PROJ.get(model.cfg.family, "self_attn.o_proj")
    return block.get_submodule(path)


@pytest.mark.parametrize("model_type", TYPES)
def test_registry_type(registry, model_type):
    outcome, model = registry(model_type)
    if model is None:
        pytest.skip(f"{outcome.status}: {outcome.reason}")
    hf, c = model.hf_model, model.cfg
    tokens = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens, use_cache=False).logits
        plain = model(tokens)
        logits, cache = model.run_with_cache(tokens)
    assert (plain - ref).abs().max() <= 1e-4
    assert (logits - ref).abs().max() <= 1e-4
    assert list(cache.keys()) == [n for n in model.hook_names() if not is_on_demand(n)]
    assert "hook_embed" in cache
    attending = model.spec.attention_layers(c.n_layers)
    layouts = model.spec.layers or ()
    assert attending or layouts, "a model with no attention must declare its layers' mixers"
    for layer in range(c.n_layers):
        if model.spec.streams is not None:  # several streams: the parts' points alone
            _check_several_streams(model, layer, cache)
        else:
            assert f"blocks.{layer}.hook_resid_pre" in cache
            assert f"blocks.{layer}.hook_resid_post" in cache
        has_mlp = not layouts or layouts[layer].mlp
        assert (f"blocks.{layer}.hook_mlp_out" in cache) == has_mlp
        if layouts and layouts[layer].kind == "block":  # kept whole: the stream's points alone
            _check_whole_block(model, layer, layouts[layer].opaque, layouts[layer].attends_inside)
            continue
        if layouts and layouts[layer].kind == "skipped":  # not run here: its input is its output
            b = f"blocks.{layer}."
            torch.testing.assert_close(cache[b + "hook_resid_pre"], cache[b + "hook_resid_post"])
            _check_whole_block(model, layer, layouts[layer].opaque, says="does not run here")
            continue
        if layer not in attending:  # a hybrid's mixer (or MLP-only) layer: no attention
            kind = layouts[layer].kind
            assert kind in ("mixer", "mlp")
            assert (f"blocks.{layer}.hook_mixer_out" in cache) == (kind == "mixer")
            assert not any(n.startswith(f"blocks.{layer}.attn.") for n in model.hook_names())
            assert f"blocks.{layer}.hook_attn_out" not in cache
            continue
        # a mixer beside attention (Falcon-H1) adds its output in the same step
        beside = bool(layouts) and layouts[layer].beside is not None
        assert (f"blocks.{layer}.hook_mixer_out" in cache) == beside
        # where the attention rounds its values, z is made of the rounded ones (Kolibri 1.1)
        read_v = "attn.hook_rounded_v" if layer in model.spec.kv_rounded else "attn.hook_v"
        for suffix in ("hook_attn_out", "attn.hook_q", "attn.hook_k", read_v,
                       "attn.hook_attn_scores", "attn.hook_z"):  # fmt: skip
            if suffix == "attn.hook_k" and layer in dict(model.spec.kv_reused):
                _check_reused_keys(model, layer, dict(model.spec.kv_reused)[layer], cache)
                continue
            assert f"blocks.{layer}.{suffix}" in cache
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        # a learned attention sink takes the rest of each row (hook_sink); elsewhere none
        sink = cache.get(f"blocks.{layer}.attn.hook_sink", torch.zeros_like(pattern[..., 0]))
        assert (f"blocks.{layer}.attn.hook_sink" in cache) == (layer in model.spec.sink_layers)
        torch.testing.assert_close(pattern.sum(-1) + sink, torch.ones_like(sink))
        torch.testing.assert_close(
            cache[f"blocks.{layer}.attn.hook_attn_scores"].softmax(-1) * (1 - sink[..., None]),
            pattern,
            atol=1e-5,
            rtol=1e-4,
        )
    _check_edits(model, tokens, ref)
    if model.spec.moe_experts is not None:
        _check_routing(model, tokens, ref, cache)


def _check_several_streams(model, layer, cache):
    """A model whose residual stream is several parallel streams (Gemma 3n's alternating
    updates) has no point on the stream (asking says why) and its blocks' parts all theirs."""
    import hooklens as hl

    for suffix in ("hook_resid_pre", "hook_resid_post", "hook_resid_mid"):
        name = f"blocks.{layer}.{suffix}"
        assert name not in model.hook_names()
        with pytest.raises(hl.HookNameError, match="parallel streams"):
            model.run_with_cache(torch.tensor([[5, 6]]), names_filter=name)
    assert f"blocks.{layer}.ln1.hook_normalized" in cache
    with pytest.raises(hl.InputError, match="several parallel"):
        cache.accumulated_resid()


def _check_reused_keys(model, layer, source, cache):
    """A layer that reuses an earlier layer's keys and values (Gemma 4's KV sharing) has no
    keys before the rotation (asking says whose they are); the rotated keys and the values it
    reads are the source layer's."""
    import hooklens as hl

    assert source < layer
    with pytest.raises(hl.HookNameError, match=f"reuses the keys and values layer {source}"):
        model.run_with_cache(torch.tensor([[5, 6]]), names_filter=f"blocks.{layer}.attn.hook_k")
    rounded = layer in model.spec.kv_rounded  # its values before the rounding: the source's
    if rounded:
        with pytest.raises(hl.HookNameError, match=f"reuses the values layer {source} computed"):
            model.run_with_cache(torch.tensor([[5, 6]]), names_filter=f"blocks.{layer}.attn.hook_v")
    for suffix in ("attn.hook_rot_k", "attn.hook_rounded_v" if rounded else "attn.hook_v"):
        here, there = f"blocks.{layer}.{suffix}", f"blocks.{source}.{suffix}"
        torch.testing.assert_close(cache[here], cache[there], rtol=0, atol=0)


def _check_whole_block(model, layer, why, inside=False, says=None):
    """A block kept whole (or one the forward skips) has its input and output alone (and,
    `inside`: where it runs attention off the stream, in a block shared with other layers
    (Zamba), that attention's internals, tests/engine/test_shared_blocks.py); any other point
    of it raises, saying why the template could not take it apart (or why it does not run)."""
    import hooklens as hl

    own = [n for n in model.hook_names() if n.startswith(f"blocks.{layer}.")]
    internals = [f"blocks.{layer}.attn.{s}" for s in INTERNALS] if inside else []
    assert own == [f"blocks.{layer}.hook_resid_pre", *internals, f"blocks.{layer}.hook_resid_post"]
    missing = ("hook_attn_out", "hook_mlp_out", "ln1.hook_normalized")
    for point in missing if inside else ("attn.hook_pattern", *missing):
        with pytest.raises(hl.HookNameError) as info:
            model.run_with_cache(torch.tensor([[5, 6]]), names_filter=f"blocks.{layer}.{point}")
        said = says or f"hooklens keeps layer {layer}"
        assert said in str(info.value) and why in str(info.value)


def _check_edits(model, tokens, base):
    """Edits at resid_pre, z and pattern (of the first layer that attends) equal the same edits
    made with raw torch hooks."""
    hf, c = model.hf_model, model.cfg
    attending = model.spec.attention_layers(c.n_layers)
    blocks = hf.get_submodule(model.spec.blocks)
    noise = torch.randn(*tokens.shape, c.d_model, generator=torch.Generator().manual_seed(3))
    head = 1

    def raw_run(module, pre_hook):
        handle = module.register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            return hf(tokens, use_cache=False).logits
        finally:
            handle.remove()

    def raw_resid(mod, args, kwargs):
        if args:
            return (args[0] + noise, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + noise}

    def zero_head(x, hook):
        x[:, :, head] = 0

    def raw_z(mod, args, kwargs):
        z = args[0].clone()
        z[..., head * c.d_head : (head + 1) * c.d_head] = 0
        return (z, *args[1:]), kwargs

    # block 1, or the next that runs (a text-only forward skips Mllama's cross-attention layers)
    ran = [i for i, lay in enumerate(model.spec.layers or ()) if lay.kind != "skipped"]
    edited = next((i for i in ran if i >= 1), 1)
    with torch.no_grad():
        if model.spec.streams is None:
            ours = model.run_with_hooks(
                tokens, fwd_hooks=[(f"blocks.{edited}.hook_resid_pre", lambda x, h: x + noise)]
            )
            if model.spec.layer_lists is None:
                raw = raw_run(blocks[edited], raw_resid)
            else:  # layers the model runs part by part (XLM): the stream is attention's input,
                # which it also adds attention's output to, so the raw edit is made in place
                attn = blocks[edited].get_submodule(model.spec.attn)
                raw = raw_run(attn, _added_in_place(noise))
        else:  # no point on the streams: what attention reads (ln1's output) instead
            name = f"blocks.{edited}.ln1.hook_normalized"
            ours = model.run_with_hooks(tokens, fwd_hooks=[(name, lambda x, h: x + noise)])
            ln1 = blocks[edited].get_submodule(model.spec.ln1)
            handle = ln1.register_forward_hook(lambda m, a, out: out + noise.view(out.shape))
            try:
                raw = hf(tokens, use_cache=False).logits
            finally:
                handle.remove()
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)
        if not attending:
            return
        at = attending[0]
        ours = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{at}.attn.hook_z", zero_head)])
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw_run(_o_proj(model, at), raw_z), atol=1e-5, rtol=1e-4)
        # pattern: one head attends only to position 0, so its z is v at position 0 (times
        # the gate where attention's output is gated: o_proj reads z * gate)
        gate = f"blocks.{at}.attn.hook_gate"
        gated = gate in model.hook_names()
        names = [f"blocks.{at}.attn.hook_v", *([gate] if gated else [])]
        _, cache = model.run_with_cache(tokens, names_filter=names)
        v0 = cache[f"blocks.{at}.attn.hook_v"][:, 0, head // (c.n_heads // c.n_kv_heads)]
        v0 = v0[:, None, :] * (cache[gate][:, :, head] if gated else 1)

        def to_first(p, hook):
            p[:, head] = 0
            p[:, head, :, 0] = 1

        def raw_pattern(mod, args, kwargs):
            z = args[0].clone()
            z[..., head * c.d_head : (head + 1) * c.d_head] = v0
            return (z, *args[1:]), kwargs

        ours = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{at}.attn.hook_pattern", to_first)]
        )
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(
            ours, raw_run(_o_proj(model, at), raw_pattern), atol=1e-5, rtol=1e-4
        )


def _added_in_place(noise):
    def pre_hook(mod, args, kwargs):
        args[0].add_(noise)

    return pre_hook


def _check_routing(model, tokens, base, cache):
    """Router points have their shapes; an edit of the expert weights equals the raw one."""
    c = model.cfg
    layers = model.spec.moe_layers or range(c.n_layers)
    for layer in layers:
        b = f"blocks.{layer}.mlp."
        # per expert, then per class routing to none (ZAYA's skip class)
        assert cache[b + "hook_router_logits"].shape == (*tokens.shape, c.n_router_classes)
        idx = cache[b + "hook_expert_indices"]
        assert idx.shape == (*tokens.shape, c.top_k) and not idx.is_floating_point()
        assert int(idx.max()) < c.n_experts
        weights = cache[b + "hook_expert_weights"]
        assert weights.shape == (*tokens.shape, c.top_k)
        expert_out = cache[b + "hook_expert_out"]
        assert expert_out.shape == (*tokens.shape, c.top_k, c.d_model)
    first = layers[0]
    experts = model.hf_model.get_submodule(f"{model.spec.blocks}.{first}.{model.spec.moe_experts}")

    def drop_first(w, hook):
        w[..., 0] = 0
        w[..., 1:] *= 0.1

    def raw(mod, args, kwargs):
        hidden, index, weights = args
        weights = weights.clone()
        weights[..., 0] = 0
        weights[..., 1:] *= 0.1
        return (hidden, index, weights), kwargs

    def zero_first(out, hook):
        out[..., 0, :] = 0
        out[..., 1:, :] *= 0.1

    with torch.no_grad():
        ours = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{first}.mlp.hook_expert_weights", drop_first)]
        )
        ours_out = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{first}.mlp.hook_expert_out", zero_first)]
        )
        if model.spec.moe_weights_at == "inputs":  # Llama 4: the router's scores scale inputs
            index = cache[f"blocks.{first}.mlp.hook_expert_indices"].flatten(0, 1)
            want, want_out = _raw_scored_edits(model, first, index, tokens)
        elif model.spec.moe_weights_at == "grouped":  # JetMoE: the weights in expert order
            router = f"{model.spec.blocks}.{first}.{model.spec.moe_router}"

            def raw_gates(mod, args, out):
                choice, gates = out[0] % c.top_k, out[2].clone()  # each row's choice slot
                gates[choice == 0] = 0
                gates[choice > 0] *= 0.1
                return (*out[:2], gates, *out[3:])

            handle = model.hf_model.get_submodule(router).register_forward_hook(raw_gates)
            try:
                want = want_out = model.hf_model(tokens, use_cache=False).logits
            finally:
                handle.remove()
        else:  # scaling the chosen experts' outputs is the same as scaling their weights
            handle = experts.register_forward_pre_hook(raw, with_kwargs=True)
            try:
                want = want_out = model.hf_model(tokens, use_cache=False).logits
            finally:
                handle.remove()
    assert (ours - base).abs().max() > 1e-4
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_out, want_out, atol=1e-5, rtol=1e-4)


def _raw_scored_edits(model, layer, index, tokens):
    """The logits with the first chosen expert's score set to 0 and the others' times 0.1 (a
    raw hook on the router's scores), and with the same done to the chosen experts' output
    rows (a raw hook on the experts' output, rows (expert, token))."""
    hf, c = model.hf_model, model.cfg
    block = hf.get_submodule(f"{model.spec.blocks}.{layer}")
    t = torch.arange(index.shape[0])

    def scale(rows):  # rows[expert, token]
        rows[index[:, 0], t] = 0
        rows[index[:, 1:], t[:, None]] *= 0.1

    def raw_scores(mod, args, out):
        scores = out[0].T.clone()
        scale(scores)
        return (scores.T, *out[1:])

    def raw_out(mod, args, out):
        rows = out.view(c.n_experts, -1, out.shape[-1]).clone()
        scale(rows)
        return rows.view(out.shape)

    found = []
    for path, hook in ((model.spec.moe_router, raw_scores), (model.spec.moe_experts, raw_out)):
        handle = block.get_submodule(path).register_forward_hook(hook)
        try:
            found.append(hf(tokens, use_cache=False).logits)
        finally:
            handle.remove()
    return found


def test_registry_summary(registry):
    """Prints every type's outcome; the number wrapped never goes down."""
    outcomes = [registry(t)[0] for t in TYPES]
    print("\n" + family_table(outcomes))
    full = [o for o in outcomes if o.status == "wrapped" and o.adapter not in PARTIAL]
    assert len(full) >= WRAPPED_AT_LEAST
    assert sum(o.adapter == STREAM_ONLY for o in outcomes) >= STREAM_ONLY_AT_LEAST
    assert sum(o.adapter == PARTS_ONLY for o in outcomes) >= PARTS_ONLY_AT_LEAST
    for o in outcomes:
        assert o.status == "wrapped" or o.reason, o.model_type


def test_readme_family_table_is_current(registry):
    """architectures/README.md's family table is the one the registry gives now
    (regenerate with `python -m hooklens.architectures._registry`)."""
    table = family_table([registry(t)[0] for t in TYPES])
    text = README.read_text()
    found = re.search(r"<!-- families -->\n(.*?)\n<!-- /families -->", text, re.S)
    assert found is not None, "README.md has no <!-- families --> section"
    assert found.group(1) == table


def test_post_norm_block_has_no_ln1(registry):
    """OLMo 2 normalizes what attention and the MLP add, not the stream: no ln1/ln2 points,
    and asking for one says why."""
    import hooklens as hl

    _, model = registry("olmo2")
    assert model is not None and model.spec.derived
    assert not any(".ln1." in n or ".ln2." in n for n in model.hook_names())
    assert "blocks.0.hook_resid_mid" in model.hook_names()
    with pytest.raises(hl.HookNameError, match="no norm before attention"):
        model.run_with_cache(torch.tensor([[5, 6]]), names_filter="blocks.0.ln1.hook_scale")


def test_router_logits_are_read_only(registry):
    import hooklens as hl

    _, model = registry("mixtral")
    assert model is not None
    name = "blocks.0.mlp.hook_router_logits"
    for edit in (lambda x, h: x * 2, lambda x, h: x.mul_(2)):  # returned, or in place
        for grad in (False, True):
            with torch.set_grad_enabled(grad), pytest.raises(hl.HookError, match="read-only"):
                model.run_with_hooks(torch.tensor([[5, 6, 7]]), fwd_hooks=[(name, edit)])
    read = model.run_with_hooks(torch.tensor([[5, 6, 7]]), fwd_hooks=[(name, lambda x, h: None)])
    torch.testing.assert_close(read, model(torch.tensor([[5, 6, 7]])))
    with pytest.raises(hl.HookNameError, match="mixture of experts"):
        model.run_with_cache(torch.tensor([[5, 6]]), names_filter="blocks.0.mlp.hook_post")


def test_derived_adapter_that_does_not_match_is_refused(tmp_path):
    """A model that post-processes attention's output before o_proj (here a hook doubling it)
    looks like the template by its module names: the check at load refuses it and names what
    did not match."""
    import transformers

    import hooklens as hl

    assert build("olmo2", tmp_path) is None
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    o_proj = hf.model.layers[0].self_attn.o_proj
    o_proj.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    with pytest.raises(hl.UnsupportedModelError, match="not reproduce the model") as info:
        hl.HookedModel(hf, _tokenizer())
    assert "self_attn.o_proj's input is attn.hook_z" in str(info.value)


def test_differential_attention_is_kept_whole(tmp_path):
    """DiffLlama's attention calls the attention function twice and combines the results
    before o_proj: no one call's pattern is what the layer computes. It is wrapped with each
    attention module kept whole, as its layer's mixer: hook_mixer_out is what it adds, and
    asking for its pattern or its W_Q says why there is none."""
    import hooklens as hl

    assert build("diffllama", tmp_path) is None
    model = hl.HookedModel.from_pretrained(str(tmp_path), tokenizer=_tokenizer())
    assert model.spec.attention_layers(model.cfg.n_layers) == []
    tokens = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-4)
    b = "blocks.0."
    torch.testing.assert_close(
        cache[b + "hook_resid_pre"] + cache[b + "hook_mixer_out"] + cache[b + "hook_mlp_out"],
        cache[b + "hook_resid_post"],
    )
    why = "DiffLlamaAttention calls the attention function 2 times"
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    assert "hooklens keeps DiffLlamaAttention whole, as the layer's mixer" in str(info.value)
    assert why in str(info.value)
    with pytest.raises(ValueError, match=why):
        model.blocks[0].attn.W_Q  # noqa: B018
    # its keys and values are not read: sweeps run full passes, equal to patching by hand
    assert_full_pass_sweep(model, "DiffLlamaAttention layers are kept whole")


def test_dense_layers_of_a_partly_moe_model(registry):
    """GLM-4 MoE starts with dense layers: their MLP points are the dense ones, and asking a
    dense layer for its router says why there is none."""
    import hooklens as hl

    _, model = registry("glm4_moe")
    assert model is not None and model.spec.moe_layers
    dense = next(i for i in range(model.cfg.n_layers) if i not in model.spec.moe_layers)
    moe = model.spec.moe_layers[0]
    names = model.hook_names()
    assert f"blocks.{dense}.mlp.hook_post" in names
    assert f"blocks.{moe}.mlp.hook_router_logits" in names
    assert f"blocks.{moe}.mlp.hook_post" not in names
    with pytest.raises(hl.HookNameError, match="is dense"):
        model.run_with_cache(
            torch.tensor([[5, 6]]), names_filter=f"blocks.{dense}.mlp.hook_router_logits"
        )


@pytest.mark.parametrize(
    "model_type", ["jamba", "mamba", "nemotron_h", "recurrent_gemma", "rwkv", "xlstm"]
)
def test_attention_point_on_a_mixer_layer_names_the_layer(registry, model_type):
    """A hybrid's mixer layer has no attention: asking for its pattern says what the layer is
    and which layers attend; its mixer's output is what it adds to the residual stream."""
    import hooklens as hl

    _, model = registry(model_type)
    assert model is not None and model.spec.layers is not None
    layout = model.spec.layers[0]
    assert layout.kind == "mixer"
    attending = model.spec.attention_layers(model.cfg.n_layers)
    tokens = torch.tensor([[5, 6, 7]])
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    message = str(info.value)
    assert f"layer 0 of this model is a {layout.mixer_class} layer and has no attention" in message
    assert f"layers with attention: {', '.join(map(str, attending)) or 'none'}" in message
    with pytest.raises(hl.HookNameError, match="has no attention"):
        model.run_with_cache(tokens, names_filter="blocks.0.hook_attn_out")
    # the mixer's output is what the layer adds: resid_pre + mixer_out (+ mlp_out) = resid_post
    _, cache = model.run_with_cache(tokens)
    added = cache["blocks.0.hook_mixer_out"] + cache.get("blocks.0.hook_mlp_out", 0)
    torch.testing.assert_close(
        cache["blocks.0.hook_resid_pre"] + added, cache["blocks.0.hook_resid_post"]
    )
    for layer in attending:
        assert f"blocks.{layer}.attn.hook_pattern" in model.hook_names()
        with pytest.raises(hl.HookNameError, match="not a state-space or other sequence mixer"):
            model.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_mixer_out")


@pytest.mark.parametrize("model_type", ["mamba", "jamba", "rwkv"])
def test_patching_sweep_on_a_hybrid_runs_full_forwards(registry, model_type):
    """A mixer layer keeps a recurrent state, not keys/values: partial forwards are refused and
    a sweep at resid_pre runs full passes, equal to patching each cell by hand; a sweep of an
    attention point over layers without attention says which layers attend."""
    import hooklens as hl

    _, model = registry(model_type)
    assert model is not None
    assert_full_pass_sweep(model, "recurrent state")
    clean, corrupted = torch.tensor([[5, 9, 17, 33]]), torch.tensor([[5, 9, 18, 33]])

    def metric(logits):
        return logits[:, -1, 7] - logits[:, -1, 8]

    with pytest.raises(hl.HookNameError, match="has no attention; layers with attention"):
        hl.patching.sweep(model, clean, corrupted, metric, "z", normalize=False, progress=False)


@pytest.mark.parametrize("model_type", ["jamba", "falcon_h1"])
def test_head_results_of_a_hybrid_are_its_attending_layers(registry, model_type):
    """A hybrid's mixer layers have no heads: stack_head_results stacks the attending layers'
    heads, and with the remainder they sum to the final stream."""
    _, model = registry(model_type)
    attending = model.spec.attention_layers(model.cfg.n_layers)
    assert 0 < len(attending) < model.cfg.n_layers or model_type == "falcon_h1"
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([[5, 6, 7]]))
    stack, labels = cache.stack_head_results(layer=-1, return_labels=True, incl_remainder=True)
    heads = [f"L{i}H{h}" for i in attending for h in range(model.cfg.n_heads)]
    assert labels == [*heads, "remainder"]
    final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    torch.testing.assert_close(stack.sum(0), final, atol=1e-5, rtol=1e-4)
