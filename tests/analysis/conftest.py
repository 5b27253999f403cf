"""Tiny models for the analysis tests: the engine tests' fixtures, and models whose biases are
random too (Hugging Face initializes them to zero, which would hide a misplaced bias)."""

from __future__ import annotations

import functools

import torch

import hooklens as hl
from tests.engine.conftest import build_hf, tiny, tiny_dir, tokens  # noqa: F401


@functools.cache
def with_random_biases(family: str) -> hl.HookedModel:
    """A tiny `family` model (no tokenizer) with every bias and norm parameter random."""
    hf = build_hf(family)
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.ndim == 1 and name.endswith("bias"):
                p.normal_(0, 0.3)
    return hl.HookedModel(hf)
