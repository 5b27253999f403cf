"""Engine benchmark: hooklens vs plain Hugging Face, measured side by side in one run.

    python bench/engine.py                 # full table (GPT-2-small and Pythia-410m shapes)
    python bench/engine.py --quick         # seq 6 and 128, GPT-2 only, few repeats

Random weights, 2 CPU threads (or the GPU when one is present). Rows, as ratios (lower is better):
  forward      wrapped forward, no hooks        / HF default (sdpa) forward
  cache_resid  run_with_cache, resid points     / HF sdpa forward
  cache_all    run_with_cache, every point      / HF eager forward, output_attentions+hidden
  mem          peak growth of run_with_cache(all) / (growth of HF sdpa forward + 1.1 x cached bytes)
               (<= 1.0 meets the target; CPU: peak RSS of a fresh subprocess per measurement)
With TransformerLens installed (optional, bench-only; see `_transformer_lens.py`), a row for
it follows each hooklens row: the same ratios, on a copy of the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

SHAPES = {
    "gpt2-small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
                            "n_positions": 2048}),
    "pythia-410m": ("gpt_neox", {"hidden_size": 1024, "num_hidden_layers": 24,
                                 "num_attention_heads": 16, "intermediate_size": 4096,
                                 "vocab_size": 50304, "rotary_pct": 0.25,
                                 "max_position_embeddings": 2048}),
}  # fmt: skip


def build(shape: str, device: str) -> Any:
    import transformers as tf

    kind, kwargs = SHAPES[shape]
    config = tf.GPT2Config(**kwargs) if kind == "gpt2" else tf.GPTNeoXConfig(**kwargs)
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(config).eval().to(device)


def timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def time_rows(shape: str, seq: int, repeats: int, device: str) -> dict[str, float]:
    import hooklens as hl

    hf = build(shape, device)
    model = hl.HookedModel(hf)
    toks = torch.randint(0, 50000, (1, seq), device=device)
    resid = lambda n: "resid" in n  # noqa: E731

    def hf_sdpa() -> None:
        hf(toks)

    def hf_eager() -> None:
        hf.set_attn_implementation("eager")
        try:
            hf(toks, output_attentions=True, output_hidden_states=True)
        finally:
            hf.set_attn_implementation("sdpa")

    runs = {
        "hf_sdpa": hf_sdpa,
        "hf_eager": hf_eager,
        "forward": lambda: model(toks),
        "cache_resid": lambda: model.run_with_cache(toks, names_filter=resid),
        "cache_all": lambda: model.run_with_cache(toks),
    }
    tl = _transformer_lens_copy(hf)
    if tl is not None:
        runs["tl_forward"] = lambda: tl(toks)
        runs["tl_cache_resid"] = lambda: tl.run_with_cache(toks, names_filter=resid)
        runs["tl_cache_all"] = lambda: tl.run_with_cache(toks)
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()  # warm-up
        for _ in range(repeats):  # interleaved, so drift hits every variant alike
            for name, fn in runs.items():
                times[name] += timed(fn, 1)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"hf_sdpa_ms": med["hf_sdpa"] * 1e3}
    for prefix in ("", "tl_") if tl is not None else ("",):
        out[f"{prefix}forward"] = med[f"{prefix}forward"] / med["hf_sdpa"]
        out[f"{prefix}cache_resid"] = med[f"{prefix}cache_resid"] / med["hf_sdpa"]
        out[f"{prefix}cache_all"] = med[f"{prefix}cache_all"] / med["hf_eager"]
    return out


def _transformer_lens_copy(hf: Any) -> Any:
    """TransformerLens on a copy of the same weights, or None when it is not installed."""
    import tempfile

    from _transformer_lens import load_transformer_lens, save_for_transformer_lens

    try:
        import transformer_lens  # noqa: F401
    except ImportError:
        return None
    folder = tempfile.mkdtemp()
    save_for_transformer_lens(hf, folder)
    return load_transformer_lens(folder).to(next(hf.parameters()).device)


class _RssSampler:
    """Peak resident set size while running, sampled every millisecond from /proc."""

    def __init__(self) -> None:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def start(self) -> int:
        base = self.rss()
        self.peak = base
        self._thread.start()
        return base

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.rss())


def _peak_child(shape: str, seq: int, what: str, device: str) -> None:
    """Run one measurement in this (fresh) process; print JSON {growth, cached}."""
    import hooklens as hl

    hf = build(shape, device)
    model = hl.HookedModel(hf)
    toks = torch.randint(0, 50000, (1, seq), device=device)
    cached = 0
    with torch.inference_mode():
        sampler = _RssSampler() if device == "cpu" else None
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            assert sampler is not None
            base = sampler.start()
        if what == "hf":
            hf(toks)
        else:
            _, cache = model.run_with_cache(toks)
            cached = sum(t.numel() * t.element_size() for t in cache.values())
        peak = torch.cuda.max_memory_allocated() if sampler is None else sampler.stop()
    print(json.dumps({"growth": peak - base, "cached": cached}))


def time_row_isolated(shape: str, seq: int, repeats: int, device: str) -> dict[str, float]:
    """`time_rows` in a fresh process: one row's allocations must not slow the next (seen:
    pythia-410m at 512 measured 2.4x after the GPT-2 rows in one process, 1.13x alone)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, __file__, "--time-child", shape, str(seq), str(repeats), device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def mem_row(shape: str, seq: int, device: str) -> float:
    def child(what: str) -> dict[str, int]:
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        cmd = [sys.executable, __file__, "--child", shape, str(seq), what, device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    plain, ours = child("hf"), child("ours")
    return ours["growth"] / (plain["growth"] + 1.1 * ours["cached"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-mem", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--time-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.time_child:
        shape, seq, repeats, device = args.time_child
        print(json.dumps(time_rows(shape, int(seq), int(repeats), device)))
        return
    if args.child:
        shape, seq, what, device = args.child
        _peak_child(shape, int(seq), what, device)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    plan = [("gpt2-small", 6), ("gpt2-small", 128)] if args.quick else [
        *((s, n) for s in SHAPES for n in (6, 128, 512)), ("pythia-410m", 2048),
    ]  # fmt: skip
    repeats = args.repeats or (3 if args.quick else 10)
    print(f"device={device} threads={torch.get_num_threads()} repeats={repeats}")
    print("| shape | seq | HF sdpa ms | forward (<=1.03) | cache_resid (<=1.05) | "
          "cache_all (<=1.10) | mem (<=1.0) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    compared = False
    for shape, seq in plan:
        r = time_row_isolated(shape, seq, repeats, device)
        mem = "-" if args.no_mem else f"{mem_row(shape, seq, device):.2f}"
        print(
            f"| {shape} | {seq} | {r['hf_sdpa_ms']:.1f} | {r['forward']:.3f} | "
            f"{r['cache_resid']:.3f} | {r['cache_all']:.3f} | {mem} |",
            flush=True,
        )
        if "tl_forward" in r:
            compared = True
            print(
                f"| {shape} TransformerLens | {seq} | | {r['tl_forward']:.3f} | "
                f"{r['tl_cache_resid']:.3f} | {r['tl_cache_all']:.3f} | |",
                flush=True,
            )
    if not compared:
        print(
            "TransformerLens is not installed: its rows are skipped (bench/_transformer_lens.py)."
        )


if __name__ == "__main__":
    main()
