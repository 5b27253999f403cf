"""The views on a real (tiny, random) GPT-2 wrapped by ``hooklens.HookedModel``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hooklens as hl
from hooklens.vis._attention import decode_pattern_reply
from hooklens.vis._wire import decode_tensor

from .tiny import TEXT, tiny_gpt2


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def test_attention_view_matches_the_cache(model: Any) -> None:
    view = hl.AttentionView(model, TEXT)
    tokens = model.to_tokens(TEXT)
    _, cache = model.run_with_cache(tokens)
    assert view.tokens == model.to_str_tokens(tokens[0])
    assert (view.n_layers, view.n_heads) == (2, 4)
    for layer in range(2):
        got = decode_pattern_reply(view.call("attention", {"layer": layer}))
        want = cache[f"blocks.{layer}.attn.hook_pattern"][0].numpy()
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_residual_view_lens_ends_at_the_models_logits(model: Any) -> None:
    view = hl.ResidualView(model, TEXT, k=3)
    logits, cache = model.run_with_cache(TEXT)
    probs = logits[0].softmax(-1)
    assert view.lens.max_logit_diff < 1e-4
    np.testing.assert_array_equal(view.lens.topk_ids[-1, :, 0], probs.argmax(-1).numpy())
    assert len(view.row_labels) == model.cfg.n_layers + 1
    grid = view.call("grid")
    contrib = decode_tensor(grid["contrib"])
    final = cache.accumulated_resid()[-1, 0].norm(dim=-1).numpy()
    np.testing.assert_allclose(contrib.sum(0), final, rtol=1e-4)


def test_ids_with_the_model(model: Any) -> None:
    ids = model.to_tokens(TEXT)
    view = hl.vis.colored_tokens(tokens=ids, values=np.arange(ids.shape[1]), model=model)
    assert view.tokens == model.to_str_tokens(ids[0])
    with pytest.raises(TypeError, match="to_str_tokens"):
        hl.vis.colored_tokens(tokens=ids, values=np.arange(ids.shape[1]))
