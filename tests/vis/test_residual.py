"""ResidualView numbers against the model they come from, without a browser."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import hooklens as hl
from hooklens.vis._wire import decode_tensor, pack_buffers

from .tiny import SPACE

IDS = torch.tensor([[0, 2, 3, SPACE, 4]])  # 5 positions, one of them a whitespace token


def test_state_is_metadata(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS, k=5)
    state = view.get_state([k for k in view.keys if not k.startswith("_")])
    first = state.pop("embedded_replies")  # the first screen (the grid), for saved notebooks
    assert list(first) == ["grid?{}"]
    assert pack_buffers(state)[1] == []
    assert view.row_labels == ["0_pre", "1_pre", "2_pre", "final_post"]
    assert view.contrib_labels[:4] == ["embed", "pos_embed", "0_attn_out", "0_mlp_out"]
    assert view.k == 5 and view.tokens == ["<bos>", "The", "capital", " ", "of"]


def test_last_lens_row_is_the_models_prediction(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS)
    logits = gpt2(IDS)
    probs = logits[0].detach().softmax(-1)
    lens = view.lens
    assert lens.max_logit_diff < 1e-4
    np.testing.assert_array_equal(lens.topk_ids[-1, :, 0], probs.argmax(-1).numpy())
    np.testing.assert_allclose(lens.topk_probs[-1, :, 0], probs.max(-1).values.numpy(), rtol=1e-4)


def test_grid_reply(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS)
    _, cache = gpt2.run_with_cache(IDS)
    grid = view.call("grid")
    index = decode_tensor(grid["top_index"]).astype(int)
    assert grid["top_index"]["dtype"] == "int32" and index.shape == (4, 5)
    top = [[grid["strings"][i] for i in row] for row in index]
    want = [[gpt2.to_str_tokens([int(i)])[0] for i in row] for row in view.lens.topk_ids[..., 0]]
    assert top == want
    norms = decode_tensor(grid["norms"])
    want_norms = cache.accumulated_resid()[:, 0].norm(dim=-1).numpy()
    np.testing.assert_allclose(norms, want_norms, rtol=1e-5)
    contrib = decode_tensor(grid["contrib"])
    assert contrib.shape == (2 + 2 * 3, 5) and grid["contrib"]["dtype"] == "float32"
    # Projections on the final residual direction add up to the final residual's norm.
    np.testing.assert_allclose(contrib.sum(0), want_norms[-1], rtol=1e-4)


def test_topk_reply_and_errors(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS, k=4)
    reply = view.call("topk", {"row": 1, "position": 2})
    probs = decode_tensor(reply["probs"])
    assert probs.shape == (4,) and np.all(np.diff(probs) <= 0)
    ids = decode_tensor(reply["ids"]).astype(int)
    assert reply["strings"] == [gpt2.to_str_tokens([int(i)])[0] for i in ids]
    bad, _ = view.handle_request({"id": 3, "method": "topk", "params": {"row": 9, "position": 0}})
    assert bad["ok"] is False and "row must be" in bad["error"]["message"]


def test_a_model_without_tokenizer_shows_ids_as_numbers(gpt2: Any) -> None:
    tokenizer, gpt2.tokenizer = gpt2.tokenizer, None
    try:
        view = hl.ResidualView(gpt2, IDS, k=2)
        strings = view.call("grid")["strings"]
    finally:
        gpt2.tokenizer = tokenizer
    assert view.tokens == ["#0", "#2", "#3", f"#{SPACE}", "#4"]
    assert strings and all(s.startswith("#") for s in strings)


def test_track_gives_probability_and_rank_per_row(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS)
    probs = gpt2(IDS)[0].detach().softmax(-1)  # (pos, vocab)
    token = int(probs[-1].argsort(descending=True)[3])  # the 4th most likely at the end
    reply = view.call("track", {"token": token})
    got_probs, ranks = decode_tensor(reply["probs"]), decode_tensor(reply["ranks"])
    assert got_probs.shape == ranks.shape == (4, 5)
    np.testing.assert_allclose(got_probs[-1], probs[:, token].numpy(), rtol=1e-4)
    assert ranks[-1, -1] == 3
    expected_ranks = (probs > probs[:, token : token + 1]).sum(-1).numpy()
    np.testing.assert_array_equal(ranks[-1], expected_ranks)
    # The top-1 token of the lens has rank 0 wherever it is the top.
    top = int(view.lens.topk_ids[1, 2, 0])
    assert decode_tensor(view.call("track", {"token": top})["ranks"])[1, 2] == 0


def test_track_rejects_what_is_not_one_token(gpt2: Any) -> None:
    view = hl.ResidualView(gpt2, IDS)
    for bad in (10**9, -1, 1.5, "The capital"):
        reply, _ = view.handle_request({"id": "1", "method": "track", "params": {"token": bad}})
        assert reply["ok"] is False and "token" in reply["error"]["message"]
    by_text = view.call("track", {"token": "capital"})
    assert by_text["token"] == 3 and by_text["string"] == "capital"
