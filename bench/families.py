"""Per-family overhead: hooklens vs plain Hugging Face on every wrapped registry type, side by side.

    python bench/families.py                      # every causal-LM type hooklens wraps
    python bench/families.py --types llama bloom  # some of them
    python bench/families.py --device cuda --dtype bfloat16
    python bench/families.py --size 1b --no-forward --types olmo2 llama  # derive and wrap only

Each type is built from the registry's tiny config at a size (--size: `bench`, 4 layers, width
512, 8 heads of 64, the default; `360m` and `1b`, about SmolLM2-360M's and a 1B model's shapes;
sequence 128 by default; random weights), saved, loaded once untimed (a warm page cache for the
timed loads), then twice more: once as plain HF and once to be wrapped. The load lasts until the
model's first output (from_pretrained, then a forward of 5 tokens): transformers may map the
weights and read each from the disk when a forward first uses it. With --cold, the folder's files
are dropped from the page cache before each timed load (as on the first load after a reboot or
of a new download: the weights are read from the disk). Rows, as ratios (lower is better),
medians over interleaved calls:
  forward      wrapped forward, no hooks          / HF forward (its default attention; no KV
               cache: use_cache=False, as hooklens's forward)
  cache_resid  run_with_cache, residual points    / HF forward (with several parallel streams,
               which have no point: hook_attn_out and hook_mlp_out)
  derive       finding the adapter (derivation, on the loaded model)  / the load
  wrap         the load with hooklens: from_pretrained, HookedModel(hf) (adapter, points, and
               the check of a derived adapter against the model's own forward: two forwards of
               5 tokens) and the first forward   / the load
The goals: forward <= 1.03, cache_resid <= 1.05, derive < 0.01. Types whose model cannot be
built at the size, or whose derived adapter the check at load refuses there, are listed with
the reason.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def _sizes(layers: int, width: int, ffn: int, heads: int, kv: int, vocab: int, positions: int
           ) -> dict[str, Any]:  # fmt: skip
    """Sizes replacing the registry's tiny ones, in every spelling of a width, depth or count
    (heads of 64; a mixture's experts together as wide as the dense feed-forward)."""
    return {
        "num_hidden_layers": layers, "hidden_size": width, "intermediate_size": ffn,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": 64,
        "vocab_size": vocab, "max_position_embeddings": positions, "n_layer": layers,
        "n_embd": width, "n_head": heads, "n_positions": positions, "n_inner": ffn,
        "ffn_dim": ffn, "num_layers": layers, "d_model": width,
        "moe_intermediate_size": ffn // 4, "q_lora_rank": width // 2,
        "kv_lora_rank": width // 2, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32,
        "v_head_dim": 64, "d_kv": 64, "ffn_hidden_size": ffn, "linear_head_dim": 64,
        "linear_num_heads": heads, "vocab_size_per_layer_input": vocab,
        "unpadded_vocab_size": vocab,
        "decoder_layers": layers, "encoder_layers": 1, "decoder_ffn_dim": ffn,
        "encoder_ffn_dim": 128, "decoder_attention_heads": heads,
        "encoder_attention_heads": heads, "dim_ff": ffn, "dim_head": 64,
    }  # fmt: skip


#: Model sizes (--size): the default bench size, and about SmolLM2-360M's and a 1B model's
#: shapes (the registry's tiny number of experts, 4, stays: a mixture is as big as its dense
#: counterpart where experts are `moe_intermediate_size` wide, 4x bigger where they take the
#: dense `intermediate_size`).
SIZES: dict[str, dict[str, Any]] = {
    "bench": _sizes(4, 512, 1536, 8, 4, 8192, 512),
    "360m": _sizes(32, 960, 2560, 15, 5, 49152, 2048),
    "1b": _sizes(16, 2048, 8192, 32, 8, 32000, 2048),
}


def _median_ms(fn: Any, calls: int) -> float:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e3


def evict(folder: Path) -> None:
    """Drop `folder`'s files from the page cache (written back first: dirty pages stay), so the
    next load reads them from the disk."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_up(model_type: str) -> None:
    """Wrap and run a tiny model of `model_type` once, untimed: the process's one-time costs
    (lazy imports, first calls of each kernel) would otherwise count in the first type's row."""
    import transformers as tf

    import hooklens as hl
    from hooklens.architectures._registry import tiny_config

    try:
        hf = tf.AutoModelForCausalLM.from_config(tiny_config(model_type)).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = hl.HookedModel(hf)
        with torch.inference_mode():
            model.run_with_cache(torch.tensor([[3, 4, 5]]))
    except Exception:  # a type that cannot be wrapped is reported by measure
        pass


def measure(model_type: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One type's row: the four ratios, or {"skip": reason}."""
    import transformers as tf

    import hooklens as hl
    from hooklens.architectures import adapter_for_model
    from hooklens.architectures._registry import tiny_config

    try:
        config = tiny_config(model_type, SIZES[args.size])
        with torch.device("meta"):  # counted before it is built: a key the sizes miss (BLT)
            size = sum(p.numel() for p in tf.AutoModelForCausalLM.from_config(config).parameters())
        if size > args.max_params:
            return {"skip": f"{size:,} parameters at this size (a size key is not set)"}
        torch.manual_seed(0)
        tf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        gc.collect()
        if type(tf.AutoConfig.from_pretrained(folder)) is not type(config):
            config.save_pretrained(folder)
    except Exception as exc:  # the model's own code refuses the bench size
        return {"skip": f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"}
    dtype = getattr(torch, args.dtype)

    def hf_load() -> Any:
        if args.cold:
            evict(folder)
        return tf.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval().to(args.device)

    vocab = min(config.get_text_config().vocab_size, 8192)
    first = torch.randint(3, vocab, (1, 5), device=args.device)  # a first prompt
    hf_load()  # untimed: both timed loads below read the folder from a warm page cache
    gc.collect()
    # the load lasts until the model has given its first output: from_pretrained may map the
    # weights and read each from the disk when a forward first uses it
    t = time.perf_counter()
    plain = hf_load()
    with torch.inference_mode():
        plain(first)
    load_s = time.perf_counter() - t
    t = time.perf_counter()  # on weights in memory: what derivation adds to the load
    try:
        adapter_for_model(plain)
    except hl.UnsupportedModelError:
        return {"skip": "not wrapped"}
    except Exception as exc:  # a bug this bench found: listed, the run goes on
        return {"skip": f"deriving raised {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"}
    derive_s = time.perf_counter() - t
    if args.no_forward:  # the plain model is needed only to compare forwards
        del plain
        gc.collect()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            model = hl.HookedModel(hf_load())
            with torch.inference_mode():
                model(first)
            wrapped_s = time.perf_counter() - t
    except hl.UnsupportedModelError as exc:  # derived, but its check refused it at this size
        found = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("- ")]
        return {"skip": f"refused at this size: {(found or [str(exc)])[0][:120]}"}
    ratios = {
        "adapter": "derived" if model.spec.derived else "explicit",
        "load_s": load_s,
        "derive": derive_s / load_s,
        "wrap": wrapped_s / load_s,
    }
    if args.no_forward:
        return {**ratios, "hf_ms": math.nan, "forward": math.nan, "cache_resid": math.nan}
    tokens = torch.randint(3, vocab, (1, args.seq), device=args.device)
    # several parallel streams have no point on the stream: what the blocks write into them
    parts = ("hook_attn_out", "hook_mlp_out")
    resid = (
        (lambda n: "resid" in n) if model.spec.streams is None else (lambda n: n.endswith(parts))
    )
    runs = {
        "hf": lambda: plain(tokens, use_cache=False),  # no KV cache, as hooklens's forward
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
        **ratios,
        "hf_ms": med["hf"],
        "forward": med["forward"] / med["hf"],
        "cache_resid": med["cache_resid"] / med["hf"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--max-params",
        type=float,
        default=2e9,
        help="skip a type whose model has more parameters at this size",
    )
    parser.add_argument("--types", nargs="*", help="model types (default: every registry type)")
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="bench",
        help="model size: the bench size, or about SmolLM2-360M's or a 1B's",
    )
    parser.add_argument(
        "--no-forward",
        action="store_true",
        help="measure derive and wrap only (no forward or caching rows)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time loads from the disk (the folder dropped from the page cache before each)",
    )
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
    logging.disable_progress_bar()  # the table only
    types = args.types or list(causal_lm_types())
    print(f"size {args.size}, {'cold' if args.cold else 'warm'} loads, {args.device} {args.dtype}, "
          f"seq {args.seq}, {args.threads} "
          f"threads, {args.rounds} rounds of {args.calls} calls; ratios to plain HF (lower is "
          "better)")  # fmt: skip
    print("| model type | adapter | load s | HF forward ms | forward (≤ 1.03) "
          "| cache_resid (≤ 1.05) | derive / load (< 0.01) | load wrapped / load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for model_type in types:  # a derived type warms up derivation's code paths too
        warm_up(model_type)
    rows, skipped = [], []
    for model_type in types:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                row = measure(model_type, args, Path(tmp))
            except Exception as exc:  # the model's own forward fails at this size (Kimi Linear)
                row = {"skip": f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"}
        if "skip" in row:
            skipped.append((model_type, row["skip"]))
            continue
        rows.append(row)
        gc.collect()  # the type's models, before the next type's are built
        print(f"| {model_type} | {row['adapter']} | {row['load_s']:.2f} | {row['hf_ms']:.1f} "
              f"| {row['forward']:.3f} "
              f"| {row['cache_resid']:.3f} | {row['derive']:.4f} | {row['wrap']:.3f} |",
              flush=True)  # fmt: skip
    if rows:
        keys = ("forward", "cache_resid", "derive", "wrap")
        print("\nmedian over types: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in keys))  # fmt: skip
    wrapped_skips = [(t, why) for t, why in skipped if why != "not wrapped"]
    if wrapped_skips:
        print("\nnot measured (the model could not be built or wrapped at this size):",
              file=sys.stderr)  # fmt: skip
        for t, why in wrapped_skips:
            print(f"  {t}: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
