"""Models whose blocks the template cannot take apart, wrapped with each block kept whole: the
residual stream's points alone, every other point raising with the template's reason."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import build

from .conftest import _tokenizer, assert_full_pass_sweep, raw_edit_logits

#: type -> words of why its blocks are kept whole
WHOLE = {
    "zamba": ["runs a transformer block shared", "Mamba mixer's input"],
    "zamba2": ["runs a transformer block shared", "Mamba mixer's input"],
    # num_hidden_layers=4 counts attention sublayers, two in each of its 2 layers
    "longcat_flash": ["each hold 2 attention sublayers", "(mlp)", "kept whole as one block"],
}
TOKENS = torch.tensor([[5, 9, 17, 33, 8]])


@pytest.mark.parametrize(("model_type", "says"), WHOLE.items())
def test_blocks_kept_whole_have_the_stream_and_say_why(registry, model_type, says):
    outcome, model = registry(model_type)
    assert model is not None, outcome
    assert all(lay.kind == "block" for lay in model.spec.layers or ())
    n = model.cfg.n_layers
    # a layer with no attention inside (Zamba's Mamba layers; its hybrid layers have
    # attention's internals, tests/engine/test_shared_blocks.py)
    plain = max(i for i, lay in enumerate(model.spec.layers) if not lay.attends_inside)
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter=f"blocks.{plain}.attn.hook_pattern")
    for words in says:
        assert words in str(info.value)
    # the stream's points: what each block reads and writes, and the logit lens on them
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
        ref = model.hf_model(TOKENS, use_cache=False).logits
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    stack = cache.accumulated_resid(layer=-1)
    assert stack.shape == (n + 1, 1, TOKENS.shape[1], model.cfg.d_model)
    torch.testing.assert_close(stack[-1], cache[f"blocks.{n - 1}.hook_resid_post"])
    final = cache.apply_ln_to_stack(stack[-1:], layer=-1)
    torch.testing.assert_close(model.unembed_resid(cache[f"blocks.{n - 1}.hook_resid_post"]), ref)
    assert final.shape == (1, 1, TOKENS.shape[1], model.cfg.d_model)
    # what each block adds has no points: sums of parts say so
    with pytest.raises(hl.InputError, match="kept whole"):
        cache.decompose_resid()
    with pytest.raises(ValueError, match="has no MLP weights"):
        model.blocks[0].mlp.W_in  # noqa: B018


def test_lens_view_of_blocks_kept_whole_reads_what_each_block_changes(registry):
    """The residual view's contributions on blocks kept whole: block 0's input, then each
    block's output minus its input, summing to the final stream along its own direction."""
    import numpy as np

    from hooklens.vis._lens import compute_lens

    _, model = registry("zamba2")
    lens = compute_lens(model, TOKENS)
    n = model.cfg.n_layers
    assert lens.contrib_labels == ["0_resid_pre", *(f"{i}_block" for i in range(n))]
    np.testing.assert_allclose(lens.contrib.sum(0), lens.norms[-1], rtol=1e-4, atol=1e-4)
    assert lens.max_logit_diff < 1e-4


def test_sweep_over_blocks_kept_whole_equals_patching_by_hand(registry):
    """A resid_pre sweep runs full passes (no keys/values read) and equals patching each cell."""
    _, model = registry("zamba2")
    assert_full_pass_sweep(model, "layers are kept whole")


def test_blocks_kept_whole_are_checked_too(tmp_path):
    """Keeping blocks whole is checked like any derived adapter: where the stream between
    blocks is not what one block writes and the next reads (here a hook adds to block 1's
    input), the model is refused with the template's reason and what did not match."""
    import transformers

    assert build("zamba2", tmp_path) is None
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    hf.model.layers[1].register_forward_pre_hook(
        lambda m, args, kwargs: ((args[0] + 1, *args[1:]), kwargs), with_kwargs=True
    )
    with pytest.raises(hl.UnsupportedModelError) as info:
        hl.HookedModel(hf, _tokenizer())
    message = str(info.value)
    assert "runs a transformer block shared" in message
    assert "Nor can hooklens keep its blocks whole" in message
    assert "blocks.0.hook_resid_post enters block 1" in message


def test_layers_holding_several_sublayers_are_the_blocks(registry):
    """LongCat-Flash counts attention sublayers in num_hidden_layers (two per layer, with a
    mixture of experts shared by both): each of its layers is one block kept whole, its
    stream's points what the layer reads and writes, and an edit there acts as a raw torch
    hook on the layer does."""
    _, model = registry("longcat_flash")
    assert model is not None
    layers = model.hf_model.model.layers
    assert model.cfg.n_layers == len(layers) == model.hf_model.config.num_hidden_layers // 2
    seen: dict[str, torch.Tensor] = {}
    handles = [
        layers[1].register_forward_pre_hook(
            lambda m, args, kwargs: seen.update(pre=args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True,
        ),
        layers[1].register_forward_hook(lambda m, args, out: seen.update(post=out)),
    ]
    try:
        with torch.no_grad():
            _, cache = model.run_with_cache(TOKENS)
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(cache["blocks.1.hook_resid_pre"], seen["pre"])
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"], seen["post"])

    def add(x: torch.Tensor, hook: object = None) -> torch.Tensor:
        return x + 0.5

    with torch.no_grad():
        ours = model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.1.hook_resid_pre", add)])
    # block 1 reads what layer 0 writes: the same edit as a raw hook on layer 0's output
    raw = raw_edit_logits(model.hf_model, layers[0], add, TOKENS)
    torch.testing.assert_close(ours, raw)
