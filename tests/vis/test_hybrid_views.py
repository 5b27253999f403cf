"""The attention views of a hybrid hold the layers that attend, labelled with their own numbers;
a model with no attention points says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import build

IDS = torch.tensor([[5, 9, 17, 5, 9]])


def _load(model_type: str, folder: Path) -> Any:
    assert build(model_type, folder) is None
    return hl.HookedModel.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def jamba(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _load("jamba", tmp_path_factory.mktemp("jamba"))


def test_attention_view_of_a_hybrid_holds_its_attending_layers(jamba: Any) -> None:
    attending = jamba.spec.attention_layers(jamba.cfg.n_layers)
    assert attending and len(attending) < jamba.cfg.n_layers
    view = hl.vis.AttentionView(jamba, IDS)
    assert view.layer_labels == [f"L{layer}" for layer in attending]
    assert view.n_layers == len(attending) and view.layer == 0
    _, cache = jamba.run_with_cache(IDS)
    want = cache[f"blocks.{attending[0]}.attn.hook_pattern"][0].to(torch.float16).numpy()
    np.testing.assert_array_equal(view._patterns[0], want)
    mixer = next(i for i in range(jamba.cfg.n_layers) if i not in attending)
    with pytest.raises(hl.HookNameError, match="JambaMambaMixer"):
        hl.vis.AttentionView(jamba, IDS, layer=mixer)


def test_head_map_of_a_hybrid_has_a_row_per_attending_layer(jamba: Any) -> None:
    attending = jamba.spec.attention_layers(jamba.cfg.n_layers)
    view = hl.vis.HeadMap(jamba, IDS, answer=5, wrong=9)
    assert view.layer_labels == [f"L{layer}" for layer in attending]
    assert view.scores("induction").shape == (len(attending), jamba.cfg.n_heads)
    # each head's direct logit attribution, from its own hook_result
    dla = view.scores("dla")
    _, cache = jamba.run_with_cache(IDS)
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)
    want = cache.logit_attrs(heads, 5, 9, pos_slice=-1)[:, 0].reshape(dla.shape)
    np.testing.assert_allclose(dla, want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_attention_view_of_a_model_without_attention_points_says_why(tmp_path: Path) -> None:
    model = _load("diffllama", tmp_path)
    with pytest.raises(hl.HookNameError, match="hooklens keeps DiffLlamaAttention whole"):
        hl.vis.AttentionView(model, IDS)


def test_attention_view_of_a_shared_block_holds_the_layers_that_call_it(tmp_path: Path) -> None:
    """Zamba's layers that run its shared transformer block have its pattern: the view holds
    those layers, each with the pattern of its own call."""
    model = _load("zamba", tmp_path)
    calling = model.spec.internals_layers(model.cfg.n_layers)
    assert calling and model.spec.attention_layers(model.cfg.n_layers) == []
    view = hl.vis.AttentionView(model, IDS)
    assert view.layer_labels == [f"L{layer}" for layer in calling]
    _, cache = model.run_with_cache(IDS)
    for row, layer in enumerate(calling):
        want = cache[f"blocks.{layer}.attn.hook_pattern"][0].to(torch.float16).numpy()
        np.testing.assert_array_equal(view._patterns[row], want)
    assert hl.vis.HeadMap(model, IDS).scores("induction").shape == (len(calling), model.cfg.n_heads)


def test_views_of_a_model_with_several_streams(tmp_path: Path) -> None:
    """Hunyuan V4's hyper-connections: the attention view holds every layer, the patching view
    starts at attention's output (there is no resid_pre), the residual view says why not."""
    model = _load("hy_v4", tmp_path / "hy_v4")
    assert model.spec.streams is not None
    view = hl.vis.AttentionView(model, IDS)
    assert view.n_layers == model.cfg.n_layers
    patching = hl.PatchingView(
        model, clean=IDS, corrupted=IDS.flip(1), metric=lambda x: x[:, -1, 3]
    )
    assert patching.point == "attn_out" and "resid_pre" not in patching.points
    with pytest.raises(hl.InputError, match="several parallel streams"):
        hl.ResidualView(model, IDS)
