"""TransformerLens's patching functions: the same names, argument order and results as its
`generic_activation_patch` (one `run_with_hooks` per cell), on batches of prompt pairs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

import hooklens as hl
from hooklens import patching
from hooklens.patching._reads import learn_reads

from .conftest import VOCAB, prompt_pair

A, B = 5, 9


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [prompt_pair(seed=s) for s in (1, 2)]
    return torch.cat([c for c, _ in pairs]), torch.cat([k for _, k in pairs])


def _mean_diff(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, -1, A] - logits[:, -1, B]).mean()


def _reference(model: Any, corrupted: torch.Tensor, clean_cache: Any, metric: Any,
               activation: str, axes: tuple[str, ...],
               only: list[tuple[int, int]] | None = None) -> torch.Tensor:  # fmt: skip
    """TransformerLens's loop, written out: one patched forward per index (with ``only``, per
    index whose first two entries are listed; the others stay 0)."""
    hook = {"z": "attn.hook_z", "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v",
            "pattern": "attn.hook_pattern"}.get(activation, f"hook_{activation}")  # fmt: skip
    heads = model.cfg.n_kv_heads if activation in ("k", "v") else model.cfg.n_heads
    size = {"layer": model.cfg.n_layers, "pos": corrupted.shape[1], "head": heads}
    size["dest_pos"] = size["src_pos"] = size["pos"]
    out = torch.zeros([size[a] for a in axes])
    for index in itertools.product(*(range(size[a]) for a in axes)):
        if only is not None and index[:2] not in only:
            continue
        where = dict(zip(axes, index, strict=True))
        name = f"blocks.{where['layer']}.{hook}"

        def setter(act: torch.Tensor, hook: Any, where: Any = where, name: str = name) -> Any:
            act = act.clone()
            clean = clean_cache[name]
            if activation == "pattern":
                h = where.get("head")
                if "src_pos" in where:
                    d, s = where["dest_pos"], where["src_pos"]
                    act[:, h, d, s] = clean[:, h, d, s]
                elif "dest_pos" in where:
                    act[:, h, where["dest_pos"]] = clean[:, h, where["dest_pos"]]
                else:
                    act[:, h] = clean[:, h]
            elif "head" in where and "pos" in where:
                act[:, where["pos"], where["head"]] = clean[:, where["pos"], where["head"]]
            elif "head" in where:
                act[:, :, where["head"]] = clean[:, :, where["head"]]
            else:
                act[:, where["pos"]] = clean[:, where["pos"]]
            return act

        out[index] = float(metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, setter)])))
    return out


CASES = [
    ("get_act_patch_resid_pre", "resid_pre", ("layer", "pos")),
    ("get_act_patch_attn_out", "attn_out", ("layer", "pos")),
    ("get_act_patch_mlp_out", "mlp_out", ("layer", "pos")),
    ("get_act_patch_attn_head_out_all_pos", "z", ("layer", "head")),
    ("get_act_patch_attn_head_v_all_pos", "v", ("layer", "head")),
    ("get_act_patch_attn_head_pattern_all_pos", "pattern", ("layer", "head")),
    ("get_act_patch_attn_head_out_by_pos", "z", ("layer", "pos", "head")),
    ("get_act_patch_attn_head_k_by_pos", "k", ("layer", "pos", "head")),
    ("get_act_patch_attn_head_pattern_by_pos", "pattern", ("layer", "head", "dest_pos")),
]


@pytest.mark.parametrize(("fn", "activation", "axes"), CASES)
def test_batched_functions_equal_transformer_lens_loop(
    tiny_model: Any, fn: str, activation: str, axes: Any
) -> None:
    clean, corrupted = _batch()
    with torch.no_grad():
        _, clean_cache = tiny_model.run_with_cache(clean)
        got = getattr(patching, fn)(tiny_model, corrupted, clean_cache, _mean_diff)
        want = _reference(tiny_model, corrupted, clean_cache, _mean_diff, activation, axes)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_pattern_dest_src_pos_equals_transformer_lens_loop(tiny_model: Any) -> None:
    """One (layer, head, dest_pos, src_pos) entry of the pattern patched per cell; shape
    [n_layers, n_heads, pos, pos]. The loop runs for one (layer, head) (every dest and src) on
    a short batch, to stay fast; every other cell is checked where the answer is known."""
    pairs = [prompt_pair(seq_len=6, seed=s) for s in (1, 2)]
    clean, corrupted = torch.cat([c for c, _ in pairs]), torch.cat([k for _, k in pairs])
    n_layers, n_heads, pos = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, clean.shape[1]
    only = [(1, n_heads - 1)]
    axes = ("layer", "head", "dest_pos", "src_pos")
    with torch.no_grad():
        _, clean_cache = tiny_model.run_with_cache(clean)
        got = patching.get_act_patch_attn_head_pattern_dest_src_pos(
            tiny_model, corrupted, clean_cache, _mean_diff
        )
        want = _reference(tiny_model, corrupted, clean_cache, _mean_diff, "pattern", axes, only)
        unpatched = float(_mean_diff(tiny_model(corrupted)))
        # every key of row 3 at once is get_act_patch_attn_head_pattern_by_pos's cell
        keys = [("blocks.0.attn.hook_pattern", {"pos": 3, "head": 1, "src_pos": s})
                for s in range(pos)]  # fmt: skip
        by_keys = patching.patch(tiny_model, corrupted, clean_cache, keys)
        row = patching.patch(tiny_model, corrupted, clean_cache,
                             [("blocks.0.attn.hook_pattern", {"pos": 3, "head": 1})])  # fmt: skip
    assert got.shape == (n_layers, n_heads, pos, pos)
    for layer, head in only:
        torch.testing.assert_close(got[layer, head], want[layer, head], atol=1e-4, rtol=1e-4)
    upper = torch.triu(torch.ones(pos, pos, dtype=torch.bool), diagonal=1)
    # a key after the query: both patterns are 0 there, the patch changes nothing
    torch.testing.assert_close(got[:, :, upper], torch.full_like(got[:, :, upper], unpatched))
    assert not torch.allclose(got[:, :, ~upper], torch.full_like(got[:, :, ~upper], unpatched))
    torch.testing.assert_close(by_keys, row)


def test_every_functions_stack_with_transformer_lens_shapes(tiny_model: Any) -> None:
    clean, corrupted = _batch()
    with torch.no_grad():
        _, clean_cache = tiny_model.run_with_cache(clean)
        block = patching.get_act_patch_block_every(tiny_model, corrupted, clean_cache, _mean_diff)
        heads = patching.get_act_patch_attn_head_all_pos_every(
            tiny_model, corrupted, clean_cache, _mean_diff
        )
        resid = patching.get_act_patch_resid_pre(tiny_model, corrupted, clean_cache, _mean_diff)
    n_layers, n_heads, pos = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, clean.shape[1]
    assert block.shape == (3, n_layers, pos) and heads.shape == (5, n_layers, n_heads)
    torch.testing.assert_close(block[0], resid)


@pytest.mark.parametrize(
    "metric",
    [
        lambda logits: logits[0, -1, A] - logits[0, -1, B],  # reads two logits: narrowed
        lambda logits: logits[0, -1].log_softmax(-1)[A],  # reads the whole last row
        lambda logits: logits[0, 3:].max(),  # sparse gradient, reads everything
    ],
    ids=["two_logits", "softmax", "max"],
)
def test_any_callable_metric_gives_the_loop_result(tiny_model: Any, metric: Any) -> None:
    clean, corrupted = prompt_pair()
    with torch.no_grad():
        _, clean_cache = tiny_model.run_with_cache(clean)
        got = patching.get_act_patch_resid_pre(tiny_model, corrupted, clean_cache, metric)
        want = _reference(tiny_model, corrupted, clean_cache, metric, "resid_pre",
                          ("layer", "pos"))  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_reads_are_learned_and_checked() -> None:
    logits = torch.randn(1, 6, VOCAB)
    reads = learn_reads(lambda x: x[0, -1, A] - x[0, -1, B], logits)
    assert reads is not None and reads.positions == [5] and reads.columns == [A, B]
    assert learn_reads(lambda x: x[0, -1].softmax(-1)[A], logits) is None  # every column
    assert learn_reads(lambda x: x[0, 2:].max(), logits) is None  # max: fails the check
    assert learn_reads(lambda x: float(x[0, -1, A]), logits) is None  # leaves torch


def test_errors_name_the_order_and_the_arguments(tiny_model: Any) -> None:
    clean, corrupted = prompt_pair()
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(clean)
    with pytest.raises(TypeError, match="clean_cache` must be the ActivationCache"):
        patching.get_act_patch_resid_pre(tiny_model, corrupted, clean, _mean_diff)
    with pytest.raises(hl.ArgumentError, match=r"does not implement 'index_df'.*layers="):
        patching.get_act_patch_resid_pre(tiny_model, corrupted, cache, _mean_diff, index_df=1)
    with pytest.raises(TypeError, match="TransformerLens's order"):
        patching.sweep(tiny_model, corrupted, cache, _mean_diff)
    clean2, corrupted2 = _batch()
    with torch.no_grad():
        _, cache2 = tiny_model.run_with_cache(clean2)
    with pytest.raises(ValueError, match="one number for the whole batch"):
        patching.get_act_patch_resid_pre(tiny_model, corrupted2, cache2, lambda x: x[:, -1, A])
    with pytest.raises(ValueError, match="only attention patterns"):
        patching.patch(tiny_model, corrupted, cache,
                       [("blocks.0.attn.hook_z", {"pos": 1, "head": 0, "src_pos": 0})])  # fmt: skip


def test_full_forward_fallback_gives_the_same_cells(tiny_model: Any) -> None:
    """A family whose blocks take an argument partial runs cannot re-target runs every batch as
    a full forward (RecordedRun.skips False): slower, the same numbers."""
    from hooklens.metrics import TokenMetric
    from hooklens.patching._evaluate import CellMetric
    from hooklens.patching._plan import _Cell
    from hooklens.patching._sweep import run_cells
    from hooklens.patching._types import cell_patch

    clean, corrupted = prompt_pair()
    metric = TokenMetric("logit_diff", A, B)
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(clean)
    results = []
    for skips in (True, False):
        patcher = patching.Patcher(tiny_model, corrupted, cache)
        patcher.base.skips = skips
        cells = [_Cell((layer, pos), layer, cell_patch("resid_pre", layer, pos), pos)
                 for layer in range(4) for pos in range(9)]  # fmt: skip
        raw = torch.zeros(4, 9)
        run_cells(patcher, cells, CellMetric(patcher, metric, per_batch=False), raw)
        results.append(raw)
    torch.testing.assert_close(results[0], results[1], atol=1e-4, rtol=1e-4)


def test_typos_raise_naming_the_hooklens_spelling(tiny_model: Any) -> None:
    """The keyword rule on every public callable of hooklens.patching: an unknown name raises
    ArgumentError with the close match, before any work is done."""
    clean, corrupted = prompt_pair()
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(clean)
    m = _mean_diff
    cases = [
        (lambda: patching.sweep(tiny_model, clean, corrupted, m, normalise=True), "'normalize'"),
        (lambda: patching.sweep(tiny_model, clean, corrupted, m, layer=[0]), "'layers'"),
        (lambda: patching.sweep_all(tiny_model, clean, corrupted, m, point=["z"]), "'points'"),
        (lambda: patching.patch(tiny_model, corrupted, cache, [], patch=[]), "'patches'"),
        (lambda: patching.Patcher(tiny_model, corrupted, source=cache), "'source_cache'"),
        (lambda: patching.get_act_patch_resid_pre(
            tiny_model, corrupted, cache, patching_metrics=m), "'patching_metric'"),
        (lambda: patching.get_act_patch_resid_pre(tiny_model, corrupted, cache, metric=m),
         "patching_metric"),
        (lambda: patching.get_act_patch_block_every(
            tiny_model, corrupted, cache, patching_metric=m), "'metric'"),
        (lambda: patching.get_act_patch_attn_head_out_by_pos(
            tiny_model, corrupted, cache, m, return_index_df=True), "PatchingResult"),
    ]  # fmt: skip
    for call, hint in cases:
        with pytest.raises(hl.ArgumentError, match=hint):
            call()
    patcher = patching.Patcher(tiny_model, corrupted, cache)
    with pytest.raises(hl.ArgumentError, match="'token_ids'"):
        patcher.run([[]], token_id=[A])
    with pytest.raises(hl.ArgumentError, match=r"Patcher\(\) got"):
        patching.Patcher(tiny_model, corrupted, cache, source=1)
    # TransformerLens's spelling of the metric argument still works by keyword
    got = patching.get_act_patch_resid_pre(
        tiny_model, corrupted_tokens=corrupted, clean_cache=cache, patching_metric=m
    )
    assert got.shape == (tiny_model.cfg.n_layers, corrupted.shape[1])
