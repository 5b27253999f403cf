"""Attention whose output is gated (`o_proj(z * act(g))`): `attn.hook_gate` on tiny models of
the installed transformers' registry, one per way the gate is laid out (in the q projection,
its own projection per feature, one per head) and per nonlinearity. Edits of the point equal the
same edit made with a raw torch hook on the gate's projection."""

from __future__ import annotations

import pytest
import torch

from hooklens.analysis._heads import head_results
from hooklens.architectures._registry import VOCAB

#: model type -> (gate layout, nonlinearity) its adapter must find
GATED = {
    "qwen3_next": ("q_gate_per_head", "sigmoid"),
    "afmoe": ("flat", "sigmoid"),
    "laguna": ("per_head", "softplus"),
    "bailing_hybrid": ("per_head", "sigmoid"),
    "axk2": ("q_gate_per_head", "sigmoid"),  # latent attention's q_gate_proj
}
HEAD = 1


@pytest.fixture
def gated(registry, request):
    outcome, model = registry(request.param)
    assert model is not None, f"{request.param}: {outcome.reason}"
    return model


def _tokens() -> torch.Tensor:
    return torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))


def _raw_gate_input(model, edit):
    """A forward hook on the first attending layer's gate projection applying `edit` to head
    HEAD's slice of the gate's input (written out per layout, independently of hooklens)."""
    gate, c = model.spec.attn_gate, model.cfg
    dh = c.d_head

    def hook(mod, args, out):
        out = out.clone()
        if gate.layout == "flat":
            part = out[..., HEAD * dh : (HEAD + 1) * dh]
        elif gate.layout == "per_head":
            part = out[..., HEAD : HEAD + 1]
        else:  # per head: queries (of any width) then the gate's input, the last dh features
            per_head = out.shape[-1] // c.n_heads
            part = out[..., (HEAD + 1) * per_head - dh : (HEAD + 1) * per_head]
        part.copy_(edit(part))
        return out

    return hook


def _raw_run(model, hook, o_pre_hook=None) -> torch.Tensor:
    at = model.spec.attention_layers(model.cfg.n_layers)[0]
    block = model.hf_model.get_submodule(model.spec.blocks)[at]
    handles = [block.get_submodule(model.spec.attn_gate.module).register_forward_hook(hook)]
    if o_pre_hook is not None:
        handles.append(block.get_submodule(model.spec.o_proj).register_forward_pre_hook(o_pre_hook))
    try:
        return model.hf_model(_tokens(), use_cache=False).logits
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("gated", list(GATED), indirect=True)
def test_gate_is_found_and_edits_equal_raw_hooks(gated):
    model, c = gated, gated.cfg
    assert (model.spec.attn_gate.layout, model.spec.attn_gate.act) == GATED[c.family]
    at = model.spec.attention_layers(c.n_layers)[0]
    name = f"blocks.{at}.attn.hook_gate"
    tokens = _tokens()
    with torch.no_grad():
        base = model.hf_model(tokens, use_cache=False).logits
        _, cache = model.run_with_cache(tokens, names_filter=[name])
    assert cache[name].shape == (*tokens.shape, c.n_heads, c.d_head)
    acts = {"sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus}
    closed = acts[model.spec.attn_gate.act](torch.tensor(0.0)).item()  # the gate at input 0

    def set_closed(g, hook):  # returned
        g = g.clone()
        g[:, :, HEAD] = closed
        return g

    def set_closed_in_place(g, hook):
        g[:, :, HEAD] = closed

    with torch.no_grad():
        want = _raw_run(model, _raw_gate_input(model, torch.zeros_like))
        assert (want - base).abs().max() > 1e-4
        for fn in (set_closed, set_closed_in_place):
            ours = model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])
            torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)

        # an edit of z composes with the gate: the projection reads the edited z * gate
        def zero_head0(z, hook):
            z[:, :, 0] = 0

        def raw_zero_head0(mod, args):
            x = args[0].clone()
            x[..., : c.d_head] = 0
            return (x, *args[1:])

        both = model.run_with_hooks(tokens, fwd_hooks=[
            (name, set_closed), (f"blocks.{at}.attn.hook_z", zero_head0),
        ])  # fmt: skip
        raw_both = _raw_run(model, _raw_gate_input(model, torch.zeros_like), raw_zero_head0)
    assert (both - want).abs().max() > 1e-4
    torch.testing.assert_close(both, raw_both, atol=1e-5, rtol=1e-4)
    # the layers without attention (a hybrid's mixers) have no gate
    for layer in set(range(c.n_layers)) - set(model.spec.attention_layers(c.n_layers)):
        assert f"blocks.{layer}.attn.hook_gate" not in model.hook_names()


@pytest.mark.parametrize("gated", ["qwen3_next", "afmoe"], indirect=True)
def test_head_results_and_weights_of_gated_attention(gated):
    """Per-head results are (z * gate) @ W_O and sum to attention's output minus b_O; W_Q
    reads the query rows of a q projection that also holds the gate; fold_value_biases refuses."""
    model, c = gated, gated.cfg
    at = model.spec.attention_layers(c.n_layers)[0]
    b = f"blocks.{at}."
    tokens = _tokens()
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    # what the q and output projections compute, read with raw hooks
    block = model.hf_model.get_submodule(model.spec.blocks)[at]
    seen = {}
    handles = [
        block.get_submodule(path).register_forward_hook(
            lambda m, a, out, key=key: seen.setdefault(key, out)
        )
        for key, path in (("q", model.spec.qkv[0]), ("o", model.spec.o_proj))
    ]
    try:
        with torch.no_grad():
            base = model.hf_model(tokens, use_cache=False).logits
    finally:
        for handle in handles:
            handle.remove()
    results = head_results(cache, at)  # from hook_z, hook_gate and W_O
    total = results.sum(-2) + model.weights.layer(at).b_O
    torch.testing.assert_close(total, seen["o"], atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        _, z_only = model.run_with_cache(tokens, names_filter=[b + "attn.hook_z"])
    with pytest.raises(KeyError, match="attention output is gated"):
        head_results(z_only, at)
    with pytest.raises(ValueError, match="fold_value_biases cannot fold"):
        model.processed_weights(fold_value_biases=True)
    # W_Q gives the queries the q projection computes (before any q-norm)
    w = model.weights.layer(at)
    q = torch.einsum("bpd,hde->bphe", cache[b + "ln1.hook_normalized"], w.W_Q) + w.b_Q
    rows = seen["q"].view(*tokens.shape, c.n_heads, -1)[..., : c.d_head]
    torch.testing.assert_close(q, rows, atol=1e-5, rtol=1e-4)
    # the per-head inputs recompute q and keep the gate's rows: an identity edit changes
    # nothing, and an edit of the queries' input leaves the gate as it was
    gate = b + "attn.hook_gate"
    with torch.no_grad():
        ours = model.run_with_hooks(tokens, fwd_hooks=[(b + "hook_q_input", lambda x, h: x)])
        with model.hooks(fwd_hooks=[(b + "hook_q_input", lambda x, h: x + 1)]):
            edited, after = model.run_with_cache(tokens, names_filter=[gate])
    torch.testing.assert_close(ours, base, atol=1e-5, rtol=1e-4)
    assert (edited - base).abs().max() > 1e-4
    torch.testing.assert_close(after[gate], cache[gate])


@pytest.mark.parametrize("gated", ["laguna"], indirect=True)
def test_gate_gradient_equals_autograd(gated):
    """The gradient cached at hook_gate is autograd's: d loss / d (o_proj's input) * z."""
    model, c = gated, gated.cfg
    at = model.spec.attention_layers(c.n_layers)[0]
    gate, z = f"blocks.{at}.attn.hook_gate", f"blocks.{at}.attn.hook_z"
    tokens = _tokens()
    _, cache = model.run_with_cache(tokens, names_filter=[gate, z], incl_bwd=True,
                                    return_type="loss")  # fmt: skip
    kept = []
    block = model.hf_model.get_submodule(model.spec.blocks)[at]
    o_proj = block.get_submodule(model.spec.o_proj)
    handle = o_proj.register_forward_pre_hook(lambda m, a: kept.append(a[0]))
    try:
        logits = model.hf_model(tokens, use_cache=False).logits
    finally:
        handle.remove()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    (grad,) = torch.autograd.grad(loss, [kept[0]])
    want = grad.view(cache[z].shape) * cache[z]
    assert want.abs().max() > 0
    torch.testing.assert_close(cache[gate + "_grad"], want, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("gated", ["afmoe", "laguna"], indirect=True)
def test_a_gate_the_forward_contradicts_is_no_gate(gated):
    """The nonlinearity is read from what the forward computes: where the output projection's
    input is not z * act(g) for any candidate (here a pre-hook scales it by 1.5, as a gate of
    another nonlinearity would), no gate is found, and the check at load then names the
    mismatch."""
    from hooklens.architectures import adapter_for_model

    model = gated
    at = model.spec.attention_layers(model.cfg.n_layers)[0]
    block = model.hf_model.get_submodule(model.spec.blocks)[at]
    o_proj = block.get_submodule(model.spec.o_proj)
    handle = o_proj.register_forward_pre_hook(lambda mod, args: (args[0] * 1.5, *args[1:]))
    try:
        assert adapter_for_model(model.hf_model).attn_gate is None
    finally:
        handle.remove()
    assert adapter_for_model(model.hf_model).attn_gate == model.spec.attn_gate
