"""HeadMap / LogitAttributionView numbers: head scores and DLA checked against direct sums."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._head_scores import pattern_scores
from hooklens.vis._wire import decode_tensor

from .tiny import TEXT


def test_pattern_scores_by_hand() -> None:
    n = 5
    p = np.zeros((1, 2, n, n), np.float32)
    p[0, 0, :, 0] = 1.0  # head 0: everything to the first token
    for q in range(1, n):
        p[0, 1, q, q - 1] = 1.0  # head 1: previous token
    ids = [7, 1, 2, 1, 2]  # repeats at q=3 (key 2) and q=4 (key 3)
    got = pattern_scores(p, ids)
    # Query 1's previous token is the first token: it counts for both scores.
    np.testing.assert_allclose(got["first_token"], [[1.0, 0.25]])
    np.testing.assert_allclose(got["previous_token"], [[0.25, 1.0]])
    # Induction: query 3 -> key 2, query 4 -> key 3; head 1 attends 3 -> 2 and 4 -> 3.
    np.testing.assert_allclose(got["induction"], [[0.0, 1.0]])
    assert np.isnan(pattern_scores(p, [1, 2, 3, 4, 5])["induction"]).all()


def test_dla_per_head_and_layer_add_up_to_the_logit_difference(gpt2: Any) -> None:
    view = hl.vis.LogitAttributionView(gpt2, TEXT, answer="Dublin", wrong="Paris")
    assert view.score == "dla" and view.show_layers and view.answer == "Dublin"
    heads = decode_tensor(view.call("scores", {"kind": "dla"})["values"])
    layers = view.call("layers")
    labels, per_layer = layers["labels"], decode_tensor(layers["values"])
    assert labels[:4] == ["embed", "pos_embed", "L0 attn", "L0 mlp"] and heads.shape == (3, 4)
    logits, cache = gpt2.run_with_cache(TEXT)
    dublin, paris = gpt2.to_single_token("Dublin"), gpt2.to_single_token("Paris")
    # The final norm is applied with its cached scale, so the parts sum to the logit difference
    # up to the norm's centring and the unembedding bias (GPT-2 has neither at this scale).
    diff = float((logits[0, -1, dublin] - logits[0, -1, paris]).detach())
    assert per_layer.sum() == pytest.approx(diff, rel=1e-3, abs=1e-4)
    # A layer's heads add up to its attention output minus the output bias's share.
    scale = cache["ln_final.hook_scale"][0, -1]
    direction = gpt2.W_U[:, dublin] - gpt2.W_U[:, paris]
    for layer in range(3):
        z = cache[f"blocks.{layer}.attn.hook_z"][0, -1]  # (heads, d_head)
        w_o = gpt2.W_O[layer]  # (heads, d_head, d_model)
        out = torch.einsum("hd,hdm->hm", z, w_o)
        centred = out - out.mean(-1, keepdim=True)
        want = (centred / scale) @ direction
        np.testing.assert_allclose(heads[layer], want.detach().numpy(), rtol=1e-3, atol=1e-4)


def test_head_map_requests_and_errors(gpt2: Any) -> None:
    view = hl.vis.HeadMap(gpt2, TEXT)
    assert view.score_kinds == ["first_token", "previous_token", "induction"]
    assert view.score == "induction"
    assert list(view.embedded_replies) == ['scores?{"kind":"induction"}']  # saved first screen
    view.layer, view.head = 1, 2
    assert 'pattern?{"head":2,"layer":1}' in view.embedded_replies
    _, cache = gpt2.run_with_cache(TEXT)
    pattern = decode_tensor(view.call("pattern", {"layer": 2, "head": 1})["pattern"])
    np.testing.assert_allclose(pattern, cache["blocks.2.attn.hook_pattern"][0, 1], atol=1e-3)
    first = decode_tensor(view.call("scores", {"kind": "first_token"})["values"])
    want = cache["blocks.1.attn.hook_pattern"][0, :, 1:, 0].mean(-1).numpy()
    np.testing.assert_allclose(first[1], want, atol=1e-3)
    with pytest.raises(hl.vis._widget.RpcError, match="answer pair"):
        view.call("layers")
    with pytest.raises(Exception, match="score must be one of"):
        view.call("scores", {"kind": "dla"})
    with pytest.raises(ValueError, match="both `answer` and `wrong`"):
        hl.vis.HeadMap(gpt2, TEXT, answer="Dublin")
    # Only what is on screen is fetched live; an export holds every score and pattern.
    assert len(list(view.static_requests())) == 3 + 3 * 4
