"""Fixtures of the view tests: tiny saved models loaded by the real loader."""

from __future__ import annotations

from typing import Any

import pytest

from .tiny import tiny_gpt2


@pytest.fixture(scope="package")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 3-layer, 4-head GPT-2 with the word-level tokenizer of ``tiny.py``."""
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2-3x4"), n_layers=3, n_heads=4)
