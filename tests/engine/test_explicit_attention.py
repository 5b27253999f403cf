"""The explicit attention path's shortcuts: one causal mask shared by a forward's layers, and the
attention function's registry of sites, which holds neither the modules nor the wrappers."""

from __future__ import annotations

import gc

import pytest
import torch

import hooklens as hl
from hooklens._engine import attention
from hooklens._engine.explicit_attention import additive_mask, causal_mask, explicit_attention

from .conftest import build_hf


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling: float):
    """Causal attention written out: (z (batch, q, heads, d_head), pattern)."""
    q_len, k_len = q.shape[2], k.shape[2]
    scores = (q @ k.transpose(2, 3)) * scaling
    allowed = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
    pattern = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return (pattern @ v).transpose(1, 2), pattern


def test_causal_mask_is_made_once_per_shape_and_is_right_after_another_shape():
    cpu = torch.device("cpu")
    first = causal_mask(3, 5, torch.float32, cpu)
    assert causal_mask(3, 5, torch.float32, cpu) is first  # the layers of one forward share it
    lowest = torch.finfo(torch.float32).min
    # query i (the last 3 of 5 positions) sees keys 0..i+2
    want = torch.tensor([[0, 0, 0, lowest, lowest], [0, 0, 0, 0, lowest], [0, 0, 0, 0, 0]])
    assert torch.equal(first, want)
    other = causal_mask(4, 4, torch.float32, cpu)
    assert other.shape == (4, 4) and torch.equal(other, torch.full((4, 4), lowest).triu(1))
    assert causal_mask(3, 5, torch.float64, cpu).dtype == torch.float64
    assert torch.equal(causal_mask(3, 5, torch.float32, cpu), want)  # made again, the same
    assert torch.equal(first, want)  # a mask handed out is never written to


def test_explicit_attention_matches_causal_attention_across_shapes_and_grad_modes():
    """Shapes alternate (the kept mask is another shape's each time), in inference mode and
    with gradients: a mask made in inference mode serves a forward with gradients."""
    torch.manual_seed(0)
    module = torch.nn.Module()
    for q_len, k_len in [(4, 4), (1, 5), (4, 4), (3, 6), (70, 70), (4, 4)]:
        q, k, v = (torch.randn(2, 3, n, 8) for n in (q_len, k_len, k_len))
        want_z, want_pattern = _reference(q, k, v, 0.3)
        given = q_len not in (1, k_len)  # else no mask: causal (the kept mask), or none needed
        mask = causal_mask(q_len, k_len, q.dtype, q.device) if given else None
        with torch.inference_mode():
            z, pattern = explicit_attention(module, q, k, v, mask, 0.3, 0.0, None, None)
        torch.testing.assert_close(pattern, want_pattern)
        torch.testing.assert_close(z, want_z)
        qg = q.clone().requires_grad_()
        z, _ = explicit_attention(module, qg, k, v, mask, 0.3, 0.0, None, None)
        z.sum().backward()
        ref_q = q.clone().requires_grad_()
        _reference(ref_q, k, v, 0.3)[0].sum().backward()
        torch.testing.assert_close(qg.grad, ref_q.grad)


def test_half_precision_pattern_keeps_the_float32_product_unless_hooked():
    """In bfloat16 the pattern is a float32 softmax; z multiplies that float32 pattern with v
    unless the pattern is hooked (then the point's bfloat16 tensor, as documented)."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 5, 8, dtype=torch.bfloat16) for _ in range(3))
    z, pattern = explicit_attention(torch.nn.Module(), q, k, v, None, 0.35, 0.0, None, None)
    assert z.dtype == pattern.dtype == torch.bfloat16 and z.is_contiguous()
    scores = (q.float() @ k.float().transpose(2, 3)) * 0.35
    full = scores + causal_mask(5, 5, torch.float32, q.device)
    want = (full.softmax(-1) @ v.float()).transpose(1, 2).to(torch.bfloat16)
    torch.testing.assert_close(z, want, atol=0, rtol=0)


def test_the_sites_registry_lets_go_of_models_and_wrappers(tmp_path):
    hf = build_hf("gpt2")
    model = hl.HookedModel(hf)
    ids = [id(hf.transformer.h[i].attn) for i in range(len(hf.transformer.h))]
    assert all(i in attention._SITES for i in ids)
    toks = torch.tensor([[1, 2, 3]])
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    assert len(cache) == len(ids)
    del model, cache  # a cache keeps its model
    gc.collect()
    # the wrapper is gone: its sites no longer serve the modules (which HF still runs)
    assert all(ref() is None for i in ids for ref in attention._SITES[i])
    hf(toks)
    again = hl.HookedModel(hf)  # wrapping again: the dead references are dropped
    assert all(len(attention._SITES[i]) == 1 for i in ids)
    del again, hf
    gc.collect()
    assert not any(i in attention._SITES for i in ids)


def test_a_call_shares_one_causal_mask_over_its_layers_and_keeps_none_after(tiny):
    from hooklens._engine import explicit_attention as explicit

    model = tiny("gpt2")
    seen: list[torch.Tensor] = []

    def look(pattern: torch.Tensor, hook) -> None:
        kept = explicit._kept
        assert kept is not None and kept[0][:3] == ("causal", 5, 5)
        seen.append(kept[1])

    toks = torch.tensor([[1, 2, 3, 4, 5]])
    logits = model.run_with_hooks(toks, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), look)])
    assert len(seen) == model.cfg.n_layers and all(m is seen[0] for m in seen)
    assert explicit._kept is None  # dropped when the call's attention hooks went
    torch.testing.assert_close(logits, model(toks))


def test_a_boolean_mask_is_made_additive_once_per_mask_object():
    lowest = torch.finfo(torch.float32).min
    allowed = torch.tensor([[[[True, True, False, True]]]])
    first = additive_mask(allowed, 4, torch.float32, lowest)
    assert torch.equal(first, torch.tensor([[[[0.0, 0.0, lowest, 0.0]]]]))
    assert additive_mask(allowed, 4, torch.float32, lowest) is first
    assert torch.equal(additive_mask(allowed, 3, torch.float32, lowest), first[..., :3])
    other = torch.tensor([[[[False, True, True, True]]]])  # another object: made anew
    assert torch.equal(
        additive_mask(other, 4, torch.float32, lowest)[..., 0], torch.tensor([[[lowest]]])
    )


def test_a_padded_batch_shares_one_additive_mask_over_its_layers(tiny):
    from hooklens._engine import explicit_attention as explicit

    model = tiny("gpt2")
    toks = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])  # the second padded on the left
    seen: list[torch.Tensor] = []

    def look(pattern: torch.Tensor, hook) -> None:
        kept = explicit._kept
        assert kept is not None and kept[0][0] == "boolean"
        seen.append(kept[1])

    pattern_of = lambda n: n.endswith("hook_pattern")  # noqa: E731
    logits = model.run_with_hooks(toks, fwd_hooks=[(pattern_of, look)], attention_mask=mask)
    assert len(seen) == model.cfg.n_layers and all(m is seen[0] for m in seen)
    assert explicit._kept is None
    real = mask.bool()  # a pad's own row attends to nothing: sdpa and the softmax differ there
    torch.testing.assert_close(logits[real], model(toks, attention_mask=mask)[real])
    _, cache = model.run_with_cache(toks, names_filter=pattern_of, attention_mask=mask)
    assert torch.all(cache["blocks.0.attn.hook_pattern"][1, :, :, 0][:, 1:] == 0)  # the pad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_scores_show_minus_infinity_and_change_nothing(dtype):
    """hook_attn_scores shows masked cells as -inf (TransformerLens's IGNORE); the pattern is
    the softmax of what it showed, and a function that only reads the scores leaves z what it
    is with the pattern alone hooked (masked cells go on at the dtype's lowest value). In half
    precision the computation goes on from the scores in the model's dtype, as shown."""
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, 4, 8, dtype=dtype) for _ in range(3))

    class Point:
        def __init__(self, active: bool) -> None:
            self.active = active

        def fire(self, x: torch.Tensor) -> torch.Tensor:
            self.seen = x
            return x

    class Site:
        def __init__(self, scores: bool) -> None:
            self.scores, self.pattern, self.sink = Point(scores), Point(True), None

    read, alone = Site(scores=True), Site(scores=False)
    z, _ = explicit_attention(torch.nn.Module(), q, k, v, None, 0.35, 0.0, None, read)  # type: ignore[arg-type]
    z_alone, _ = explicit_attention(torch.nn.Module(), q, k, v, None, 0.35, 0.0, None, alone)  # type: ignore[arg-type]
    seen = read.scores.seen
    assert seen.dtype == dtype
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    assert torch.all(seen[..., ~causal] == float("-inf"))
    assert torch.isfinite(seen[..., causal]).all()
    pattern = read.pattern.seen
    torch.testing.assert_close(pattern, torch.softmax(seen.float(), -1).to(dtype), rtol=0, atol=0)
    if dtype == torch.float32:
        assert torch.equal(z, z_alone) and torch.equal(pattern, alone.pattern.seen)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_an_in_place_edit_of_scores_is_honoured(tiny, mode):
    """An edit made in place (nothing returned) is seen, with gradients off or in inference
    mode (whose tensors keep no version counter)."""
    model = tiny("gpt2")
    toks = torch.tensor([[1, 2, 3, 4]])

    def silence_key_0(scores, hook):
        scores[:, :, 1:, 0] = float("-inf")

    name = "blocks.0.attn.hook_attn_scores"
    with getattr(torch, mode)():
        base = model(toks)
        with model.hooks([(name, silence_key_0)]):
            edited, cache = model.run_with_cache(toks, names_filter="blocks.0.attn.hook_pattern")
    assert (cache["blocks.0.attn.hook_pattern"][:, :, 1:, 0] == 0).all()
    assert (edited - base).abs().max() > 1e-4


def test_a_pad_rows_pattern_is_zero_and_its_output_finite(tiny):
    """A left pad's own row has no key to attend: all -inf, whose softmax is NaN (which would
    spread through the next layers' keys). As in TransformerLens its pattern row is 0, whether
    the scores were only read or an edit returned the -inf cells it was shown."""
    model = tiny("gpt2")
    toks = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    scores_of = lambda n: n.endswith("hook_attn_scores")  # noqa: E731
    with torch.no_grad():
        read = model.run_with_hooks(
            toks, fwd_hooks=[(scores_of, lambda s, hook: None)], attention_mask=mask
        )
        edited = model.run_with_hooks(
            toks, fwd_hooks=[(scores_of, lambda s, hook: s * 1.0)], attention_mask=mask
        )
    assert torch.isfinite(edited).all()
    torch.testing.assert_close(edited, read, rtol=0, atol=0)
    pattern_of = lambda n: n.endswith("hook_pattern")  # noqa: E731
    _, cache = model.run_with_cache(toks, names_filter=pattern_of, attention_mask=mask)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.all(pattern[1, :, :2] == 0)  # the pads' own rows
    torch.testing.assert_close(pattern[1, :, 2:].sum(-1), torch.ones_like(pattern[1, :, 2:, 0]))


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("in_place", [True, False])
def test_an_edit_masking_a_whole_row_gives_a_zero_pattern_row(tiny, mode, in_place):
    """With no mask (a causal run) every row has a key, unless an edit takes them all away:
    then, as in TransformerLens, that row of the pattern is 0 (not NaN), in place or returned."""
    model = tiny("gpt2")
    toks = torch.tensor([[1, 2, 3, 4]])

    def mask_row_2(scores, hook):
        if in_place:
            scores[:, :, 2] = float("-inf")
            return None
        return torch.cat([scores[:, :, :2], torch.full_like(scores[:, :, 2:3], -torch.inf),
                          scores[:, :, 3:]], dim=2)  # fmt: skip

    with getattr(torch, mode)(), model.hooks([("blocks.0.attn.hook_attn_scores", mask_row_2)]):
        logits, cache = model.run_with_cache(toks, names_filter="blocks.0.attn.hook_pattern")
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.all(pattern[:, :, 2] == 0)
    assert torch.isfinite(logits).all()
