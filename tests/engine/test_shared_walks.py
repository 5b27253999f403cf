"""Deriving an adapter walks a model's modules once: answers shared within `shared_walks()`."""

from __future__ import annotations

import pytest
import transformers as tf
from torch import nn

from hooklens.architectures import adapter_for_model
from hooklens.architectures._derive import derive
from hooklens.architectures._registry import tiny_config
from hooklens.architectures._seq2seq import with_embeddings
from hooklens.architectures._towers import named_modules, shared_walks, walked


def test_an_answer_is_computed_once_per_model_and_question_within_the_scope() -> None:
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    calls: list[str] = []

    def ask(model: nn.Module, tag: str) -> str:
        return walked(model, (tag,), lambda: calls.append(tag) or tag)

    with shared_walks():
        assert [ask(a, "x"), ask(a, "x"), ask(b, "x"), ask(a, "y")] == ["x", "x", "x", "y"]
    assert calls == ["x", "x", "y"]  # a's x once, b's x, a's y
    ask(a, "x")
    ask(a, "x")
    assert calls == ["x", "x", "y", "x", "x"]  # outside the scope: every time


def test_an_exception_is_raised_again_without_computing_again() -> None:
    model = nn.Linear(2, 2)
    calls = []

    def fail() -> None:
        calls.append(1)
        raise ValueError("no blocks")

    with shared_walks():
        for _ in range(2):
            with pytest.raises(ValueError, match="no blocks"):
                walked(model, ("blocks",), fail)
    assert calls == [1]


def test_shared_module_list_is_the_models_walk() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 1)))
    with shared_walks():
        assert named_modules(model) == list(model.named_modules())
        assert named_modules(model) is named_modules(model)


@pytest.mark.parametrize("model_type", ["olmo2", "granite", "qwen3_moe"])
def test_a_derived_adapter_is_the_same_with_shared_walks(model_type: str) -> None:
    hf = tf.AutoModelForCausalLM.from_config(tiny_config(model_type)).eval()
    assert adapter_for_model(hf) == with_embeddings(hf, derive(hf))  # the latter: unshared
