"""The demo model that ships inside hooklens: explore a transformer with no download.

A 2-layer character-level Llama trained by ``scripts/train_demo_model.py`` on generated text
with repeated spans; it has a previous-token head and an induction head, recorded in
``hooklens.json`` beside the weights (see :func:`demo_model_info`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine.model import HookedModel


def demo_model_path() -> Path:
    """The folder of the demo model inside the installed package (Hugging Face format)."""
    return Path(__file__).resolve().parent / "_demo_model"


def demo_model_info() -> dict[str, Any]:
    """What the training script measured: the induction and previous-token heads and scores.

    Keys include ``induction_head`` and ``previous_token_head`` (each ``{"layer", "head",
    "score"}``) and the per-head score tables ``induction_scores`` and ``previous_token_scores``
    (``[n_layers][n_heads]``).
    """
    info: dict[str, Any] = json.loads((demo_model_path() / "hooklens.json").read_text())
    return info


def demo_model(**kwargs: Any) -> HookedModel:
    """Load the embedded demo model through ``HookedModel.from_pretrained``, offline.

    Args:
        **kwargs: passed on to ``HookedModel.from_pretrained`` (device, dtype, ...).
    """
    # Imported here so that the demo module does not pull in the engine (and torch) on import.
    from ._engine.model import HookedModel

    with _no_weight_progress_bar():
        return HookedModel.from_pretrained(str(demo_model_path()), **kwargs)


@contextmanager
def _no_weight_progress_bar() -> Iterator[None]:
    """Silence transformers' "Loading weights" bar while the demo model loads: its 28 tensors
    load in milliseconds, and a bar on every load is noise. Real downloads and long loads keep
    theirs (only this block swaps transformers' tqdm hook, then restores the previous one)."""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:  # an older transformers without the hook: keep its bar
        yield
        return

    def quiet(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return factory(*args, **{**kwargs, "disable": True})

    previous = set_hook(quiet)
    try:
        yield
    finally:
        set_hook(previous)
