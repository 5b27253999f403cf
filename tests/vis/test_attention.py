"""AttentionView / attention_heads / attention_patterns state, without a browser."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._attention import decode_pattern_reply
from hooklens.vis._wire import pack_buffers

from .tiny import IMG, NEWLINE, SCRIPT, SPACE

# Token ids: the whitespace and markup tokens cannot come from text with a word-level tokenizer.
IDS = torch.tensor([[0, 2, IMG, SPACE, NEWLINE, SCRIPT, 3]])


def _synced_state(widget: hl.vis.AttentionPatterns) -> dict:
    keys = [k for k in widget.keys if not k.startswith("_")]
    return widget.get_state(keys)


def test_view_state_is_small_metadata_only(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, IDS)
    state = _synced_state(view)
    # Patterns never sit in the view's traits; only the first screen's reply (the shown layer,
    # within FIRST_SCREEN_BYTES) is kept for saved notebooks.
    first = state.pop("embedded_replies")
    _, buffers = pack_buffers(state)
    assert buffers == []
    _, first_buffers = pack_buffers(first)
    assert [b.nbytes for b in first_buffers] == [view.pattern(0).nbytes]
    assert state["tokens"] == gpt2.to_str_tokens(IDS[0])
    assert state["tokens"][2:6] == ["<img/src=x/onerror=alert(1)>", " ", "\n", "</script>"]
    assert (state["n_layers"], state["n_heads"], state["layer"], state["head"]) == (3, 4, 0, 0)
    assert len(json.dumps({k: v for k, v in state.items() if k != "layout"})) < 2000


def test_layer_request_returns_that_layers_patterns_as_float16(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, IDS)
    _, cache = gpt2.run_with_cache(IDS)
    reply, buffers = view.handle_request(
        {"kind": "hl:request", "id": "x", "method": "attention", "params": {"layer": 2}}
    )
    assert reply["ok"] and reply["result"]["layer"] == 2
    assert reply["result"]["pattern"]["dtype"] == "float16"
    assert reply["result"]["pattern"]["shape"] == [4, 7, 7]
    # One layer, two bytes per value: switching layers does not resend the model.
    assert sum(len(b) for b in buffers) == 4 * 7 * 7 * 2
    got = decode_pattern_reply(view.call("attention", {"layer": 2}))
    want = cache["blocks.2.attn.hook_pattern"][0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_bad_layer_is_an_error_reply_and_trait_error(gpt2: Any) -> None:
    view = hl.AttentionView(gpt2, IDS)
    reply, _ = view.handle_request({"id": 1, "method": "attention", "params": {"layer": 5}})
    assert reply["ok"] is False and "[0, 3)" in reply["error"]["message"]
    with pytest.raises(Exception, match="layer must be in"):
        view.layer = 3
    view.layer = 2
    with pytest.raises(Exception, match="head must be in"):
        view.head = 4


def test_text_and_token_ids_are_accepted_as_input(gpt2: Any) -> None:
    text = "The capital of Ireland is"
    from_text = hl.AttentionView(gpt2, text)
    assert from_text.tokens == gpt2.to_str_tokens(text)
    ids = gpt2.to_tokens(text)
    for given in (ids, ids[0], ids[0].tolist()):
        assert hl.AttentionView(gpt2, given).tokens == from_text.tokens
    with pytest.raises(hl.InputError, match="not token strings"):
        hl.AttentionView(gpt2, ["The", "capital"])
    with pytest.raises(hl.InputError, match="one prompt"):
        hl.AttentionView(gpt2, ids.repeat(2, 1))


@pytest.mark.parametrize("kind", ["torch", "numpy", "batched"])
def test_attention_heads_accepts_circuitsvis_arguments(kind: str) -> None:
    pattern = torch.rand(2, 3, 3)
    attention = {"torch": pattern, "numpy": pattern.numpy(), "batched": pattern[None]}[kind]
    view = hl.vis.attention_heads(attention=attention, tokens=["a", "b", "c"])
    assert (view.n_layers, view.n_heads, view.mode) == (1, 2, "heads")
    assert view.head_names == ["Head 0", "Head 1"]
    np.testing.assert_allclose(view.pattern(0).astype(np.float32), pattern.numpy(), atol=1e-3)
    view = hl.vis.attention_heads(
        pattern, ["a", "b", "c"], attention_head_names=["x", "y"], max_value=0.5
    )
    assert view.head_names == ["x", "y"] and view.max_value == 0.5


def test_attention_patterns_signature() -> None:
    view = hl.vis.attention_patterns(tokens=["a", "b"], attention=np.eye(2)[None])
    assert view.mode == "patterns" and view.n_heads == 1


def test_ids_instead_of_strings(gpt2: Any) -> None:
    ids = gpt2.to_tokens("The capital", prepend_bos=False)
    with pytest.raises(TypeError, match="to_str_tokens"):
        hl.vis.attention_heads(attention=torch.rand(1, 2, 2), tokens=ids)
    with pytest.raises(TypeError, match="to_str_tokens"):
        hl.vis.colored_tokens(tokens=ids, values=[1, 2])
    view = hl.vis.attention_heads(attention=torch.rand(1, 2, 2), tokens=ids, model=gpt2)
    assert view.tokens == ["The", "capital"]
    got = hl.vis.colored_tokens(tokens=ids[0], values=[1, 2], model=gpt2).tokens
    assert got == ["The", "capital"]
    by_tokenizer = hl.vis.colored_tokens(tokens=ids, values=[1, 2], tokenizer=gpt2.tokenizer)
    assert by_tokenizer.tokens == ["The", "capital"]


def test_shape_mismatch_is_explained() -> None:
    with pytest.raises(ValueError, match="expected \\(n_heads, n_tokens, n_tokens\\)"):
        hl.vis.attention_heads(attention=torch.rand(2, 3, 3), tokens=["a", "b"])
    with pytest.raises(ValueError, match="must have shape"):
        hl.vis.attention_heads(attention=torch.rand(2, 2, 3, 3), tokens=["a", "b", "c"])
