"""TransformerLens's cache keys, get_act_name, token helpers and utils."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hooklens as hl


@pytest.fixture
def cache(tiny, tokens):
    with torch.no_grad():
        return tiny("gpt2").run_with_cache(tokens)[1]


def test_cache_keys_and_aliases(cache):
    assert cache["pattern", 0, "attn"] is cache["blocks.0.attn.hook_pattern"]
    assert cache["attn", 1] is cache["blocks.1.attn.hook_pattern"]  # TransformerLens's alias
    assert cache["attn_logits", 1] is cache["blocks.1.attn.hook_attn_scores"]
    assert cache["scale", 0, "ln1"] is cache["blocks.0.ln1.hook_scale"]
    assert cache["normalized", 1, "ln2"] is cache["blocks.1.ln2.hook_normalized"]
    assert cache["embed"] is cache["hook_embed"]
    assert cache["pos_embed"] is cache["hook_pos_embed"]
    assert cache["scale"] is cache["ln_final.hook_scale"]
    assert cache["k1"] is cache["blocks.1.attn.hook_k"]
    assert cache["post", 0] is cache["blocks.0.mlp.hook_post"]
    assert cache["hook_z", 0] is cache["attn.hook_z", 0] is cache["blocks.0.attn.hook_z"]
    with pytest.raises(KeyError, match="ln1"):
        cache["scale", 0]  # which norm? the error says how to ask
    with pytest.raises(KeyError, match="SoLU"):
        cache["mid", 0]


def test_get_act_name():
    get = hl.utils.get_act_name
    assert get("k", 6, "a") == "blocks.6.attn.hook_k"
    assert get("pre", 2) == "blocks.2.mlp.hook_pre"
    assert get("embed") == "hook_embed"
    assert get("normalized", 27, "ln2") == "blocks.27.ln2.hook_normalized"
    assert get("k6") == "blocks.6.attn.hook_k"
    assert get("scale4ln1") == "blocks.4.ln1.hook_scale"
    assert get("resid_post", 3) == "blocks.3.hook_resid_post"
    assert get("rot_q", 1) == "blocks.1.attn.hook_rot_q"
    assert get("blocks.0.attn.hook_z") == "blocks.0.attn.hook_z"
    with pytest.raises(hl.HookNameError, match="hook_mid"):
        get("mlp_mid", 0)
    with pytest.raises(hl.HookNameError, match="not one of hooklens"):
        get("foo", 0)


def test_token_helpers(tiny):
    model = tiny("llama")
    text = "the cat sat on the mat"
    assert model.get_token_position("the", text) == 1  # after <bos>
    assert model.get_token_position("the", text, mode="last") == 5
    assert model.get_token_position(model.to_single_token("mat"), model.to_tokens(text)) == 6
    with pytest.raises(hl.InputError, match="does not occur"):
        model.get_token_position("dog", text)
    w_u = model.W_U
    cat = model.to_single_token("cat")
    torch.testing.assert_close(model.tokens_to_residual_directions("cat"), w_u[:, cat])
    torch.testing.assert_close(model.tokens_to_residual_directions(torch.tensor(cat)), w_u[:, cat])
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    dirs = model.tokens_to_residual_directions(ids)
    assert dirs.shape == (2, 3, model.cfg.d_model)
    torch.testing.assert_close(dirs[1, 2], w_u[:, 8])


def test_utils(tiny, capsys):
    model = tiny("llama")
    assert isinstance(hl.utils.to_numpy(torch.ones(2, requires_grad=True)), np.ndarray)
    assert hl.utils.to_numpy([1, 2]).tolist() == [1, 2]
    assert hl.utils.get_device().type in ("cpu", "cuda", "mps")
    hl.utils.test_prompt("the cat sat on the", "mat", model, prepend_space_to_answer=False, top_k=3)
    out = capsys.readouterr().out
    assert "Tokenized prompt: ['<bos>', 'the', 'cat', 'sat', 'on', 'the']" in out
    assert "Tokenized answer: ['mat']" in out
    with torch.no_grad():
        probs = model("the cat sat on the").softmax(-1)[0, -1]
    mat = model.to_single_token("mat")
    rank = int((probs > probs[mat]).sum())
    assert f"Rank: {rank: <8}" in out and f"Prob: {probs[mat].item():6.2%}" in out
    assert out.count("th token.") == 3 and f"[('mat', {rank})]" in out
