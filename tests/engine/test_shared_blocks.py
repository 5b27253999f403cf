"""Attention inside a transformer block several layers share (Zamba, Zamba 2): each layer that
runs the shared block has that attention's internals, served at its own call, and the stream's
points; nothing attention writes reaches the stream, so its other points raise, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import _sharpen, tiny_config

from .conftest import _tokenizer

TOKENS = torch.tensor([[5, 9, 17, 33, 8, 40]])
INTERNALS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
HYBRID = ["mamba", "hybrid", "mamba", "hybrid", "hybrid"]
#: Zamba 2's adapters output as many features as attention's input has (twice d_model): so do
#: its q, k and v projections (every head its own keys and values)
ADAPTED = {"use_shared_attention_adapter": True, "num_key_value_heads": 4, "attention_head_dim": 32}
#: variant -> (model type, config changes); Zamba 2's blocks alternate (num_mem_blocks=2: its
#: layers 1 and 4 run one block, layer 3 the other) and carry per-layer adapters
VARIANTS = {
    "zamba": ("zamba", {"layers_block_type": HYBRID}),
    "zamba2": ("zamba2", {"layers_block_type": HYBRID}),
    "zamba2_adapters": ("zamba2", {"layers_block_type": HYBRID, "num_mem_blocks": 2, **ADAPTED}),
    "zamba2_rope": ("zamba2", {"layers_block_type": HYBRID, "use_mem_rope": True}),
}


def _load(model_type: str, changes: dict, folder: Path, one_object: bool = False) -> hl.HookedModel:
    """A tiny random model of `model_type` with `changes`, saved and loaded. `one_object`: the
    layers that run the same weights get one module object (as older transformers built them),
    so that the module's hooks fire at every one of their calls."""
    from transformers import AutoModelForCausalLM

    base = tiny_config(model_type).to_dict()
    base.pop("hybrid_layer_ids", None)  # follows from layers_block_type
    config = type(tiny_config(model_type))(
        **{**base, **changes, "num_hidden_layers": len(changes["layers_block_type"])}
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    _sharpen(model)
    model.save_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    if one_object:
        first: dict[int, torch.nn.Module] = {}
        for layer in hf.model.layers:
            name = next(
                (n for n in ("shared_transf", "shared_transformer") if hasattr(layer, n)), None
            )
            if name is None:
                continue
            block = getattr(layer, name)
            key = id(block.self_attn.q_proj.weight)  # tied weights: the same parameter
            setattr(layer, name, first.setdefault(key, block))
    return hl.HookedModel(hf, _tokenizer())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    made: dict[tuple[str, bool], hl.HookedModel] = {}

    def get(variant: str, one_object: bool = False) -> hl.HookedModel:
        if (variant, one_object) not in made:
            model_type, changes = VARIANTS[variant]
            folder = tmp_path_factory.mktemp(variant)
            made[variant, one_object] = _load(model_type, changes, folder, one_object)
        return made[variant, one_object]

    return get


def _hybrid(model: hl.HookedModel) -> list[int]:
    return [i for i, lay in enumerate(model.spec.layers or ()) if lay.attends_inside]


def _attention(model: hl.HookedModel, layer: int) -> torch.nn.Module:
    return model.hf_model.get_submodule(f"{model.spec.blocks}.{layer}.{model.spec.attn}")


@pytest.mark.parametrize("one_object", [False, True])
@pytest.mark.parametrize("variant", ["zamba", "zamba2", "zamba2_adapters", "zamba2_rope"])
def test_each_layer_running_the_shared_block_has_its_attention(models, variant, one_object):
    model = models(variant, one_object)
    hybrid = _hybrid(model)
    assert hybrid == [1, 3, 4]
    attns = [_attention(model, i) for i in hybrid]
    assert (attns[0] is attns[2]) == one_object  # layers 1 and 4 run the same weights
    c = model.cfg
    with torch.no_grad():
        ref = model.hf_model(TOKENS, use_cache=False).logits
        logits, cache = model.run_with_cache(TOKENS, names_filter=model.hook_names())
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    rep = c.n_heads // c.n_kv_heads
    for layer in hybrid:
        b = f"blocks.{layer}.attn."
        pattern = cache[b + "hook_pattern"]
        assert pattern.shape == (1, c.n_heads, TOKENS.shape[1], TOKENS.shape[1])
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
        v = cache[b + "hook_v"].repeat_interleave(rep, dim=2)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        torch.testing.assert_close(cache[b + "hook_z"], z, atol=1e-5, rtol=1e-4)
    # each call is its layer's: the layers running one set of weights see different inputs
    assert not torch.allclose(cache["blocks.1.attn.hook_z"], cache["blocks.4.attn.hook_z"])
    rotary = variant == "zamba2_rope"
    assert ("blocks.1.attn.hook_rot_q" in cache) == rotary
    if rotary:  # q and k are read before the rotation, the identity at position 0
        q, rot_q = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_rot_q"]
        torch.testing.assert_close(q[:, 0], rot_q[:, 0])
        assert not torch.allclose(q[:, 1:], rot_q[:, 1:])


@pytest.mark.parametrize("variant", ["zamba", "zamba2_adapters"])
def test_what_attention_would_write_to_the_stream_raises_saying_why(models, variant):
    model = models(variant)
    for name in ("hook_attn_out", "hook_mlp_out", "hook_mixer_out", "ln1.hook_normalized"):
        with pytest.raises(hl.HookNameError, match="not to the residual stream"):
            model.run_with_cache(TOKENS, names_filter=f"blocks.3.{name}")
    with pytest.raises(hl.HookNameError, match="runs a transformer block shared"):
        model.run_with_cache(TOKENS, names_filter="blocks.2.attn.hook_pattern")  # a Mamba layer
    with pytest.raises(ValueError, match="has no attention weights"):
        model.blocks[3].attn.W_Q  # noqa: B018
    assert model.cfg.n_heads == 4


def _raw_call(model: hl.HookedModel, layer: int, pre_hook) -> torch.Tensor:
    """The logits with `pre_hook` on the input of `layer`'s attention output projection, at that
    layer's call only (its module may be called by other layers too)."""
    o_proj = _attention(model, layer).o_proj
    callers = [i for i in _hybrid(model) if _attention(model, i).o_proj is o_proj]
    nth, seen = callers.index(layer), [0]

    def hook(mod, args):
        seen[0] += 1
        return (pre_hook(args[0]), *args[1:]) if seen[0] - 1 == nth else None

    handle = o_proj.register_forward_pre_hook(hook)
    try:
        return model.hf_model(TOKENS, use_cache=False).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("one_object", [False, True])
@pytest.mark.parametrize("variant", ["zamba", "zamba2_adapters"])
def test_edits_at_a_later_caller_equal_raw_hooks_at_that_call(models, variant, one_object):
    """Layer 4 is the second layer to run its shared block (after layer 1): an edit of its z
    or pattern equals the same edit made by a raw torch hook at its call, and leaves layer 1's
    call alone."""
    model = models(variant, one_object)
    c = model.cfg
    head, layer, d = 1, 4, c.d_head
    with torch.no_grad():
        base = model.hf_model(TOKENS, use_cache=False).logits

        def zero_head(z, hook):
            z[:, :, head] = 0

        ours = model.run_with_hooks(TOKENS, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head)])

        def raw_zero(z):
            z = z.clone()
            z[..., head * d : (head + 1) * d] = 0
            return z

        raw = _raw_call(model, layer, raw_zero)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)

        # the pattern: one head attends only to position 0, so its z is that position's value
        _, cache = model.run_with_cache(TOKENS, names_filter=f"blocks.{layer}.attn.hook_v")
        v0 = cache[f"blocks.{layer}.attn.hook_v"][:, 0, head // (c.n_heads // c.n_kv_heads)]

        def to_first(p, hook):
            p[:, head] = 0
            p[:, head, :, 0] = 1

        ours = model.run_with_hooks(
            TOKENS, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", to_first)]
        )

        def raw_first(z):
            z = z.clone()
            z[..., head * d : (head + 1) * d] = v0[:, None, :]
            return z

        raw = _raw_call(model, layer, raw_first)
        assert (ours - base).abs().max() > 1e-3
        torch.testing.assert_close(ours, raw, atol=1e-5, rtol=1e-4)

        # the edit at layer 4 leaves layer 1's call alone, and fires once per forward
        fired: list[str] = []

        def edit(z, hook):
            fired.append(hook.name)
            return z * 0

        names = ("blocks.1.attn.hook_z", "blocks.4.attn.hook_z")
        _, clean = model.run_with_cache(TOKENS, names_filter=names[0])
        with model.hooks(fwd_hooks=[(names[1], edit)]):
            _, edited = model.run_with_cache(TOKENS, names_filter=names[0])
        assert fired == [names[1]]
        torch.testing.assert_close(edited[names[0]], clean[names[0]])


def test_the_check_at_load_covers_the_shared_attention(tmp_path):
    """Where the shared attention's output projection does not read what the attention
    function returned (a hook changes it), the model is refused, naming it."""
    from transformers import AutoModelForCausalLM

    model_type, changes = VARIANTS["zamba"]
    _load(model_type, changes, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    o_proj = hf.model.layers[1].shared_transf.self_attn.o_proj
    o_proj.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    with pytest.raises(hl.UnsupportedModelError, match=r"o_proj's input is attn\.hook_z"):
        hl.HookedModel(hf, _tokenizer())


def test_rotated_adapted_attention_keeps_its_layers_whole(tmp_path):
    """Zamba 2 with adapters and rotary q/k: no module outputs pre-rotary q and k, so its
    hybrid layers keep only the stream's points, saying why."""
    model = _load(
        "zamba2",
        {"layers_block_type": HYBRID, "use_mem_rope": True, **ADAPTED},
        tmp_path,
    )
    assert _hybrid(model) == []
    with pytest.raises(hl.HookNameError, match="adds per-layer adapters"):
        model.run_with_cache(TOKENS, names_filter="blocks.3.attn.hook_pattern")
