"""Per-family overhead: hooklens vs plain Hugging Face on every wrapped registry type, side by side.

    python bench/families.py                      # every causal-LM type hooklens wraps
    python bench/families.py --types llama bloom  # some of them
    python bench/families.py --device cuda --dtype bfloat16

Each type is built from the registry's tiny config at a bench size (4 layers, width 512, 8 heads
of 64, sequence 128 by default; random weights), saved, and loaded twice: once as plain HF and
once wrapped. Rows, as ratios (lower is better), medians over interleaved calls:
  forward      wrapped forward, no hooks          / HF forward (its default attention)
  cache_resid  run_with_cache, residual points    / HF forward
  derive       finding the adapter (derivation)   / HF's from_pretrained of the same folder
  wrap         all of HookedModel(hf): adapter, points, and the check of a derived adapter
               against the model's own forward    / HF's from_pretrained
The goals: forward <= 1.03, cache_resid <= 1.05, derive < 0.01. Types whose bench-size model
cannot be built are listed with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

#: Bench sizes, replacing the registry's tiny ones (every spelling of a width, depth or count).
SIZES: dict[str, Any] = {
    "num_hidden_layers": 4, "hidden_size": 512, "intermediate_size": 1536,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64, "vocab_size": 8192,
    "max_position_embeddings": 512, "n_layer": 4, "n_embd": 512, "n_head": 8, "n_positions": 512,
    "n_inner": 1536, "ffn_dim": 1536, "num_layers": 4, "d_model": 512,
    "moe_intermediate_size": 384, "q_lora_rank": 256, "kv_lora_rank": 256,
    "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64, "d_kv": 64,
    "ffn_hidden_size": 1536, "linear_head_dim": 64, "linear_num_heads": 8,
    "vocab_size_per_layer_input": 8192, "decoder_layers": 4, "encoder_layers": 1,
    "decoder_ffn_dim": 1536, "encoder_ffn_dim": 128, "decoder_attention_heads": 8,
    "encoder_attention_heads": 8, "dim_ff": 1536, "dim_head": 64,
}  # fmt: skip


def _median_ms(fn: Any, calls: int) -> float:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e3


def measure(model_type: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One type's row: the four ratios, or {"skip": reason}."""
    import transformers as tf

    import hooklens as hl
    from hooklens.architectures import adapter_for_model
    from hooklens.architectures._registry import tiny_config

    try:
        config = tiny_config(model_type, SIZES)
        torch.manual_seed(0)
        tf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        if type(tf.AutoConfig.from_pretrained(folder)) is not type(config):
            config.save_pretrained(folder)
    except Exception as exc:  # the model's own code refuses the bench size
        return {"skip": f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"}
    dtype = getattr(torch, args.dtype)

    def hf_load() -> Any:
        return tf.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval().to(args.device)

    t = time.perf_counter()
    plain = hf_load()
    load_s = time.perf_counter() - t
    for_wrap = hf_load()
    t = time.perf_counter()
    try:
        adapter_for_model(for_wrap)
    except hl.UnsupportedModelError:
        return {"skip": "not wrapped"}
    derive_s = time.perf_counter() - t
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            model = hl.HookedModel(for_wrap)
            wrap_s = time.perf_counter() - t
    except hl.UnsupportedModelError:
        return {"skip": "not wrapped"}
    vocab = min(config.get_text_config().vocab_size, 8192)
    tokens = torch.randint(3, vocab, (1, args.seq), device=args.device)
    resid = lambda n: "resid" in n  # noqa: E731
    runs = {
        "hf": lambda: plain(tokens),
        "forward": lambda: model(tokens),
        "cache_resid": lambda: model.run_with_cache(tokens, names_filter=resid),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.rounds):  # interleaved, so a busy spell hits every variant
            for name, fn in runs.items():
                times[name].append(_median_ms(fn, args.calls))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "adapter": "derived" if model.spec.derived else "explicit",
        "hf_ms": med["hf"],
        "forward": med["forward"] / med["hf"],
        "cache_resid": med["cache_resid"] / med["hf"],
        "derive": derive_s / load_s,
        "wrap": wrap_s / load_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", nargs="*", help="model types (default: every registry type)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    from hooklens.architectures._registry import causal_lm_types

    logging.set_verbosity_error()
    types = args.types or list(causal_lm_types())
    print(f"{args.device} {args.dtype}, seq {args.seq}, {args.threads} threads, {args.rounds} "
          f"rounds of {args.calls} calls; ratios to plain HF (lower is better)")  # fmt: skip
    print("| model type | adapter | HF forward ms | forward (≤ 1.03) | cache_resid (≤ 1.05) "
          "| derive / load (< 0.01) | wrap / load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rows, skipped = [], []
    for model_type in types:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(model_type, args, Path(tmp))
        if "skip" in row:
            skipped.append((model_type, row["skip"]))
            continue
        rows.append(row)
        print(f"| {model_type} | {row['adapter']} | {row['hf_ms']:.1f} | {row['forward']:.3f} "
              f"| {row['cache_resid']:.3f} | {row['derive']:.4f} | {row['wrap']:.3f} |",
              flush=True)  # fmt: skip
    if rows:
        keys = ("forward", "cache_resid", "derive", "wrap")
        print("\nmedian over types: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in keys))  # fmt: skip
    wrapped_skips = [(t, why) for t, why in skipped if why != "not wrapped"]
    if wrapped_skips:
        print("\nnot measured (the bench-size model could not be built):", file=sys.stderr)
        for t, why in wrapped_skips:
            print(f"  {t}: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
