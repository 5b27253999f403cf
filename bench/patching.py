"""Benchmark: activation patching of every (layer, position) cell of resid_pre.

GPT-2-small shape (12 layers, d_model 768, random weights), a 20-token prompt pair, 240 cells.
Measured side by side in one run and printed as ratios to the plain Hugging Face loop (one
forward pass per patch with a raw torch hook): hooklens's sweep with `hl.metrics.logit_diff` and
with a plain lambda metric (as TransformerLens users write it), hooklens's
`get_act_patch_resid_pre` (TransformerLens's name and argument order), the attribution
estimate of every cell (two forwards and a backward), and TransformerLens's own
`patching.get_act_patch_resid_pre` when transformer_lens is installed. The prompts differ at
token 4; the lambda sweep is also timed on a pair that differs at token 0 (against its own loop),
where no cell comes before the difference. Also checks that the exact results agree to 1e-4, and
times one click-sized patch on the same model.

    .venv/bin/python bench/patching.py [--threads 2] [--repeats 2] [--seq 20]
    .venv/bin/python bench/patching.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def hf_loop(hf: Any, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any) -> torch.Tensor:
    """One forward pass per cell, patching the block input with a forward pre-hook."""
    with torch.no_grad():
        hidden = hf(clean, output_hidden_states=True).hidden_states  # [embed, block0 out, ...]
        blocks = hf.transformer.h
        out = torch.empty(len(blocks), clean.shape[1])
        for layer, block in enumerate(blocks):
            for pos in range(clean.shape[1]):

                def pre(
                    module: Any, args: Any, kwargs: Any, layer: int = layer, pos: int = pos
                ) -> Any:
                    x = (args[0] if args else kwargs["hidden_states"]).clone()
                    x[:, pos] = hidden[layer][:, pos]
                    if args:
                        return (x, *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": x}

                handle = block.register_forward_pre_hook(pre, with_kwargs=True)
                try:
                    out[layer, pos] = metric(hf(corrupted).logits)[0]
                finally:
                    handle.remove()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seq", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    import transformers as tf
    from _transformer_lens import save_for_transformer_lens

    import hooklens as hl
    from hooklens import patching
    from hooklens.metrics import TokenMetric

    torch.manual_seed(0)
    config = tf.GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    hf = tf.GPT2LMHeadModel(config).eval()
    scratch = tempfile.TemporaryDirectory()  # removed when main returns
    folder = scratch.name
    save_for_transformer_lens(hf, folder)
    model = hl.HookedModel.from_pretrained(folder).to(args.device).to(getattr(torch, args.dtype))
    hf = model.hf_model  # the very same weights for every contender

    generator = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 50257, (1, args.seq), generator=generator)
    corrupted = clean.clone()
    corrupted[0, 4] = (clean[0, 4] + 17) % 50257
    clean, corrupted = clean.to(args.device), corrupted.to(args.device)
    metric = TokenMetric("logit_diff", 11, 22)
    n_cells = 12 * args.seq

    rows: list[tuple[str, float, str]] = []
    t_loop, loop = best_of(args.repeats, lambda: hf_loop(hf, clean, corrupted, metric))
    rows.append(("plain HF loop (1 forward per patch)", t_loop, "reference"))
    t_sweep, result = best_of(
        args.repeats,
        lambda: patching.sweep(model, clean, corrupted, metric, normalize=False, progress=False),
    )
    diff = float((result.raw.cpu() - loop).abs().max())
    rows.append(
        ("hooklens sweep, hl.metrics.logit_diff", t_sweep, f"max |diff| vs loop {diff:.1e}")
    )

    def lam(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, 11] - logits[0, -1, 22]

    t_lambda, result = best_of(
        args.repeats,
        lambda: patching.sweep(model, clean, corrupted, lam, normalize=False, progress=False),
    )
    diff = float((result.raw.cpu() - loop).abs().max())
    rows.append(("hooklens sweep, lambda metric", t_lambda, f"max |diff| vs loop {diff:.1e}"))
    # Cells before the prompts' first difference (and layer 0 where the tokens agree) patch in
    # the values already there and take no pass; a pair that differs at token 0 has none of the
    # former, so its sweep is timed against its own loop.
    corrupted_at_0 = clean.clone()
    corrupted_at_0[0, 0] = (clean[0, 0] + 17) % 50257
    t_loop0, loop0 = best_of(args.repeats, lambda: hf_loop(hf, clean, corrupted_at_0, metric))
    t_lambda0, result = best_of(
        args.repeats,
        lambda: patching.sweep(model, clean, corrupted_at_0, lam, normalize=False, progress=False),
    )
    diff = float((result.raw.cpu() - loop0).abs().max())
    rows.append(("  same, prompts differing at token 0", t_lambda0 * t_loop / t_loop0,
                 f"max |diff| vs its loop {diff:.1e}"))  # fmt: skip
    with torch.no_grad():
        _, hl_cache = model.run_with_cache(clean)
    t_named, named = best_of(
        args.repeats, lambda: patching.get_act_patch_resid_pre(model, corrupted, hl_cache, lam)
    )
    diff = float((named.cpu() - loop).abs().max())
    rows.append(("hooklens get_act_patch_resid_pre, lambda", t_named, f"max |diff| {diff:.1e}"))
    t_attr, estimate = best_of(
        args.repeats,
        lambda: patching.sweep(model, clean, corrupted, metric, normalize=False,
                               method="attribution"),
    )  # fmt: skip
    pairs = torch.stack([estimate.raw.cpu().flatten().float(), loop.flatten()])
    corr = float(torch.corrcoef(pairs)[0, 1])
    rows.append(("hooklens attribution estimate (all cells)", t_attr, f"corr vs exact {corr:.3f}"))

    try:
        from _transformer_lens import load_transformer_lens
        from transformer_lens import patching as tl_patching

        tl_model = load_transformer_lens(folder)
        with torch.no_grad():
            _, tl_cache = tl_model.run_with_cache(clean)
            t_tl, tl_result = best_of(
                args.repeats,
                lambda: tl_patching.get_act_patch_resid_pre(
                    tl_model, corrupted, tl_cache, lambda logits: metric(logits)[0]
                ),
            )
        tl_diff = float((tl_result.cpu() - loop).abs().max())
        rows.append(
            ("TransformerLens get_act_patch_resid_pre", t_tl, f"max |diff| vs loop {tl_diff:.1e}")
        )
    except ImportError:
        rows.append(("TransformerLens get_act_patch_resid_pre", float("nan"), "not installed"))

    print(f"\nresid_pre patching, GPT-2-small shape, {args.seq} tokens, {n_cells} cells, "
          f"{args.device} {args.dtype}, {args.threads} threads, "
          f"best of {args.repeats}")  # fmt: skip
    print(f"{'contender':<42} {'time / plain HF loop':>21}  {'speed-up':>8}  note")
    for name, seconds, note in rows:
        print(f"{name:<42} {seconds / t_loop:>21.3f}  {t_loop / seconds:>7.1f}x  {note}")

    # A click in PatchingView: one patch through `Patcher`, which reuses the corrupted run.
    _, clean_cache = model.run_with_cache(clean, names_filter="blocks.6.hook_resid_pre")
    patcher = patching.Patcher(model, corrupted, clean_cache)
    one = [("blocks.6.hook_resid_pre", {"pos": 4})]
    with torch.no_grad():
        t_click, _ = best_of(5, lambda: patcher(one))
        t_plain, _ = best_of(5, lambda: patching.patch(model, corrupted, clean_cache, one))
        t_forward, _ = best_of(5, lambda: hf(corrupted))
    print(f"\none click (layer 6, position 4 of {args.seq}), time / one plain HF forward:")
    print(f"  Patcher (reuses the corrupted run)   {t_click / t_forward:.2f}")
    print(f"  patch() (one full hooked forward)    {t_plain / t_forward:.2f}")


if __name__ == "__main__":
    main()
