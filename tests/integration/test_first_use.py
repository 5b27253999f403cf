"""What a newcomer meets first: a quiet demo load, and single-token errors that fit the
tokenizer at hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hooklens as hl

ROOT = Path(__file__).resolve().parents[2]


def test_demo_model_loads_without_printing() -> None:
    """No weight-loading bar (or anything else) for the 1.4 MB demo model."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "import hooklens as hl; hl.demo_model()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert (done.stdout, done.stderr) == ("", "")


def test_demo_load_leaves_other_progress_bars_alone() -> None:
    """The demo load swaps transformers' tqdm hook for its own duration only."""
    from transformers.utils import logging as hf_logging

    def mine(factory: Any, args: Any, kwargs: Any) -> Any:
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(mine)
    try:
        hl.demo_model()
        assert hf_logging.set_tqdm_hook(mine) is mine
    finally:
        hf_logging.set_tqdm_hook(previous)


@pytest.fixture(scope="module")
def demo() -> hl.HookedModel:
    return hl.demo_model()


def test_multi_token_answer_suggests_single_tokens_of_a_character_vocabulary(
    demo: hl.HookedModel,
) -> None:
    with pytest.raises(ValueError, match="5 tokens") as info:
        hl.metrics.logit_diff(demo, " Mary", "J")
    message = str(info.value)
    assert "'M', 'a', 'r', 'y'" in message
    assert "e.g. ' Mary'" not in message  # the old advice, wrong for this tokenizer
    for suggestion in ("M", "a", "r", "y"):
        hl.metrics.logit_diff(demo, suggestion, "J")  # each suggestion works as given


def test_no_suggestion_when_nothing_near_is_one_token(demo: hl.HookedModel) -> None:
    with pytest.raises(ValueError, match="wrong answer '  ' is 2 tokens") as info:
        hl.metrics.logit_diff(demo, "M", "  ")
    assert "to_str_tokens" in str(info.value)


@pytest.mark.slow
def test_multi_token_answer_suggests_words_of_a_bpe_vocabulary(smollm2: hl.HookedModel) -> None:
    with pytest.raises(ValueError, match="answer 'Mary Ann' is 2 tokens") as info:
        hl.metrics.logit_diff(smollm2, "Mary Ann", " John")
    message = str(info.value)
    assert "' Mary'" in message and "' Ann'" in message
    hl.metrics.logit_diff(smollm2, " Mary", " Ann")
