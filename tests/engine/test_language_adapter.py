"""X-MOD's post-LN blocks add a per-language adapter after the MLP: ln2's module normalizes
hook_resid_post (the ln2 points), the adapter of the config's default language reads that
(`hook_adapter_out` is its output), and the same module normalizes their sum into the block's
output. The points sit on the right call of modules the block calls twice."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import hooklens as hl
from hooklens.architectures._registry import VOCAB, tiny_config

TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(7))


def _xmod(**config: object) -> torch.nn.Module:
    c = tiny_config("xmod")
    for key, value in {"languages": ["en_XX", "de_DE"], "default_language": "en_XX",
                       **config}.items():  # fmt: skip
        setattr(c, key, value)
    return AutoModelForCausalLM.from_config(c).eval()


@pytest.fixture(scope="module")
def xmod():
    model = hl.HookedModel(_xmod())
    assert model.spec.post_ln and model.spec.adapter_out is not None
    return model


def _output(model, layer):
    return model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.output")


def test_adapter_out_is_the_default_languages_adapter_on_ln2(xmod):
    with torch.no_grad():
        logits, cache = xmod.run_with_cache(TOKENS)
        torch.testing.assert_close(logits, xmod.hf_model(TOKENS, use_cache=False).logits)
        for layer in range(xmod.cfg.n_layers):
            b, out = f"blocks.{layer}.", _output(xmod, layer)
            normed = cache[b + "ln2.hook_normalized"]
            torch.testing.assert_close(normed, out.LayerNorm(cache[b + "hook_resid_post"]))
            adapter = out.adapter_modules["en_XX"](normed)
            torch.testing.assert_close(cache[b + "hook_adapter_out"], adapter)
            torch.testing.assert_close(
                out.LayerNorm(normed + adapter), cache[b + "hook_normalized_resid_post"]
            )
        # another default language picks its adapter, in the model and in the point
        xmod.hf_model.set_default_language("de_DE")
        try:
            _, other = xmod.run_with_cache(TOKENS, names_filter=["blocks.0.hook_adapter_out"])
            want = _output(xmod, 0).adapter_modules["de_DE"](cache["blocks.0.ln2.hook_normalized"])
        finally:
            xmod.hf_model.set_default_language("en_XX")
    torch.testing.assert_close(other["blocks.0.hook_adapter_out"], want)


def _raw(model, module, hook):
    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model.hf_model(TOKENS, use_cache=False).logits
    finally:
        handle.remove()


def test_edits_equal_raw_hooks_on_the_modules(xmod):
    """Zeroing hook_adapter_out is zeroing the adapter's output; adding to hook_resid_post (the
    first call of ln2's module) is adding to the MLP's output before the residual is added."""
    gen = torch.Generator().manual_seed(8)
    noise = torch.randn(*TOKENS.shape, xmod.cfg.d_model, generator=gen)
    out = _output(xmod, 0)
    with torch.no_grad():
        base = xmod(TOKENS)
        zeroed = xmod.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.0.hook_adapter_out", lambda x, hook: torch.zeros_like(x))]
        )
        moved = xmod.run_with_hooks(
            TOKENS, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: x + noise)]
        )
    assert (zeroed - base).abs().max() > 1e-3 and (moved - base).abs().max() > 1e-3
    adapter = out.adapter_modules["en_XX"]
    torch.testing.assert_close(zeroed, _raw(xmod, adapter, lambda m, a, o: torch.zeros_like(o)))
    torch.testing.assert_close(moved, _raw(xmod, out.dense, lambda m, a, o: o + noise))


def test_lang_ids_is_never_dropped(xmod):
    with pytest.raises(hl.ArgumentError, match="set_default_language"):
        xmod(TOKENS, lang_ids=torch.zeros(2, dtype=torch.long))


def test_other_models_have_no_adapter_point(registry):
    _, bert = registry("bert")
    with pytest.raises(hl.HookNameError, match="no language adapter"):
        bert.run_with_cache(TOKENS, names_filter=["blocks.0.hook_adapter_out"])


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"ln_before_adapter": False}, "ln_before_adapter=False"),
        ({"pre_norm": True}, "pre_norm=True"),
        ({"adapter_layer_norm": True}, "adapter_layer_norm=True"),
        ({"default_language": None}, "set_default_language('en_XX')"),
    ],
)
def test_adapter_configurations_the_points_do_not_describe_are_refused(config, says):
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel(_xmod(**config))
    assert says in str(info.value)
