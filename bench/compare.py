"""hooklens against an earlier commit of itself, side by side in one run (engine overheads).

    python bench/compare.py --against 28a7884                      # gpt2-narrow at 6 tokens
    python bench/compare.py --against 28a7884 --only gpt2-small:128 --rounds 6
    python bench/compare.py --against 28a7884 --device cuda --dtype bfloat16

The earlier commit's `hooklens` package is taken from git (`git archive`, with this checkout's
built `hooklens/static`) into a temporary folder. Each round runs one fresh process per version,
alternating: the process times `bench/engine.py`'s variants interleaved call by call, each on
its own copy of the same random weights (`time_row_in_process`), and reports its ratios to its
own Hugging Face baseline; the table gives each ratio's median over the rounds. Two versions
cannot share one process (both register their attention function with transformers under
the package's name), hence a process per version and round: compare the ratios, not the
milliseconds. Rows as in `bench/engine.py` (forward / HF sdpa, cache_resid / HF sdpa,
cache_all / HF eager with outputs), plus bare hooks (`--floor`) when both versions have module
hooks. `gpt2-narrow` (GPT-2-small's depth at width 64) is bound by Python on CPU, as a GPU's
forward is bound by kernel launches: hooklens's per-call Python shows there as on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("forward", "cache_resid", "cache_all", "bare_hooks")


def checkout(commit: str, into: Path) -> Path:
    """`commit`'s hooklens package under `into` (with this checkout's built static files)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "hooklens"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    static = into / "hooklens" / "static"
    if not static.exists():
        shutil.copytree(ROOT / "hooklens" / "static", static)
    return into


def child(shape: str, seq: int, rounds: int, device: str, dtype: str, floor: bool) -> None:
    """In a fresh process: this version's ratios for one shape, as one JSON line."""
    sys.path.insert(0, str(ROOT / "bench"))
    import engine  # bench/engine.py: its variants, timing and ratios

    torch.set_num_threads(2)
    names = engine.variants(False, floor)
    samples, _ = engine.time_row_in_process(shape, seq, 5, rounds, device, dtype, names)
    print(json.dumps(engine.ratios(samples)))


def _run(version: Path | None, argv: list[str]) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    if version is not None:  # ahead of the installed (editable) package
        env["PYTHONPATH"] = os.pathsep.join([str(version), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", metavar="COMMIT", help="the earlier commit (required)")
    parser.add_argument("--only", nargs="*", default=["gpt2-narrow:6"], metavar="SHAPE:SEQ")
    parser.add_argument("--rounds", type=int, default=5, help="processes per version")
    parser.add_argument("--calls", type=int, default=10, help="interleaved rounds a process")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--floor", action="store_true", help="also HF with bare module hooks")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        shape, seq, rounds, device, dtype, floor = args.child
        child(shape, int(seq), int(rounds), device, dtype, floor == "1")
        return
    if not args.against:
        parser.error("--against COMMIT is required: the commit to compare this checkout with")
    here = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"device={args.device} dtype={args.dtype} rounds={args.rounds} (a process per version "
          f"and round, {args.calls} interleaved rounds of 5 calls each)")  # fmt: skip
    cols = [r for r in ROWS if r != "bare_hooks" or args.floor]
    print("| shape | seq | version | HF sdpa ms | " + " | ".join(cols) + " |")
    print("|---|---|---|---|" + "---|" * len(cols))
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(args.against, Path(tmp))
        for shape, seq in (item.split(":") for item in args.only):
            argv = ["--child", shape, seq, str(args.calls), args.device, args.dtype,
                    "1" if args.floor else "0"]  # fmt: skip
            this = f"this checkout ({here})"
            runs: dict[str, list[dict[str, float]]] = {args.against: [], this: []}
            for _ in range(args.rounds):  # alternating: a busy spell hits both versions
                runs[args.against].append(_run(old, argv))
                runs[this].append(_run(None, argv))
            for label, rows in runs.items():
                med = {k: statistics.median(r[k] for r in rows) for k in ("hf_sdpa_ms", *cols)}
                print(f"| {shape} | {seq} | {label} | {med['hf_sdpa_ms']:.2f} | "
                      + " | ".join(f"{med[c]:.3f}" for c in cols) + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
