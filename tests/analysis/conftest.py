"""Tiny models for the analysis tests: the engine tests' fixtures, and models whose biases are
random too (Hugging Face initializes them to zero, which would hide a misplaced bias)."""

from __future__ import annotations

import functools

import hooklens as hl
from tests.engine.conftest import build_hf, randomize_biases, tiny, tiny_dir, tokens  # noqa: F401


@functools.cache
def with_random_biases(family: str) -> hl.HookedModel:
    """A tiny `family` model (no tokenizer) with every bias and norm parameter random."""
    hf = build_hf(family)
    randomize_biases(hf)
    return hl.HookedModel(hf)
