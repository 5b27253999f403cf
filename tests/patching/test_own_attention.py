"""Sweeps on families whose attention module computes attention itself (hooklens reimplements
its forward while an attention point is hooked): the cells equal one forward pass per patch."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import hooklens as hl
from hooklens import patching
from hooklens._engine.module_hooks import own_forward
from hooklens.architectures._registry import build, load

from .conftest import prompt_pair
from .test_sweep import METRIC, _loop

#: the families with a reimplemented attention forward, and two fused-projection families without
FAMILIES = ["gpt_neo", "bloom", "falcon", "codegen", "mpt", "xglm", "gpt_bigcode", "persimmon"]


@pytest.fixture(scope="module", params=FAMILIES)
def own_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(request.param)
    assert build(request.param, folder) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.NoTokenizerWarning)
        outcome, model = load(request.param, folder)
    assert model is not None, outcome.reason
    return model


@pytest.mark.parametrize("point", ["resid_pre", "z", "pattern", "q", "k", "v"])
def test_sweep_equals_one_forward_per_patch(own_model: Any, point: str) -> None:
    clean, corrupted = prompt_pair()
    result = patching.sweep(own_model, clean, corrupted, METRIC, point=point, batch_size=3,
                            normalize=False, progress=False)  # fmt: skip
    reference = _loop(own_model, corrupted, clean, result)
    torch.testing.assert_close(result.raw, reference, atol=1e-4, rtol=0)
    assert result.raw.std() > 0


def test_own_forward_is_installed_only_while_attention_is_hooked(own_model: Any) -> None:
    blocks = own_model.hf_model.get_submodule(own_model.spec.blocks)
    attn = blocks[0].get_submodule(own_model.spec.attn)
    seen = []

    def look(x: torch.Tensor, hook: Any) -> None:
        seen.append(getattr(own_forward(attn), "__func__", None) is own_model.spec.attn_forward)

    with torch.no_grad():
        own_model.run_with_hooks(
            torch.tensor([[5, 6, 7]]), fwd_hooks=[("blocks.0.attn.hook_z", look)]
        )
    assert seen == [own_model.spec.attn_forward is not None]  # swapped only where reimplemented
    assert "forward" not in attn.__dict__  # neither the swap nor a hook is left
