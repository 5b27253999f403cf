"""Engine benchmark: hooklens vs plain Hugging Face, measured side by side in one run.

    python bench/engine.py                 # full table (GPT-2-small and Pythia-410m shapes)
    python bench/engine.py --quick         # seq 6 and 128, GPT-2 only, few repeats

    python bench/engine.py --device cuda --dtype bfloat16
    python bench/engine.py --only gpt2-narrow:6 --in-process --no-mem   # bound by Python

Random weights, 2 CPU threads (or the GPU when one is present). On CPU each variant runs in fresh
processes; on a GPU (or with --in-process) every variant runs in one process, interleaved call
by call, on its own copy of the same weights (CUDA's caching allocator keeps freed memory, so no
variant pays another's page faults, and `mem` reads the allocator's own peak). Rows, as ratios
(lower is better):
  forward      wrapped forward, no hooks        / HF default (sdpa) forward, use_cache=False
               (hooklens's forward builds no KV cache; HF's default call does)
  cache_resid  run_with_cache, resid points     / HF sdpa forward
  cache_all    run_with_cache, every point      / HF eager forward, output_attentions+hidden
  mem          peak growth of run_with_cache(all) / (growth of HF sdpa forward + 1.1 x cached bytes)
               (<= 1.0 meets the target; CPU: peak RSS of a fresh subprocess per measurement)
  bare hooks   (with --floor) HF's model with one bare module hook before and one after each
               block (hooklens's `module_hooks`, installed once, each only storing its tensor)
               / HF sdpa forward: the floor under any cache of the stream built from module hooks
With TransformerLens installed (optional, bench-only; see `_transformer_lens.py`), a row for
it follows each hooklens row: the same ratios, on a copy of the same weights (4.x:
TransformerBridge; 3.x: HookedTransformer, as its `from_pretrained` processes the weights).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from typing import Any

import torch

SHAPES = {
    "gpt2-small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
                            "n_positions": 2048}),
    # GPT-2-small's depth at width 64: a forward bound by Python, as a GPU's launch-bound one is
    "gpt2-narrow": ("gpt2", {"n_embd": 64, "n_layer": 12, "n_head": 4, "vocab_size": 512,
                             "n_positions": 2048}),
    "pythia-410m": ("gpt_neox", {"hidden_size": 1024, "num_hidden_layers": 24,
                                 "num_attention_heads": 16, "intermediate_size": 4096,
                                 "vocab_size": 50304, "rotary_pct": 0.25,
                                 "max_position_embeddings": 2048}),
}  # fmt: skip


def build(shape: str, device: str, dtype: str = "float32") -> Any:
    import transformers as tf

    kind, kwargs = SHAPES[shape]
    config = tf.GPT2Config(**kwargs) if kind == "gpt2" else tf.GPTNeoXConfig(**kwargs)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(config).eval()
    return model.to(device=device, dtype=getattr(torch, dtype))


def timed(fn: Any, min_calls: int, min_seconds: float) -> list[float]:
    """Times of calls to `fn`, at least `min_calls` of them and for at least `min_seconds`."""
    out: list[float] = []
    while len(out) < min_calls or sum(out) < min_seconds:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def variants(with_transformer_lens: bool, floor: bool = False) -> list[str]:
    names = ["hf_sdpa", "hf_eager", "forward", "cache_resid", "cache_all"]
    tl_names = ["tl_forward", "tl_cache_resid", "tl_cache_all"]
    return names + (["bare_hooks"] if floor else []) + (tl_names if with_transformer_lens else [])


#: where each shape's blocks are, for the bare hooks
BLOCKS = {"gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers"}


def _with_bare_hooks(hf: Any, kind: str) -> Any:
    """`hf` with a module hook before and after each block that only stores its tensor."""
    from hooklens._engine import module_hooks

    store: dict[tuple[int, str], torch.Tensor] = {}
    for i, block in enumerate(hf.get_submodule(BLOCKS[kind])):

        def before(m: Any, args: Any, kwargs: Any, i: int = i) -> None:
            store[i, "pre"] = args[0] if args else kwargs["hidden_states"]

        def after(m: Any, args: Any, out: Any, i: int = i) -> None:
            store[i, "post"] = out[0] if isinstance(out, tuple) else out

        module_hooks.pre_hook(block, before, with_kwargs=True)
        module_hooks.forward_hook(block, after)
    return hf


def _variant_call(hf: Any, seq: int, variant: str, package: Any = None) -> Any:
    """The call that `variant` times, on `hf` (which it takes over: give each variant its own);
    `package`: the hooklens package that wraps it (this checkout's when None; `compare.py`
    passes an earlier one)."""
    hl = package if package is not None else importlib.import_module("hooklens")
    device = next(hf.parameters()).device
    vocab = hf.config.vocab_size
    toks = torch.randint(0, vocab, (1, seq), generator=torch.Generator().manual_seed(1)).to(device)
    resid = lambda n: "resid" in n  # noqa: E731
    if variant.startswith("tl_"):
        target: Any = _transformer_lens_copy(hf)
        del hf
    elif variant.startswith("hf_"):
        target = hf
        hf.set_attn_implementation(variant.removeprefix("hf_"))
    elif variant == "bare_hooks":
        target = _with_bare_hooks(hf, hf.config.model_type)
    else:
        target = hl.HookedModel(hf)
    return {
        # HF without a KV cache, as hooklens's forward (TransformerLens's returns none either)
        "hf_sdpa": lambda: target(toks, use_cache=False),
        "hf_eager": lambda: target(
            toks, output_attentions=True, output_hidden_states=True, use_cache=False
        ),
        "forward": lambda: target(toks),
        "cache_resid": lambda: target.run_with_cache(toks, names_filter=resid),
        "cache_all": lambda: target.run_with_cache(toks),
        "bare_hooks": lambda: target(toks, use_cache=False),
    }[variant.removeprefix("tl_")]


def _time_child(
    shape: str, seq: int, variant: str, repeats: int, device: str, dtype: str
) -> list[float]:
    """Time one variant in this (fresh) process, warmed up first (a fresh process's first calls
    run slower: allocator, interpreter and kernel caches), then `repeats` calls or 2 s."""
    run = _variant_call(build(shape, device, dtype), seq, variant)
    with torch.inference_mode():
        timed(run, 2, 1.0)  # warm-up
        return timed(run, repeats, 2.0)


def interleaved(runs: dict[str, Any], repeats: int, rounds: int) -> dict[str, list[float]]:
    """Times of each of `runs` (name -> call), warmed up, then per round `repeats` calls of
    each in turn (a busy spell or a clock change hits every one), in inference mode."""
    samples: dict[str, list[float]] = {n: [] for n in runs}
    with torch.inference_mode():
        for run in runs.values():
            timed(run, 2, 0.2)  # warm-up
        for _ in range(rounds):
            for name, run in runs.items():
                samples[name] += timed(run, repeats, 0.0)
    return samples


def time_row_in_process(
    shape: str, seq: int, repeats: int, rounds: int, device: str, dtype: str, names: list[str]
) -> tuple[dict[str, list[float]], float | None]:
    """Every variant in this process, on its own model, interleaved: per round, `repeats`
    calls of each variant in turn (a busy spell or a clock change hits every variant). Also
    `mem` from the CUDA allocator's peak (see `mem_ratio`; None on CPU)."""
    import copy

    base = build(shape, device, dtype)  # built once: a 410M model's random init takes seconds
    runs = {name: _variant_call(copy.deepcopy(base), seq, name) for name in names}
    del base
    samples = interleaved(runs, repeats, rounds)
    if device == "cpu":
        return samples, None
    with torch.inference_mode():
        growth = {}
        for name in ("hf_sdpa", "cache_all"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            out = runs[name]()
            torch.cuda.synchronize()
            growth[name] = torch.cuda.max_memory_allocated() - base
            cached = out[1] if name == "cache_all" else None
            del out
        assert cached is not None
        cached_bytes = sum(t.numel() * t.element_size() for t in cached.values())
    return samples, mem_ratio(
        {"growth": growth["hf_sdpa"], "cached": 0},
        {"growth": growth["cache_all"], "cached": cached_bytes},
    )


def _run_child(cmd: list[str], env: dict[str, str]) -> Any:
    """Run a measurement in a fresh process; its last line of output is JSON."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_row(
    shape: str,
    seq: int,
    repeats: int,
    rounds: int,
    device: str,
    dtype: str,
    names: list[str],
    env: dict[str, str],
) -> dict[str, float]:
    """Median time of each variant, each measured in fresh processes, alternating for `rounds`.

    A fresh process per variant: the allocator's state left by one variant changes the next
    one's cost (page faults on memory the allocator gave back), so no variant inherits another's.
    """
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--time-child", shape, str(seq), name, str(repeats),
                   device, dtype]  # fmt: skip
            samples[name] += _run_child(cmd, env)
    return ratios(samples)


def ratios(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median times of the variants as the table's ratios (HF sdpa's median in ms)."""
    med = {k: statistics.median(v) for k, v in samples.items()}
    out = {"hf_sdpa_ms": med["hf_sdpa"] * 1e3}
    for prefix in ("", "tl_") if "tl_forward" in med else ("",):
        out[f"{prefix}forward"] = med[f"{prefix}forward"] / med["hf_sdpa"]
        out[f"{prefix}cache_resid"] = med[f"{prefix}cache_resid"] / med["hf_sdpa"]
        out[f"{prefix}cache_all"] = med[f"{prefix}cache_all"] / med["hf_eager"]
    if "bare_hooks" in med:
        out["bare_hooks"] = med["bare_hooks"] / med["hf_sdpa"]
    return out


def _transformer_lens_copy(hf: Any) -> Any:
    """TransformerLens on a copy of the same weights, or None when it is not installed."""
    import tempfile

    from _transformer_lens import load_transformer_lens, save_for_transformer_lens

    try:
        import transformer_lens  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as folder:  # TransformerLens holds its own copy
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


def _peak_child(shape: str, seq: int, what: str, device: str, dtype: str) -> None:
    """Run one measurement in this (fresh) process; print JSON {growth, cached}."""
    import hooklens as hl

    hf = build(shape, device, dtype)
    model = hl.HookedModel(hf)
    toks = torch.randint(0, hf.config.vocab_size, (1, seq), device=device)
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


def mem_row(shape: str, seq: int, device: str, dtype: str, env: dict[str, str]) -> float:
    def child(what: str) -> dict[str, int]:
        cmd = [sys.executable, __file__, "--child", shape, str(seq), what, device, dtype]
        return _run_child(cmd, env)

    return mem_ratio(child("hf"), child("ours"))


def mem_ratio(plain: dict[str, int], ours: dict[str, int]) -> float:
    """`mem`: the peak growth of run_with_cache(all) over HF's forward's plus 1.1x the cache."""
    return ours["growth"] / (plain["growth"] + 1.1 * ours["cached"])


#: glibc settings under which freed memory stays with the process (no page faults on reuse)
KEEP_FREED_MEMORY = {"MALLOC_TRIM_THRESHOLD_": str(2**40), "MALLOC_MMAP_THRESHOLD_": str(2**30)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", metavar="SHAPE:SEQ", help="e.g. pythia-410m:2048")
    parser.add_argument("--repeats", type=int, default=None, help="least timed calls a process")
    parser.add_argument("--rounds", type=int, default=None, help="processes per variant")
    parser.add_argument("--no-mem", action="store_true")
    parser.add_argument(
        "--floor", action="store_true", help="a column for HF with bare module hooks (see above)"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="every variant, HF's too, with glibc keeping freed memory (hooklens's own "
        "setting steps aside): compute alone (diagnostic)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="every variant in one process, interleaved (the default on a GPU)",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--time-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.time_child:
        shape, seq, variant, repeats, device, dtype = args.time_child
        print(json.dumps(_time_child(shape, int(seq), variant, int(repeats), device, dtype)))
        return
    if args.child:
        shape, seq, what, device, dtype = args.child
        _peak_child(shape, int(seq), what, device, dtype)
        return
    device, dtype = args.device, args.dtype
    in_process = args.in_process or device != "cpu"
    if args.only:
        plan = [(s, int(n)) for s, n in (item.split(":") for item in args.only)]
    elif args.quick:
        plan = [("gpt2-small", 6), ("gpt2-small", 128)]
    else:
        full = ("gpt2-small", "pythia-410m")
        plan = [*((s, n) for s in full for n in (6, 128, 512)), ("pythia-410m", 2048)]
    # in one process on a GPU, calls take milliseconds: many short interleaved rounds
    rounds = args.rounds or (1 if args.quick else 10 if in_process else 3)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    if args.keep_freed_memory:
        env.update(KEEP_FREED_MEMORY)
    names = variants(importlib.util.find_spec("transformer_lens") is not None, args.floor)
    tl_label = f"TransformerLens {version('transformer-lens')}" if "tl_forward" in names else ""
    print(f"device={device} dtype={dtype} threads={torch.get_num_threads()} rounds={rounds} "
          f"{'one process, interleaved' if in_process else 'fresh processes'} "
          f"allocator={'keeps freed memory' if args.keep_freed_memory else 'default'}")  # fmt: skip
    floor_column = " bare hooks |" if args.floor else ""
    print("| shape | seq | HF sdpa ms | forward (<=1.03) | cache_resid (<=1.05) | "
          "cache_all (<=1.10) | mem (<=1.0) |" + floor_column)  # fmt: skip
    print("|---|---|---|---|---|---|---|" + ("---|" if args.floor else ""))
    for shape, seq in plan:
        # 2048 tokens: a call takes tens of seconds on 2 cores
        repeats = args.repeats or (2 if args.quick or seq >= 2048 else 5 if in_process else 3)
        if in_process:
            samples, mem_value = time_row_in_process(
                shape, seq, repeats, rounds, device, dtype, names
            )
            r = ratios(samples)
            mem = "-" if args.no_mem or mem_value is None else f"{mem_value:.2f}"
        else:
            r = time_row(shape, seq, repeats, rounds, device, dtype, names, env)
            mem = "-" if args.no_mem else f"{mem_row(shape, seq, device, dtype, env):.2f}"
        print(
            f"| {shape} | {seq} | {r['hf_sdpa_ms']:.1f} | {r['forward']:.3f} | "
            f"{r['cache_resid']:.3f} | {r['cache_all']:.3f} | {mem} |"
            + (f" {r['bare_hooks']:.3f} |" if args.floor else ""),
            flush=True,
        )
        if "tl_forward" in r:
            print(
                f"| {shape} {tl_label} | {seq} | | {r['tl_forward']:.3f} | "
                f"{r['tl_cache_resid']:.3f} | {r['tl_cache_all']:.3f} | |",
                flush=True,
            )
    if "tl_forward" not in names:
        print(
            "TransformerLens is not installed: its rows are skipped (bench/_transformer_lens.py)."
        )


if __name__ == "__main__":
    main()
