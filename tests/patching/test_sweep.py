"""Batched sweeps equal one forward pass per patch; errors explain; no hook is left behind."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import hooklens as hl
from hooklens import patching
from hooklens.metrics import TokenMetric

from .conftest import prompt_pair

ALL_POINTS = ["resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "pattern", "q", "k", "v"]
METRIC = TokenMetric("logit_diff", 5, 9)


def _has_point(model: Any, point: str) -> bool:
    return patching.POINTS[point][0].format(layer=0) in model.hook_dict


def _loop(model: Any, base: torch.Tensor, source: torch.Tensor, result: Any) -> torch.Tensor:
    """The reference: one ordinary forward pass per cell."""
    names = sorted({result.patches(i, 0)[0].name for i in range(len(result.rows))})
    _, source_cache = model.run_with_cache(source, names_filter=names)
    out = torch.empty_like(result.raw)
    for i in range(len(result.rows)):
        for j in range(len(result.columns)):
            logits = patching.patch(model, base, source_cache, result.patches(i, j))
            out[i, j] = METRIC(logits)[0]
    return out


@pytest.mark.parametrize("point", ALL_POINTS)
@pytest.mark.parametrize("batch_size", ["auto", 3])
def test_sweep_equals_one_forward_per_patch(tiny_model: Any, point: str, batch_size: Any) -> None:
    clean, corrupted = prompt_pair()
    if not _has_point(tiny_model, point):  # e.g. resid_mid with a parallel residual (Pythia)
        with pytest.raises(hl.HookNameError, match="parallel"):
            patching.sweep(tiny_model, clean, corrupted, METRIC, point=point, progress=False)
        return
    result = patching.sweep(tiny_model, clean, corrupted, METRIC, point=point,
                            batch_size=batch_size, normalize=False, progress=False)  # fmt: skip
    expected_columns = tiny_model.cfg.n_heads if patching.POINTS[point][1] == "head" else 9
    if point in ("k", "v"):
        expected_columns = tiny_model.cfg.n_kv_heads
    assert result.values.shape == (tiny_model.cfg.n_layers, expected_columns)
    reference = _loop(tiny_model, corrupted, clean, result)
    torch.testing.assert_close(result.raw, reference, atol=1e-4, rtol=0)
    assert result.raw.std() > 0  # the patches do change the metric


def test_noising_equals_the_loop_and_normalises(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    result = patching.sweep(tiny_model, clean, corrupted, METRIC, direction="noise",
                            progress=False, layers=[1, 3], positions=[0, 2, 5, 8])  # fmt: skip
    assert result.rows == [1, 3] and result.columns == [0, 2, 5, 8]
    torch.testing.assert_close(
        result.raw, _loop(tiny_model, clean, corrupted, result), atol=1e-4, rtol=0
    )
    expected = (result.raw - result.corrupted_value) / (result.clean_value - result.corrupted_value)
    torch.testing.assert_close(result.values, expected)
    assert result.clean_value == pytest.approx(
        float(METRIC(tiny_model(clean).detach())[0]), abs=1e-5
    )


def test_patches_before_the_first_difference_change_nothing(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()  # they first differ at position 2
    result = patching.sweep(tiny_model, clean, corrupted, METRIC, progress=False)
    torch.testing.assert_close(result.values[:, :2], torch.zeros(4, 2), atol=1e-4, rtol=0)
    # Patching the whole clean residual stream at layer 0, position by position, is exact at
    # the last position only when it is the only difference; here it must at least move.
    assert result.values[0, 2:].abs().max() > 1e-3


def test_cells_that_patch_in_equal_values_take_no_pass(tiny_model: Any) -> None:
    """Before the first differing token (position 2) every point's clean and corrupted values
    are equal, as are layer 0's residuals at positions with the same token: those cells are
    the corrupted run itself, so they take its metric value and no forward pass."""
    clean, corrupted = prompt_pair()
    block0 = tiny_model.hf_model.get_submodule(tiny_model.spec.blocks)[0]
    calls: list[tuple[int, int]] = []
    handle = block0.register_forward_hook(lambda m, a, o: calls.append(tuple(a[0].shape[:2])))
    try:
        early = patching.sweep(tiny_model, clean, corrupted, METRIC, positions=[0, 1],
                               normalize=False, progress=False)  # fmt: skip
    finally:
        handle.remove()
    assert early.raw.eq(early.corrupted_value).all()
    assert set(calls) == {(1, 9)} and len(calls) <= 3  # the unpatched runs only
    result = patching.sweep(tiny_model, clean, corrupted, METRIC, normalize=False, progress=False)
    same_token = [p for p in range(9) if clean[0, p] == corrupted[0, p]]
    assert result.raw[0, same_token].eq(result.corrupted_value).all()
    torch.testing.assert_close(result.raw, _loop(tiny_model, corrupted, clean, result), atol=1e-4,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize("point", ["z", "pattern", "v"])
def test_head_cells_run_from_the_first_difference(tiny_model: Any, point: str) -> None:
    """A head's patch covers every position, but its clean and corrupted values agree before
    the prompts' first differing token (position 2): its passes start there."""
    clean, corrupted = prompt_pair()
    blocks = tiny_model.hf_model.get_submodule(tiny_model.spec.blocks)
    calls: list[tuple[int, int]] = []
    handles = [
        block.register_forward_pre_hook(
            lambda m, a, kw: calls.append(tuple((a[0] if a else kw["hidden_states"]).shape[:2])),
            with_kwargs=True,
        )
        for block in blocks
    ]
    try:
        result = patching.sweep(tiny_model, clean, corrupted, METRIC, point=point,
                                normalize=False, progress=False)  # fmt: skip
    finally:
        for handle in handles:
            handle.remove()
    patched = {shape for shape in calls if shape != (1, 9)}  # not an unpatched run
    assert patched and all(rows == 9 - 2 for _, rows in patched)
    torch.testing.assert_close(result.raw, _loop(tiny_model, corrupted, clean, result), atol=1e-4,
                               rtol=0)  # fmt: skip


def test_custom_metric_over_all_positions(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()

    def mean_logit(logits: torch.Tensor) -> torch.Tensor:  # one scalar for the whole batch
        return logits[:, 3, 7].mean()

    result = patching.sweep(tiny_model, clean, corrupted, mean_logit, normalize=False,
                            progress=False)  # fmt: skip
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(4)]
    _, cache = tiny_model.run_with_cache(clean, names_filter=names)
    for i, j in [(0, 2), (2, 3), (3, 8)]:
        logits = patching.patch(tiny_model, corrupted, cache, result.patches(i, j)).detach()
        assert float(result.raw[i, j]) == pytest.approx(float(mean_logit(logits)), abs=1e-4)
    # Positions after 3 cannot change position 3's logits (causal attention).
    torch.testing.assert_close(result.raw[:, 4:], result.raw[:, 4 : 4 + 1].expand(-1, 5))


def test_patch_accepts_tuples_and_applies_patches_together(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    _, cache = tiny_model.run_with_cache(clean, names_filter="blocks.0.hook_resid_pre")
    patches = [("blocks.0.hook_resid_pre", {"pos": 2}), ("blocks.0.hook_resid_pre", {"pos": 5})]
    both = patching.patch(tiny_model, corrupted, cache, patches)
    # Patching both differing positions at layer 0 turns the corrupted run into the clean one.
    torch.testing.assert_close(both, tiny_model(clean), atol=1e-4, rtol=0)


def test_prompts_of_different_lengths_show_both_token_lists(tiny_model: Any) -> None:
    clean, _ = prompt_pair()
    with pytest.raises(ValueError, match=r"same number of tokens.*clean has 9.*corrupted has 7"):
        patching.sweep(tiny_model, clean, clean[:, :7], METRIC, progress=False)
    try:
        patching.sweep(tiny_model, clean, clean[:, :7], METRIC, progress=False)
    except ValueError as error:
        assert "pos  clean" in str(error) and "   <-" in str(error)


def test_bad_metric_layers_positions_and_heads_are_explained(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    with pytest.raises(ValueError, match="one number per prompt"):
        patching.sweep(tiny_model, clean, corrupted, lambda logits: logits[:, -1], progress=False)
    with pytest.raises(IndexError, match="layer 7 is out of range"):
        patching.sweep(tiny_model, clean, corrupted, METRIC, layers=[7], progress=False)
    with pytest.raises(IndexError, match="position 9 is out of range"):
        patching.sweep(tiny_model, clean, corrupted, METRIC, positions=[9], progress=False)
    with pytest.raises(ValueError, match="per head; pass heads="):
        patching.sweep(
            tiny_model, clean, corrupted, METRIC, point="z", positions=[1], progress=False
        )
    with pytest.raises(ValueError, match="unknown point 'resid'"):
        patching.sweep(tiny_model, clean, corrupted, METRIC, point="resid", progress=False)  # type: ignore[arg-type]


def test_resid_mid_on_a_parallel_residual_model_says_why(tmp_path: Any) -> None:
    from .conftest import load_tiny

    model = load_tiny("gpt_neox", tmp_path)
    clean, corrupted = prompt_pair()
    with pytest.raises(hl.HookNameError, match="parallel"):
        patching.sweep(model, clean, corrupted, METRIC, point="resid_mid", progress=False)


def test_interrupting_a_sweep_leaves_no_hooks(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    before = tiny_model(corrupted)
    unembed = tiny_model.hf_model.get_submodule(tiny_model.spec.unembed)
    seen = []

    def stop(partial: Any, done: int, total: int) -> None:
        seen.append((done, total, int(torch.isnan(partial.raw).sum())))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        patching.sweep(tiny_model, clean, corrupted, METRIC, batch_size=2, progress=True,
                       on_batch=stop)  # fmt: skip
    assert seen and seen[0][0] < seen[0][1] and seen[0][2] > 0  # stopped part-way, cells unfilled
    assert all(not point.fns for point in tiny_model.hook_dict.values())
    # The logit-difference sweep narrows the unembedding to two rows; it is restored.
    assert tiny_model.hf_model.get_submodule(tiny_model.spec.unembed) is unembed
    torch.testing.assert_close(tiny_model(corrupted), before)


def test_patcher_equals_patch_for_sets_of_cells(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    _, cache = tiny_model.run_with_cache(clean)
    patcher = patching.Patcher(tiny_model, corrupted, cache)
    sets = [
        [("blocks.2.hook_resid_pre", {"pos": 5})],
        [("blocks.1.hook_attn_out", {"pos": 3}), ("blocks.3.hook_mlp_out", {"pos": 7})],
        [("blocks.2.attn.hook_z", {"head": 1}), ("blocks.0.hook_resid_pre", {"pos": 8})],
        [("blocks.3.attn.hook_pattern", {"head": 0})],
        [("hook_embed", {"pos": 2})],  # a model-level point takes the plain path
        [],
    ]
    for patches in sets:
        expected = patching.patch(tiny_model, corrupted, cache, patches)
        torch.testing.assert_close(patcher(patches), expected, atol=1e-4, rtol=0)
    assert all(not point.fns for point in tiny_model.hook_dict.values())


def test_patch_sets_of_one_pass_each_run_from_their_own_layer(tiny_model: Any) -> None:
    """Sets in one batch join it at their lowest patched layer (any order in the call), so a
    block runs only the sets that start at or below it; each set's logits are its own."""
    clean, corrupted = prompt_pair()
    _, cache = tiny_model.run_with_cache(clean)
    patcher = patching.Patcher(tiny_model, corrupted, cache)
    sets = [
        [patching.Patch("blocks.2.hook_resid_pre", pos=5)],
        [patching.Patch("blocks.3.attn.hook_z", pos=4, head=1)],
        [],
        [patching.Patch("blocks.1.hook_attn_out", pos=3),
         patching.Patch("blocks.3.hook_mlp_out", pos=7)],
        [patching.Patch("blocks.2.attn.hook_pattern", pos=6, head=0)],
    ]  # fmt: skip
    blocks = tiny_model.hf_model.get_submodule(tiny_model.spec.blocks)
    seen: dict[int, list[int]] = {}
    handles = [
        block.register_forward_pre_hook(
            lambda m, a, kw, i=i: seen.setdefault(i, []).append(
                (a[0] if a else next(iter(kw.values()))).shape[0]
            ),
            with_kwargs=True,
        )
        for i, block in enumerate(blocks)
    ]
    try:
        together = patcher.run(sets)
    finally:
        for handle in handles:
            handle.remove()
    # the empty set runs with the lowest (layer 1); the others join at layers 2, 2, 3
    assert {i: sizes[-1] for i, sizes in seen.items()} == {1: 2, 2: 4, 3: 5}
    for i, patches in enumerate(sets):
        expected = patching.patch(tiny_model, corrupted, cache, patches)
        torch.testing.assert_close(together[i : i + 1], expected, atol=1e-4, rtol=0)
