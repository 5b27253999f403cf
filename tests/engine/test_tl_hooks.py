"""TransformerLens's hook API: add_hook / reset_hooks, accessors, backward hooks, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hooklens as hl
from hooklens._engine.points import is_on_demand
from hooklens._engine.sites import get_module


def _active(model):
    return [p.name for p in model.hook_dict.values() if p.active]


def test_block_accessors_reach_the_points(tiny, tokens):
    model = tiny("llama")
    assert model.blocks[0].attn.hook_z is model.hook_dict["blocks.0.attn.hook_z"]
    assert model.blocks[-1].mlp.hook_post is model.hook_dict["blocks.1.mlp.hook_post"]
    assert model.blocks[1].ln2.hook_scale is model.hook_dict["blocks.1.ln2.hook_scale"]
    assert model.ln_final.hook_normalized is model.hook_dict["ln_final.hook_normalized"]
    assert model.hook_embed is model.hook_dict["hook_embed"]
    assert len(model.blocks) == 2 and [b.layer for b in model.blocks] == [0, 1]
    with pytest.raises(AttributeError, match="Did you mean 'hook_z'"):
        _ = model.blocks[0].attn.hook_zz
    with pytest.raises(IndexError):
        _ = model.blocks[2]
    with pytest.raises(hl.HookNameError, match="rotating q and k"):
        _ = model.hook_pos_embed


def test_add_hook_and_reset_hooks(tiny, tokens):
    model = tiny("gpt2")
    seen: list[str] = []
    with torch.no_grad():
        base = model(tokens)
        model.blocks[0].attn.hook_z.add_hook(lambda x, hook: seen.append(hook.name))
        model.add_hook("blocks.1.hook_resid_pre", lambda x, hook: x * 0, is_permanent=True)
        model.add_hook(lambda n: n.endswith("hook_mlp_out"), lambda x, hook: seen.append(hook.name))
        zeroed = model(tokens)
        assert seen == ["blocks.0.attn.hook_z", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
        # as in TransformerLens, whose run_with_hooks / run_with_cache remove only the hooks of
        # their own context level: hooks added outside any block survive both and still fire
        seen.clear()
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda x, hook: None)])
        model.run_with_cache(tokens, names_filter="hook_embed")
        fired = ["blocks.0.attn.hook_z", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
        assert seen == 2 * fired
        assert sorted(_active(model)) == [
            "blocks.0.attn.hook_z", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out",
            "blocks.1.hook_resid_pre",
        ]  # fmt: skip
        model.reset_hooks()
        assert _active(model) == ["blocks.1.hook_resid_pre"]  # the permanent one stays
        torch.testing.assert_close(model(tokens), zeroed)
        model.reset_hooks(including_permanent=True)
        assert _active(model) == []
        torch.testing.assert_close(model(tokens), base)
    assert (zeroed - base).abs().max() > 1e-3
    # reset_hooks inside an open block removes its hooks too; the block's exit then copes
    with model.hooks([("hook_embed", lambda x, h: None)]):
        model.reset_hooks()
        assert _active(model) == []
    assert _active(model) == []
    with model.hooks([("hook_embed", lambda x, h: None)], reset_hooks_end=False):
        pass
    assert _active(model) == ["hook_embed"]
    model.reset_hooks()


def test_run_with_hooks_bwd_hooks_fire(tiny, tokens):
    model = tiny("llama")
    grads: dict[str, torch.Tensor] = {}

    def keep(grad, hook):
        grads[hook.name] = grad

    loss = model.run_with_hooks(
        tokens, return_type="loss",
        bwd_hooks=[("blocks.0.hook_resid_post", keep), ("blocks.1.attn.hook_pattern", keep)],
    )  # fmt: skip
    assert grads == {} and _active(model) == []  # nothing until the backward
    loss.backward()
    assert grads["blocks.0.hook_resid_post"].shape == (2, 8, 32)
    assert grads["blocks.1.attn.hook_pattern"].shape == (2, 4, 8, 8)
    # a backward function that returns a tensor replaces the gradient upstream of it
    with model.hooks(bwd_hooks=[("blocks.1.hook_resid_pre", lambda g, h: g * 0)]):
        _, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True)
    assert cache["blocks.0.hook_resid_post_grad"].abs().max() == 0
    assert cache["blocks.1.hook_resid_post_grad"].abs().max() > 0
    model.hf_model.zero_grad(set_to_none=True)


def test_hooks_removed_when_the_backward_raises(tiny, tokens):
    model = tiny("gpt2")

    def boom(grad, hook):
        raise ValueError("no")

    hooks = model.hooks(
        fwd_hooks=[("hook_embed", lambda x, h: None)], bwd_hooks=[("blocks.0.hook_mlp_out", boom)]
    )
    with pytest.raises(hl.HookError, match=r"boom.*blocks.0.hook_mlp_out.*ValueError"), hooks:
        model(tokens, return_type="loss").backward()
    assert _active(model) == []
    model(tokens, return_type="loss").backward()  # runs clean: no hook left behind
    model.hf_model.zero_grad(set_to_none=True)


_O_PROJ = {"llama": "self_attn.o_proj", "gpt2": "attn.c_proj"}  # z is this module's input


def _hf_grads(model, tokens, family):
    """Gradients of the mean next-token loss on the plain HF model, read with torch hooks."""
    spec, hf = model.spec, model.hf_model
    kept: dict[str, torch.Tensor] = {}
    handles = []

    def keep_out(name):
        def hook(mod, args, out):
            t = out[0] if isinstance(out, tuple) else out
            t.retain_grad()
            kept[name] = t

        return hook

    def keep_in(name):
        def hook(mod, args):
            args[0].retain_grad()
            kept[name] = args[0]

        return hook

    blocks = get_module(hf, spec.blocks)
    for layer, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(keep_in(f"blocks.{layer}.hook_resid_pre")))
        handles.append(block.register_forward_hook(keep_out(f"blocks.{layer}.hook_resid_post")))
        sub = block.get_submodule
        handles.append(
            sub(spec.attn_out).register_forward_hook(keep_out(f"blocks.{layer}.hook_attn_out"))
        )
        handles.append(
            sub(spec.mlp_out).register_forward_hook(keep_out(f"blocks.{layer}.hook_mlp_out"))
        )
        handles.append(
            sub(spec.mlp_down).register_forward_pre_hook(keep_in(f"blocks.{layer}.mlp.hook_post"))
        )
        handles.append(
            sub(_O_PROJ[family]).register_forward_pre_hook(keep_in(f"blocks.{layer}.attn.hook_z"))
        )
    handles.append(
        get_module(hf, spec.final_norm).register_forward_hook(keep_out("ln_final.hook_normalized"))
    )
    try:
        logits = hf(input_ids=tokens, use_cache=False).logits
        hl.loss_fn(logits, tokens).backward()
    finally:
        for h in handles:
            h.remove()
    hf.zero_grad(set_to_none=True)
    return {name: t.grad for name, t in kept.items()}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_gradients_equal_autograd_on_the_plain_model(tiny, tokens, family):
    model = tiny(family)
    expected = _hf_grads(model, tokens, family)
    _, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True)
    model.hf_model.zero_grad(set_to_none=True)
    grads = {k for k in cache if k.endswith("_grad")}
    # Every point cached by default (all but the on-demand ones) has its gradient.
    assert grads == {n + "_grad" for n in model.hook_names() if not is_on_demand(n)}
    for name, grad in expected.items():
        got = cache[name + "_grad"]
        torch.testing.assert_close(got.reshape(grad.shape), grad, atol=1e-5, rtol=1e-4)
    assert len(expected) == 6 * model.cfg.n_layers + 1
    z = cache["blocks.0.attn.hook_z_grad"]  # per head: (batch, pos, n_heads, d_head)
    assert z.shape == (2, 8, model.cfg.n_heads, model.cfg.d_head) and z.abs().max() > 0
    # caching gradients changes nothing in the forward
    with torch.no_grad():
        torch.testing.assert_close(
            cache["ln_final.hook_normalized"],
            model.run_with_cache(tokens, names_filter="ln_final.hook_normalized")[1][
                "ln_final.hook_normalized"
            ],
        )


def test_incl_bwd_needs_a_scalar(tiny, tokens):
    model = tiny("llama")
    with pytest.raises(hl.InputError, match='return_type="loss"'):
        model.run_with_cache(tokens, incl_bwd=True)
    assert _active(model) == []


class _Toy(hl.HookedRootModule):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.hook_pre = hl.hook_points.HookPoint()
        self.blocks = nn.ModuleList([nn.ModuleDict({"hook_out": hl.hook_points.HookPoint()})])
        self.setup()

    def forward(self, x):
        return self.blocks[0]["hook_out"](self.linear(self.hook_pre(x)))


def test_hooked_root_module_for_your_own_modules():
    toy = _Toy()
    x = torch.randn(2, 3, 4, requires_grad=True)
    assert list(toy.hook_dict) == ["hook_pre", "blocks.0.hook_out"]
    assert toy.hook_dict["blocks.0.hook_out"].layer() == 0
    out, cache = toy.run_with_cache(x)
    torch.testing.assert_close(cache["hook_pre"], x.detach())
    torch.testing.assert_close(cache["blocks.0.hook_out"], out.detach())
    zeroed = toy.run_with_hooks(x, fwd_hooks=[("hook_pre", lambda t, hook: t * 0)])
    torch.testing.assert_close(zeroed, toy.linear.bias.expand(2, 3, 4))
    with pytest.raises(hl.InputError, match="scalar"):
        toy.run_with_cache(x, incl_bwd=True)  # the output is (2, 3, 4), not a loss
    seen = []
    toy.add_hook("blocks.0.hook_out", lambda g, hook: seen.append(g.shape), dir="bwd")
    toy(x).sum().backward()
    assert seen == [torch.Size([2, 3, 4])]
    toy.reset_hooks()
    toy(x).sum().backward()
    assert len(seen) == 1
    with pytest.raises(hl.HookNameError, match="hook_pre"):
        toy.run_with_hooks(x, fwd_hooks=[("hook_pree", lambda t, hook: None)])


def test_hook_ctx_persists_from_forward_to_backward(tiny, tokens):
    """TransformerLens's `hook.ctx`: a dict per point that forward and backward functions share;
    emptied by reset_hooks() (clear_contexts=True is its default) and by hooks(...,
    clear_contexts=True) leaving its block, kept otherwise."""
    model = tiny("llama")
    name = "blocks.0.hook_resid_post"
    grads = []

    def keep(act, hook):
        hook.ctx["act"] = act.detach()

    def use(grad, hook):
        grads.append((grad * hook.ctx["act"]).sum())

    loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, keep)],
                                bwd_hooks=[(name, use)])  # fmt: skip
    point = model.hook_dict[name]
    assert set(point.ctx) == {"act"}  # kept after the block (clear_contexts=False)
    loss.backward()
    assert len(grads) == 1 and torch.isfinite(grads[0])
    model.reset_hooks(clear_contexts=False)
    assert "act" in point.ctx
    model.reset_hooks()
    assert point.ctx == {}
    with model.hooks([(name, keep)], clear_contexts=True):
        model(tokens)
        assert "act" in point.ctx
    assert point.ctx == {}
    model.run_with_hooks(tokens, fwd_hooks=[(name, keep)], clear_contexts=True)
    assert point.ctx == {}
    model.run_with_hooks(tokens, fwd_hooks=[(name, keep)])
    model.hook_dict[name].clear_context()
    assert point.ctx == {}
    toy = _Toy()
    toy.run_with_hooks(torch.randn(1, 2, 4), fwd_hooks=[("hook_pre", keep)])
    assert "act" in toy.hook_dict["hook_pre"].ctx
    toy.reset_hooks()
    assert toy.hook_dict["hook_pre"].ctx == {}
