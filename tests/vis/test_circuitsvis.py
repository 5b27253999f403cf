"""Every CircuitsVis function in hooklens.vis: names, arguments, defaults, data, errors."""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
import hooklens.vis as cv
from hooklens.vis._wire import decode_tensor

# name -> (parameters in CircuitsVis' order, their defaults), from CircuitsVis' source.
CIRCUITSVIS: dict[str, list[tuple[str, Any]]] = {
    "attention.attention_heads": [
        ("attention", inspect.Parameter.empty), ("tokens", inspect.Parameter.empty),
        ("attention_head_names", None), ("max_value", None), ("min_value", None),
        ("negative_color", None), ("positive_color", None), ("mask_upper_tri", None),
    ],
    "attention.attention_patterns": [
        ("tokens", inspect.Parameter.empty), ("attention", inspect.Parameter.empty),
    ],
    "attention.attention_pattern": [
        ("tokens", inspect.Parameter.empty), ("attention", inspect.Parameter.empty),
        ("max_value", None), ("min_value", None), ("negative_color", None),
        ("show_axis_labels", None), ("positive_color", None), ("mask_upper_tri", None),
    ],
    "tokens.colored_tokens": [
        ("tokens", inspect.Parameter.empty), ("values", inspect.Parameter.empty),
        ("min_value", None), ("max_value", None), ("negative_color", None),
        ("positive_color", None),
    ],
    "tokens.colored_tokens_multi": [
        ("tokens", inspect.Parameter.empty), ("values", inspect.Parameter.empty),
        ("labels", None),
    ],
    "tokens.visualize_model_performance": [
        ("tokens", inspect.Parameter.empty), ("str_tokens", inspect.Parameter.empty),
        ("logits", inspect.Parameter.empty),
    ],
    "activations.text_neuron_activations": [
        ("tokens", inspect.Parameter.empty), ("activations", inspect.Parameter.empty),
        ("first_dimension_name", "Layer"), ("second_dimension_name", "Neuron"),
        ("first_dimension_labels", None), ("second_dimension_labels", None),
    ],
    "topk_tokens.topk_tokens": [
        ("tokens", inspect.Parameter.empty), ("activations", inspect.Parameter.empty),
        ("max_k", 10), ("first_dimension_name", "Layer"), ("third_dimension_name", "Neuron"),
        ("sample_labels", None), ("first_dimension_labels", None),
    ],
    "topk_samples.topk_samples": [
        ("tokens", inspect.Parameter.empty), ("activations", inspect.Parameter.empty),
        ("zeroth_dimension_name", "Layer"), ("first_dimension_name", "Neuron"),
        ("zeroth_dimension_labels", None), ("first_dimension_labels", None),
    ],
    "logits.token_log_probs": [
        ("token_indices", inspect.Parameter.empty), ("log_probs", inspect.Parameter.empty),
        ("to_string", inspect.Parameter.empty), ("top_k", 10),
    ],
    "examples.hello": [("name", inspect.Parameter.empty)],
}  # fmt: skip


@pytest.mark.parametrize("dotted", sorted(CIRCUITSVIS))
def test_circuitsvis_names_arguments_and_defaults(dotted: str) -> None:
    module, name = dotted.split(".")
    function = getattr(getattr(cv, module), name)
    params = [
        (p.name, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert params == CIRCUITSVIS[dotted]


def test_top_level_names_are_the_submodules_functions() -> None:
    assert cv.attention_heads is cv.attention.attention_heads
    assert cv.colored_tokens is cv.tokens.colored_tokens
    assert cv.text_neuron_activations is cv.activations.text_neuron_activations
    assert cv.token_log_probs is cv.logits.token_log_probs
    # CircuitsVis' module of the same name as its function: both spellings call it.
    acts = [np.arange(12, dtype=np.float32).reshape(1, 3, 4)]
    by_module = cv.topk_tokens.topk_tokens([["a", "b", "c"]], acts, max_k=2)
    by_name = cv.topk_tokens([["a", "b", "c"]], acts, max_k=2)
    assert by_module.k == by_name.k == 2
    from hooklens.vis.topk_samples import topk_samples

    assert cv.topk_samples.topk_samples is topk_samples


def test_show_code_is_a_self_contained_fragment() -> None:
    view = cv.colored_tokens(["a", "</script><b>"], [1.0, -1.0])
    code = view.show_code()
    assert code.startswith('<div class="hooklens-standalone"></div>')
    assert 'type="application/hooklens+json"' in code and '<script type="module">' in code
    assert "</script><b>" not in code  # token text cannot end the script element
    assert not re.search(r"https?://", code.split('<script type="module">')[0])
    assert view.__html__() == code


def test_colored_tokens_range_and_colours() -> None:
    view = cv.colored_tokens(["a", "b"], [0.5, -1.0], min_value=-2, max_value=4,
                             negative_color="orange", positive_color="#00ff00")  # fmt: skip
    assert (view.min_value, view.max_value) == (-2.0, 4.0)
    assert (view.negative_color, view.positive_color) == ("orange", "#00ff00")
    plain = cv.colored_tokens(["a"], [1.0])
    assert plain.min_value is None and plain.positive_color == ""


def test_attention_patterns_is_the_all_heads_token_view() -> None:
    pattern = torch.softmax(torch.randn(3, 4, 4), -1)
    view = cv.attention_patterns(tokens=list("abcd"), attention=pattern)
    assert view.view == "attention_patterns" and view.heads_shown == [True] * 3
    reply = view.call("attention", {"layer": 0})
    got = decode_tensor(reply["pattern"]).astype(np.float32)
    np.testing.assert_allclose(got, pattern.numpy(), atol=1e-3)
    with pytest.raises(Exception, match="locked"):
        view.locked = 4


def test_attention_pattern_is_one_head_of_attention_heads() -> None:
    view = cv.attention_pattern(list("abc"), torch.eye(3), max_value=0.5, negative_color="red")
    assert (view.n_heads, view.max_value, view.head_names) == (1, 0.5, ["Attention"])
    assert view.negative_color == "red" and view.mask_upper_tri is True
    assert (
        cv.attention_pattern(list("ab"), torch.eye(2), mask_upper_tri=False).mask_upper_tri is False
    )
    with pytest.raises(hl.ArgumentError, match="`show_axis_labels=`"):
        cv.attention_pattern(list("abc"), torch.eye(3), show_axis_labels=False)
    with pytest.raises(ValueError, match="one head"):
        cv.attention_pattern(list("abc"), torch.rand(2, 3, 3))


def test_colored_tokens_multi_and_model_performance() -> None:
    values = torch.tensor([[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]])
    view = cv.colored_tokens_multi(["a", "b", "c"], values, labels=["x", "y"])
    np.testing.assert_array_equal(decode_tensor(view.values), values.numpy())
    assert view.labels == ["x", "y"] and view.selected == 0
    with pytest.raises(ValueError, match="Number of labels"):
        cv.colored_tokens_multi(["a", "b", "c"], values, labels=["x"])
    with pytest.raises(ValueError, match="Number of tokens"):
        cv.colored_tokens_multi(["a", "b"], values)
    ids = torch.tensor([[0, 2, 1, 3]])
    logits = torch.randn(1, 4, 5)
    perf = cv.visualize_model_performance(ids, ["<s>", "b", "c", "d"], logits)
    assert perf.tokens == ["b", "c", "d"] and perf.labels == ["logits", "log_probs", "probs"]
    got = decode_tensor(perf.values)
    want_logit = logits[0, torch.arange(3), ids[0, 1:]]
    np.testing.assert_allclose(got[:, 0], want_logit.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.exp(got[:, 1]), got[:, 2], rtol=1e-5)


def test_token_log_probs_rank_and_topk() -> None:
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 7), -1)
    ids = torch.tensor([0, 3, 1, 6, 2])
    view = cv.token_log_probs(ids, log_probs, to_string=lambda i: f"t{i}", top_k=3)
    assert view.prompt == ["t0", "t3", "t1", "t6", "t2"]
    correct = decode_tensor(view.correct_log_prob)
    want = log_probs[:-1].gather(-1, ids[1:, None])[:, 0]
    np.testing.assert_allclose(correct, want.numpy())
    order = log_probs[:-1].argsort(-1, descending=True)
    assert view.correct_rank == [int((order[p] == ids[p + 1]).nonzero()) for p in range(4)]
    reply = view.call("topk", {"position": 2})
    assert reply["tokens"] == [f"t{i}" for i in order[1, :3].tolist()]
    with pytest.raises(Exception, match="position"):
        view.call("topk", {"position": 0})
    with pytest.raises(ValueError, match="top_k"):
        cv.token_log_probs(ids, log_probs, str, top_k=8)


def test_text_neuron_activations_fetches_one_neuron() -> None:
    acts = [np.random.rand(3, 2, 4).astype(np.float32), -np.random.rand(2, 2, 4)]
    view = cv.text_neuron_activations([["a", "b", "c"], ["d", "e"]], acts)
    assert view.samples == [["a", "b", "c"], ["d", "e"]]
    assert view.first_dimension_labels == ["0", "1"] and view.second_dimension_labels[-1] == "3"
    assert view.min_value == pytest.approx(float(acts[1].min()))
    reply = view.call("activations", {"sample": 1, "first": 1, "second": 3})
    np.testing.assert_allclose(decode_tensor(reply["values"]), acts[1][:, 1, 3], rtol=1e-6)
    single = cv.text_neuron_activations(["a", "b", "c"], torch.from_numpy(acts[0]))
    assert single.samples == [["a", "b", "c"]]
    with pytest.raises(ValueError, match="tokens x layers x neurons"):
        cv.text_neuron_activations(["a"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="sample 0: 2 tokens"):
        cv.text_neuron_activations(["a", "b"], np.zeros((3, 1, 1)))


def test_topk_tokens_pages_match_torch_topk() -> None:
    acts = np.random.rand(2, 6, 11).astype(np.float32)
    view = cv.topk_tokens([list("abcdef")], [acts], max_k=3, sample_labels=["s"])
    assert (view.k, view.n_neurons, view.n_pages()) == (3, 11, 2)
    reply = view.call("topk_page", {"sample": 0, "first": 1, "page": 1})
    top = torch.from_numpy(acts[1]).topk(3, dim=0)
    np.testing.assert_allclose(decode_tensor(reply["top_values"]), top.values[:, 8:].numpy())
    assert decode_tensor(reply["top_indices"]).tolist() == top.indices[:, 8:].tolist()
    bottom = torch.from_numpy(acts[1]).topk(3, dim=0, largest=False)
    np.testing.assert_allclose(decode_tensor(reply["bottom_values"]), bottom.values[:, 8:].numpy())
    with pytest.raises(ValueError, match="same length"):
        cv.topk_tokens([list("ab")], [acts, acts])
    assert len(list(view.static_requests())) == 2 * 2


def test_topk_samples_nested_lists() -> None:
    tokens = [[[["a", "b"], ["c"]], [["d"], ["e", "f"]]]]
    acts = [[[[1.0, 2.0], [3.0]], [[-1.0], [0.5, 0.25]]]]
    view = cv.topk_samples(tokens, acts, first_dimension_labels=["n0", "n1"])
    assert (view.n_samples, view.shown, view.zeroth_dimension_labels) == (2, 2, ["0"])
    reply = view.call("samples", {"zeroth": 0, "first": 1})
    assert reply["tokens"] == [["d"], ["e", "f"]] and reply["lengths"] == [1, 2]
    np.testing.assert_allclose(decode_tensor(reply["values"]), [-1.0, 0.5, 0.25])
    with pytest.raises(ValueError, match=r"\[0\]\[0\]\[1\]: 1 tokens but 2"):
        cv.topk_samples([[[["a"], ["b"]]]], [[[[1.0], [1.0, 2.0]]]])


def test_hello() -> None:
    assert cv.examples.hello("you").name == "you"


def test_saved_notebooks_keep_each_first_screen() -> None:
    acts = np.random.rand(3, 2, 4).astype(np.float32)
    views = [
        (cv.text_neuron_activations(["a", "b", "c"], acts), "activations"),
        (cv.topk_tokens([["a", "b", "c"]], [acts.transpose(1, 0, 2).copy()], max_k=2), "topk_page"),
        (cv.topk_samples([[[["a"], ["b"]]]], [[[[1.0], [2.0]]]]), "samples"),
    ]
    for view, method in views:
        assert [key.split("?")[0] for key in view.embedded_replies] == [method]
    neurons = views[0][0]
    neurons.second = 3  # the first screen follows the state
    (key,) = neurons.embedded_replies
    assert '"second":3' in key
    log_probs = cv.token_log_probs(
        torch.tensor([0, 1, 2]), torch.randn(3, 4).log_softmax(-1), str, 2
    )
    assert log_probs.embedded_replies == {}
    log_probs.position = 2
    assert list(log_probs.embedded_replies) == ['topk?{"position":2}']


def test_typos_raise_naming_the_hooklens_spelling(gpt2: Any) -> None:
    """The keyword rule on the views: a CircuitsVis function or a view class given a name it
    does not take raises ArgumentError with the close match (traitlets would drop it)."""
    pattern = torch.rand(2, 3, 3)
    tokens = list("abc")
    cases = [
        (lambda: cv.attention_heads(pattern, tokens, attention_head_name=["a", "b"]),
         "'attention_head_names'"),
        (lambda: cv.attention.attention_heads(pattern, tokens, max_val=1), "'max_value'"),
        (lambda: cv.colored_tokens(tokens, [1, 2, 3], positive_colour="red"),
         "'positive_color'"),
        (lambda: cv.topk_tokens(tokens=[tokens], activations=[np.ones((3, 1, 2))], max_K=2),
         "'max_k'"),
        (lambda: cv.AttentionPatterns(tokens, [pattern.numpy()], head_name=["x", "y"]),
         "'head_names'"),
        (lambda: cv.AttentionView(gpt2, "a b", layre=0), "'layer'"),
        (lambda: cv.ResidualView(gpt2, "a b", kk=3), "'k'"),
        (lambda: cv.attention_heads(pattern, tokens).show_code(layer=[0]), "`layers=`"),
    ]  # fmt: skip
    for call, hint in cases:
        with pytest.raises(hl.ArgumentError, match=hint):
            call()
    # traits and constructor arguments by name still work
    view = cv.AttentionView(gpt2, "a b", layer=1, head=2, title="t")
    assert (view.layer, view.head, view.title) == (1, 2, "t")
