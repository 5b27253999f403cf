"""The TransformerLens toolkit on every wrapped registry type (tiny random models, biases random
too): weights in TransformerLens's shapes reproduce q/k/v, per-head results sum to the
attention's output, the residual decompositions sum to the final stream, and gradients cached
with `incl_bwd=True` equal autograd on the plain Hugging Face model."""

from __future__ import annotations

import copy

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import VOCAB

from .conftest import randomize_biases
from .test_registry import TYPES, _o_proj


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=2e-4, rtol=2e-4)


def _with_random_biases(model: hl.HookedModel) -> hl.HookedModel:
    """A copy whose biases are random (HF initializes them to zero, hiding a misplaced one)."""
    hf = copy.deepcopy(model.hf_model)
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
        x = cache[source] if source in names else cache[block + "hook_resid_pre"]
        try:
            w = model.weights.layer(layer)
            qkv = [(w.W_Q, w.b_Q), (w._W_K, w._b_K), (w._W_V, w._b_V)]
        except NotImplementedError as exc:  # the documented error: where the weights live
            assert "does not describe where its attention weights live" in str(exc)
            return
        for letter, (weight, bias) in zip("qkv", qkv, strict=True):
            got = torch.einsum("bpd,hde->bphe", x, weight) + bias
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
    final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    mid = "blocks.0.hook_resid_mid" in model.hook_names()  # none with a parallel residual
    stack, labels = cache.accumulated_resid(layer=-1, incl_mid=mid, return_labels=True)
    assert labels[-1] == "final_post"
    _close(stack[-1], final)
    parts = cache.decompose_resid(layer=-1)
    _close(parts.sum(0), final)


def _check_gradients(model: hl.HookedModel, tokens: torch.Tensor) -> None:
    """Gradients of the next-token loss at blocks.{last}.hook_resid_pre and blocks.0.attn.hook_z
    equal autograd on the plain HF model (the block's input and o_proj's input); a hybrid's
    first attending layer, and a model without attention the residual alone."""
    last = model.cfg.n_layers - 1
    attending = model.spec.attention_layers(model.cfg.n_layers)
    if not attending:
        return _check_resid_gradient(model, tokens)
    first = attending[0]
    resid, z = f"blocks.{last}.hook_resid_pre", f"blocks.{first}.attn.hook_z"
    _, cache = model.run_with_cache(tokens, names_filter=[resid, z], incl_bwd=True,
                                    return_type="loss")  # fmt: skip
    hf = model.hf_model
    leaves: dict[str, torch.Tensor] = {}

    def keep_hidden(mod, args, kwargs):
        leaves[resid] = args[0] if args else kwargs["hidden_states"]

    def keep_z(mod, args, kwargs):
        leaves[z] = args[0]

    handles = [
        hf.get_submodule(model.spec.blocks)[last].register_forward_pre_hook(
            keep_hidden, with_kwargs=True
        ),
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
    _close(cache[z + "_grad"], grads[1].view(cache[z + "_grad"].shape))
    assert grads[0].abs().max() > 0


def _check_resid_gradient(model: hl.HookedModel, tokens: torch.Tensor) -> None:
    """The gradient at blocks.{last}.hook_resid_pre equals autograd on the plain HF model."""
    resid = f"blocks.{model.cfg.n_layers - 1}.hook_resid_pre"
    _, cache = model.run_with_cache(tokens, names_filter=[resid], incl_bwd=True,
                                    return_type="loss")  # fmt: skip
    kept: list[torch.Tensor] = []
    block = model.hf_model.get_submodule(model.spec.blocks)[-1]
    handle = block.register_forward_pre_hook(
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


@pytest.mark.parametrize("model_type", TYPES)
def test_toolkit_on_registry_type(wrapped, model_type):
    model = wrapped(model_type)
    tokens = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    _check_qkv(model, cache)
    _check_head_results(model, tokens)
    _check_resid_sums(model, cache)
    _check_gradients(model, tokens)
