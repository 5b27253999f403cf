"""hooklens against an earlier commit of itself, side by side in one process (engine overheads).

    python bench/compare.py --against 28a7884                      # gpt2-narrow at 6 tokens
    python bench/compare.py --against 28a7884 --only gpt2-small:128 --rounds 20
    python bench/compare.py --against 28a7884 --device cuda --dtype bfloat16 --floor
    python bench/compare.py --against /tmp/old     # a folder holding an earlier `hooklens`
                                                   # (`git archive 28a7884 hooklens | tar -x
                                                   # -C /tmp/old`, for a machine without git)

The earlier commit's `hooklens` package is taken from git (`git archive`, with this checkout's
built `hooklens/static`) into a temporary folder and imported beside this checkout's under
another name: its attention function registers with transformers under that name (the one
line of `_engine/attention.py` that names it is rewritten; the script stops if that line is not
there). Every variant runs on its own copy of the same random weights, interleaved call by
call (`--rounds` rounds of 5 calls each), so a busy spell or a clock change hits every variant;
the table gives medians as ratios, as `bench/engine.py` does: forward / HF sdpa, cache_resid /
HF sdpa, cache_all / HF eager with `output_attentions` and `output_hidden_states`, and with
`--floor` HF with a bare module hook before and after each block / HF sdpa. `gpt2-narrow`
(GPT-2-small's depth at width 64) is bound by Python on CPU, as a GPU's forward is bound by
kernel launches: hooklens's per-call Python shows there as it does on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import engine  # noqa: E402  (bench/engine.py: shapes, timing, the bare hooks)

NAME_LINE = 'NAME = "hooklens"'


def checkout(commit: str, into: Path) -> str:
    """Put `commit`'s hooklens (or that of the folder `commit` names) under `into` as a package
    of another name; return that name."""
    folder = Path(commit)
    if (folder / "hooklens").is_dir():  # a copy made elsewhere (a machine without the history)
        shutil.copytree(folder / "hooklens", into / "hooklens")
        commit = folder.name
    else:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "hooklens"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    name = "hooklens_" + "".join(c if c.isalnum() else "_" for c in commit)
    package = into / name
    (into / "hooklens").rename(package)
    if not (package / "static").exists():
        shutil.copytree(ROOT / "hooklens" / "static", package / "static")
    attention = package / "_engine" / "attention.py"
    text = attention.read_text() if attention.exists() else ""
    if text.count(NAME_LINE) != 1:
        raise SystemExit(
            f"{commit}: no line {NAME_LINE!r} in hooklens/_engine/attention.py to rename, so "
            "its attention function would replace this checkout's: compare with a later commit"
        )
    attention.write_text(text.replace(NAME_LINE, f'NAME = "{name}"'))
    return name


def row(shape: str, seq: int, versions: dict[str, Any], args: argparse.Namespace) -> None:
    base = engine.build(shape, args.device, args.dtype)
    names = engine.variants(False, args.floor)
    hf_names = [n for n in names if n.startswith("hf_") or n == "bare_hooks"]
    # each variant on its own copy: `bench/engine.py`'s calls, the hooklens ones per version
    runs = {name: engine._variant_call(copy.deepcopy(base), seq, name) for name in hf_names}
    for label, package in versions.items():
        for name in ("forward", "cache_resid", "cache_all"):
            call = engine._variant_call(copy.deepcopy(base), seq, name, package)
            runs[f"{label}:{name}"] = call
    del base
    med = {n: statistics.median(t) for n, t in engine.interleaved(runs, 5, args.rounds).items()}
    floor = f" {med['bare_hooks'] / med['hf_sdpa']:.3f} |" if args.floor else ""
    for label in versions:
        print(
            f"| {shape} | {seq} | {label} | {med['hf_sdpa'] * 1e3:.2f} | "
            f"{med[f'{label}:forward'] / med['hf_sdpa']:.3f} | "
            f"{med[f'{label}:cache_resid'] / med['hf_sdpa']:.3f} | "
            f"{med[f'{label}:cache_all'] / med['hf_eager']:.3f} |" + floor,
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--against", required=True, metavar="COMMIT", help="the earlier commit, or a folder"
    )
    parser.add_argument("--only", nargs="*", default=["gpt2-narrow:6"], metavar="SHAPE:SEQ")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of 5 calls")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    parser.add_argument("--floor", action="store_true", help="also HF with bare module hooks")
    args = parser.parse_args()
    torch.set_num_threads(2)
    here = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"device={args.device} dtype={args.dtype} rounds={args.rounds} (one process, "
          "interleaved call by call)")  # fmt: skip
    print("| shape | seq | version | HF sdpa ms | forward | cache_resid | cache_all |"
          + (" bare hooks |" if args.floor else ""))  # fmt: skip
    print("|---|---|---|---|---|---|---|" + ("---|" if args.floor else ""))
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(args.against, Path(tmp))
        sys.path.insert(0, tmp)
        versions = {
            args.against: importlib.import_module(old),
            f"this checkout ({here})": importlib.import_module("hooklens"),
        }
        for shape, seq in (item.split(":") for item in args.only):
            row(shape, int(seq), versions, args)


if __name__ == "__main__":
    main()
