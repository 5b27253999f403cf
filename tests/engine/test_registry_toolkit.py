"""The TransformerLens toolkit on every wrapped registry type (tiny random models, biases random
too): weights in TransformerLens's shapes reproduce q/k/v, per-head results sum to the
attention's output, the residual decompositions sum to the final stream, and gradients cached
with `incl_bwd=True` equal autograd on the plain Hugging Face model. Also per type:
`stop_at_layer`, `loss_per_token`, `OV`/`QK` shapes, `get_act_patch_resid_pre` against patching
by hand, and `sweep(..., method="attribution")`."""

from __future__ import annotations

import copy

import pytest
import torch

import hooklens as hl
from hooklens import patching
from hooklens.architectures._registry import VOCAB

from .conftest import randomize_biases, stream_entering
from .test_registry import TYPES, _o_proj


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=2e-4, rtol=2e-4)


def _with_random_biases(model: hl.HookedModel) -> hl.HookedModel:
    """A copy whose biases are random (HF initializes them to zero, hiding a misplaced one).
    State a module keeps from its last forward (RecurrentGemma's recurrent state, which may
    carry a graph that deepcopy refuses) is copied detached."""
    kept = [t for m in model.hf_model.modules() for t in vars(m).values()]
    memo = {
        id(t): t.detach().clone() for t in kept if isinstance(t, torch.Tensor) and not t.is_leaf
    }
    hf = copy.deepcopy(model.hf_model, memo)
    randomize_biases(hf)
    return hl.HookedModel(hf)


@pytest.fixture(scope="module")
def wrapped(registry):
    """model type -> the registry's model with random biases (None when not wrapped)."""
    made: dict[str, hl.HookedModel | None] = {}

    def get(model_type: str) -> hl.HookedModel | None:
        if model_type not in made:
            outcome, model = registry(model_type)
            if model is None:
                pytest.skip(f"{outcome.status}: {outcome.reason}")
            made[model_type] = _with_random_biases(model)
        return made[model_type]

    return get


def _check_qkv(model: hl.HookedModel, cache: hl.ActivationCache) -> None:
    """q/k/v from ln1.hook_normalized and W_Q/W_K/W_V; each only where the model reads it
    straight from its projection (a q/k norm, or Gemma 4's v norm, comes after them)."""
    names = model.hook_names()
    attending = model.spec.attention_layers(model.cfg.n_layers)
    for layer in set(range(model.cfg.n_layers)) - set(attending):  # a hybrid's mixer layers
        with pytest.raises(ValueError, match=f"layer {layer} of this model is a .* no attention"):
            _ = model.weights.layer(layer).W_Q
    for layer in attending:
        block = f"blocks.{layer}."
        source = block + "ln1.hook_normalized"
        # post-LN blocks (BERT): attention reads the block's input, ln1 comes after it
        pre_norm = source in names and not model.spec.post_ln
        x = cache[source] if pre_norm else cache[block + "hook_resid_pre"]
        w = model.weights.layer(layer)
        convolved = [x for x in "kv" if model.spec.conv(x)]  # Inkling's k/v convolutions
        for letter in convolved:  # each key mixes earlier positions' projections: it says so
            with pytest.raises(ValueError, match="a convolution over positions"):
                _ = getattr(w, f"_W_{letter.upper()}")
        if layer in dict(model.spec.kv_reused):  # keys and values of an earlier layer (Gemma 4)
            for letter in "KV":
                with pytest.raises(ValueError, match="reuses the keys and values layer"):
                    _ = getattr(w, f"W_{letter}")
            convolved = ["k", "v"]  # as for a convolution: W_Q alone gives this layer's point
        try:
            qkv = [(w.W_Q, w.b_Q)]
            qkv += [(getattr(w, f"_W_{x.upper()}"), getattr(w, f"_b_{x.upper()}"))
                    for x in "kv" if x not in convolved]  # fmt: skip
        except NotImplementedError as exc:  # the documented error: where the weights live
            assert "does not describe where its attention weights live" in str(exc)
            return
        except ValueError as exc:  # q, k and v computed by a module of its own (ZAYA)
            assert "computes q, k and v in one module of its own" in str(exc)
            assert "hook_q, hook_k and hook_v are exact" in str(exc)
            return
        attn = model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.attn}")
        clip = getattr(attn, "clip_qkv", None)  # DBRX, MPT: attention reads clipped q, k, v
        letters = ["q", *(x for x in "kv" if x not in convolved)]
        for letter, (weight, bias) in zip(letters, qkv, strict=True):
            got = torch.einsum("bpd,hde->bphe", x, weight) + bias
            got = got.clamp(-clip, clip) if clip else got
            name = f"{block}attn.hook_{letter}"
            if not _normed_after_projection(model, letter):
                _close(got, cache[name])


def _normed_after_projection(model: hl.HookedModel, letter: str) -> bool:
    """Whether the model normalizes q, k or v between its projection and attention (Qwen3's
    q_norm, Gemma 4's v_norm): its hook_q/k/v is the normed one, which W_Q alone does not
    give."""
    first = model.spec.attention_layers(model.cfg.n_layers)[0]
    block = model.hf_model.get_submodule(model.spec.blocks)[first]
    attn = block.get_submodule(model.spec.attn)
    return any((n.startswith(f"{letter}_") and "norm" in n) or n == f"{letter}_layernorm"
               for n, _ in attn.named_children())  # fmt: skip


def _check_head_results(model: hl.HookedModel, tokens: torch.Tensor) -> None:
    """hook_result summed over heads plus b_O is the attention's output."""
    names = [n for n in model.hook_names() if n.endswith("attn.hook_result")]
    if not names:
        return
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: "hook_result" in n
                                        or n.endswith("hook_attn_out"))  # fmt: skip
    blocks = model.hf_model.get_submodule(model.spec.blocks)
    for name in names:
        layer = int(name.split(".")[1])
        out = cache[name].sum(-2) + model.weights.layer(layer).b_O
        if model.spec.attn_out not in (model.spec.attn, model.spec.o_proj):  # a post-norm (Gemma 2)
            out = blocks[layer].get_submodule(model.spec.attn_out)(out)
        _close(out, cache[f"blocks.{layer}.hook_attn_out"])


def _check_resid_sums(model: hl.HookedModel, cache: hl.ActivationCache) -> None:
    if model.spec.post_ln:
        return _check_post_ln_resid(model, cache)
    final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    mid = "blocks.0.hook_resid_mid" in model.hook_names()  # none with a parallel residual
    stack, labels = cache.accumulated_resid(layer=-1, incl_mid=mid, return_labels=True)
    assert labels[-1] == "final_post"
    _close(stack[-1], final)
    if model.spec.unsummed or model.spec.whole_blocks():  # no sum of parts: it says so
        with pytest.raises(hl.InputError, match="no sum of parts"):
            cache.decompose_resid(layer=-1)
        if model.spec.unsummed:  # the heads' results exist, the stream is not their sum
            with pytest.raises(hl.InputError, match="no sum of parts"):
                cache.get_full_resid_decomposition(layer=-1)
        return
    parts = cache.decompose_resid(layer=-1)
    _close(parts.sum(0), final)


def _check_post_ln_resid(model: hl.HookedModel, cache: hl.ActivationCache) -> None:
    """Post-LN blocks: the sums TransformerLens's BertBlock defines hold, the final stream is
    the last block's output, and the decompositions that would not add up raise."""
    n = model.cfg.n_layers
    for layer in range(n):
        b = f"blocks.{layer}."
        _close(
            cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"], cache[b + "hook_resid_mid"]
        )
        _close(cache[b + "ln1.hook_normalized"] + cache[b + "hook_mlp_out"],
               cache[b + "hook_resid_post"])  # fmt: skip
        out = cache[b + "ln2.hook_normalized"]
        if b + "hook_adapter_out" in cache:  # X-MOD: ln2's module again, on ln2 + the adapter
            ln2 = model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.ln2}")
            with torch.no_grad():
                out = ln2(out + cache[b + "hook_adapter_out"])
        _close(out, cache[b + "hook_normalized_resid_post"])
    stack, labels = cache.accumulated_resid(layer=-1, return_labels=True)
    assert labels[-1] == "final_post"
    final = cache[f"blocks.{n - 1}.hook_normalized_resid_post"]
    _close(stack[-1], final)
    for call in (lambda: cache.decompose_resid(layer=-1),
                 lambda: cache.accumulated_resid(incl_mid=True),
                 lambda: cache.accumulated_resid(apply_ln=True)):  # fmt: skip
        with pytest.raises(hl.InputError, match="post-LN"):
            call()


def _check_gradients(model: hl.HookedModel, tokens: torch.Tensor) -> None:
    """Gradients of the next-token loss at blocks.{last}.hook_resid_pre and blocks.0.attn.hook_z
    equal autograd on the plain HF model (the block's input and o_proj's input, times the gate
    where attention's output is gated); a hybrid's
    first attending layer, and a model without attention the residual alone."""
    last = model.cfg.n_layers - 1
    attending = model.spec.attention_layers(model.cfg.n_layers)
    if not attending:
        return _check_resid_gradient(model, tokens)
    first = attending[0]
    resid, z = f"blocks.{last}.hook_resid_pre", f"blocks.{first}.attn.hook_z"
    gate = f"blocks.{first}.attn.hook_gate"  # o_proj reads z * gate where attention is gated
    gated = gate in model.hook_names()
    _, cache = model.run_with_cache(tokens, names_filter=[resid, z, *([gate] if gated else [])],
                                    incl_bwd=True, return_type="loss")  # fmt: skip
    hf = model.hf_model
    leaves: dict[str, torch.Tensor] = {}

    def keep_hidden(mod, args, kwargs):
        leaves[resid] = args[0] if args else kwargs["hidden_states"]

    def keep_z(mod, args, kwargs):
        leaves[z] = args[0]

    handles = [
        stream_entering(model, last).register_forward_pre_hook(keep_hidden, with_kwargs=True),
        _o_proj(model, first).register_forward_pre_hook(keep_z, with_kwargs=True),
    ]
    try:
        logits = hf(tokens, use_cache=False).logits
    finally:
        for handle in handles:
            handle.remove()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    grads = torch.autograd.grad(loss, [leaves[resid], leaves[z]])
    _close(cache[resid + "_grad"], grads[0])
    z_grad = grads[1].view(cache[z + "_grad"].shape)
    _close(cache[z + "_grad"], z_grad * cache[gate] if gated else z_grad)
    assert grads[0].abs().max() > 0


def _check_resid_gradient(model: hl.HookedModel, tokens: torch.Tensor) -> None:
    """The gradient at blocks.{last}.hook_resid_pre equals autograd on the plain HF model."""
    resid = f"blocks.{model.cfg.n_layers - 1}.hook_resid_pre"
    _, cache = model.run_with_cache(tokens, names_filter=[resid], incl_bwd=True,
                                    return_type="loss")  # fmt: skip
    kept: list[torch.Tensor] = []
    handle = stream_entering(model, -1).register_forward_pre_hook(
        lambda mod, args, kwargs: kept.append(args[0] if args else kwargs["hidden_states"]),
        with_kwargs=True,
    )
    try:
        logits = model.hf_model(tokens, use_cache=False).logits
    finally:
        handle.remove()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    (grad,) = torch.autograd.grad(loss, [kept[0]])
    _close(cache[resid + "_grad"], grad)
    assert grad.abs().max() > 0


def _check_stop_and_loss(model: hl.HookedModel, tokens: torch.Tensor, logits: torch.Tensor,
                         cache: hl.ActivationCache) -> None:  # fmt: skip
    """`stop_at_layer=1` returns the stream entering block 1; `loss_per_token` is the
    cross-entropy of each next token, its mean `return_type="loss"`."""
    with torch.no_grad():
        _close(model(tokens, stop_at_layer=1), cache["blocks.1.hook_resid_pre"])
        per_token = model(tokens, return_type="loss", loss_per_token=True)
        mean = model(tokens, return_type="loss")
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
    ).view(tokens.shape[0], -1)
    _close(per_token, expected)
    _close(mean, expected.mean())


def _check_factored_shapes(model: hl.HookedModel) -> None:
    """`model.OV` / `model.QK`: (n_layers, n_heads, d_model, d_model), where every layer
    attends and the weights are described."""
    c = model.cfg
    if model.spec.attention_layers(c.n_layers) != list(range(c.n_layers)):
        return  # a hybrid's or a state-space model's layers do not all have heads
    try:
        ov, qk = model.OV, model.QK
    except NotImplementedError as exc:  # the documented error: where the weights live
        assert "does not describe where its attention weights live" in str(exc)
        return
    except ValueError as exc:  # the documented errors: layers of different head widths, or
        # a convolution over positions between a projection and attention (Inkling)
        said = str(exc)
        assert (
            ("cannot be stacked" in said and "model.blocks[" in said)
            or ("a convolution over positions" in said and model.spec.convs)
            or ("reuses the keys and values" in said and model.spec.kv_reused)
            or "computes q, k and v in one module of its own" in said
        )
        return
    except TypeError as exc:  # a norm on z before the output projection (BitNet): no W_O
        assert "before its output\nprojection, so attn_out is not a linear map of z" in str(exc)
        assert "hook_z and hook_attn_out are exact" in str(exc)
        return
    assert ov.shape == (c.n_layers, c.n_heads, c.d_model, c.d_model)
    assert qk.shape == (c.n_layers, c.n_heads, c.d_model, c.d_model)
    assert (ov.ldim, ov.mdim, qk.mdim) == (c.d_model, c.d_head, c.d_head_qk)


def _check_patching(model: hl.HookedModel, tokens: torch.Tensor,
                    cache: hl.ActivationCache) -> None:  # fmt: skip
    """`get_act_patch_resid_pre` (batched) at one cell equals patching that cell by hand with
    `run_with_hooks`; `sweep(..., method="attribution")` gives a finite value per cell."""
    corrupted = tokens.flip(0)  # the other prompt of the pair
    layer, pos = model.cfg.n_layers - 1, 3
    target = int(tokens[0, -1])

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, target].mean()

    name = f"blocks.{layer}.hook_resid_pre"

    def by_hand(resid: torch.Tensor, hook) -> torch.Tensor:
        resid = resid.clone()
        resid[:, pos] = cache[name][:, pos]
        return resid

    with torch.no_grad():
        batched = patching.get_act_patch_resid_pre(model, corrupted, cache, metric)
        hand = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, by_hand)]))
    assert batched.shape == (model.cfg.n_layers, tokens.shape[1])
    _close(batched[layer, pos], hand)
    estimate = patching.sweep(model, tokens[:1], tokens[1:], lambda logits: logits[:, -1, target],
                              method="attribution", progress=False)  # fmt: skip
    assert estimate.values.shape == (model.cfg.n_layers, tokens.shape[1])
    assert torch.isfinite(estimate.values).all()


def _check_several_streams(model: hl.HookedModel, tokens: torch.Tensor, logits: torch.Tensor,
                           cache: hl.ActivationCache) -> None:  # fmt: skip
    """With several parallel residual streams (Gemma 3n, Hunyuan V4): what reads or stops at
    the stream says there is no point on it; patching attention's output at one cell equals
    patching it by hand; hook_z has a gradient; the loss is the logits'."""
    for read in (cache.accumulated_resid, cache.decompose_resid):
        with pytest.raises(hl.InputError, match="several parallel streams"):
            read()
    with pytest.raises(hl.HookNameError, match="parallel streams"):
        model(tokens, stop_at_layer=1)
    corrupted, layer, pos = tokens.flip(0), model.cfg.n_layers - 1, 3
    name = f"blocks.{layer}.hook_attn_out"

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, -1, 5] - logits[:, -1, 6]).mean()

    def by_hand(out: torch.Tensor, hook) -> torch.Tensor:
        out = out.clone()
        out[:, pos] = cache[name][:, pos]
        return out

    with torch.no_grad():
        batched = patching.get_act_patch_attn_out(model, corrupted, cache, metric)
        hand = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, by_hand)]))
    _close(batched[layer, pos], hand)
    z = f"blocks.{layer}.attn.hook_z"
    _, grads = model.run_with_cache(tokens, names_filter=z, incl_bwd=True, return_type="loss")
    assert grads[z + "_grad"].shape == grads[z].shape and grads[z + "_grad"].abs().max() > 0
    mean = model(tokens, return_type="loss")
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()
    )
    _close(mean, expected)


@pytest.mark.parametrize("model_type", TYPES)
def test_toolkit_on_registry_type(wrapped, model_type):
    model = wrapped(model_type)
    tokens = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    _check_qkv(model, cache)
    _check_head_results(model, tokens)
    if model.spec.streams is not None:  # several parallel streams: the parts' points alone
        return _check_several_streams(model, tokens, logits, cache)
    _check_resid_sums(model, cache)
    _check_gradients(model, tokens)
    _check_stop_and_loss(model, tokens, logits, cache)
    _check_factored_shapes(model)
    _check_patching(model, tokens, cache)
