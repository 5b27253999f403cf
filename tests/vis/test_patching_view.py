"""PatchingView without a browser: the request handlers against hooklens.patching itself."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hooklens as hl
from hooklens.vis._patch_code import patch_code
from hooklens.vis._wire import SWEEP, decode_tensor, unpack_buffers
from hooklens.vis.export import export_payload
from tests.engine.conftest import _tokenizer, build_hf

CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPTED = "when john and mary went to the store mary gave a drink to"


def _load(family: str, folder: Path) -> hl.HookedModel:
    build_hf(family).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hl.HookedModel.from_pretrained(str(folder))


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _load(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _load("gpt2", tmp_path_factory.mktemp("gpt2-view"))


@pytest.fixture(autouse=True)
def _no_grad() -> Any:
    with torch.no_grad():
        yield


def _view(model: Any, **kwargs: Any) -> tuple[hl.PatchingView, list[dict[str, Any]]]:
    """A view whose pushed messages are recorded (buffers put back) instead of sent."""
    kwargs.setdefault("answer", "mary")
    kwargs.setdefault("wrong", "john")
    view = hl.PatchingView(model, clean=CLEAN, corrupted=CORRUPTED, **kwargs)
    sent: list[dict[str, Any]] = []

    def record(content: Any, buffers: Any = None) -> None:
        sent.append(unpack_buffers(content, list(buffers or [])))

    view.send = record  # type: ignore[method-assign]
    return view, sent


def _metric(model: Any) -> Any:
    return hl.metrics.logit_diff(model, "mary", "john")


def _no_hooks(model: Any) -> bool:
    return all(not point.fns for point in model.hook_dict.values())


def test_state_and_predictions(model: Any) -> None:
    view, _ = _view(model, k=3)
    assert view.view == "patching"
    assert view.clean_tokens == model.to_str_tokens(CLEAN)
    assert view.corrupted_tokens == model.to_str_tokens(CORRUPTED)
    assert view.points[:4] == ["resid_pre", "resid_mid", "attn_out", "mlp_out"]
    assert "z" in view.points
    assert view.metric_source == "hl.metrics.logit_diff(model, answer='mary', wrong='john')"
    reply = view.call("predictions")
    for which, text in (("clean", CLEAN), ("corrupted", CORRUPTED)):
        logits = model(text)
        probs = logits[0, -1].softmax(-1)
        got = reply[which]
        assert decode_tensor(got["ids"]).tolist() == probs.topk(3).indices.tolist()
        np.testing.assert_allclose(decode_tensor(got["probs"]), probs.topk(3).values, rtol=1e-5)
        assert got["metric"] == pytest.approx(float(_metric(model)(logits)), abs=1e-5)
    assert view.clean_value != view.corrupted_value


def test_click_equals_patch(model: Any) -> None:
    view, _ = _view(model)
    cell = {"point": "resid_pre", "row": 1, "col": 4}
    reply = view.call("patch", {"cells": [cell]})
    _, clean_cache = model.run_with_cache(CLEAN)
    patches = [("blocks.1.hook_resid_pre", {"pos": 4})]
    logits = hl.patching.patch(model, CORRUPTED, clean_cache, patches=patches)
    want = float(_metric(model)(logits))
    # the click runs a partial forward (layers from 1, positions from 4): equal to the full
    # forward to float rounding, the 1e-4 the sweep documents
    assert reply["prediction"]["metric"] == pytest.approx(want, abs=1e-4)
    assert reply["patches"] == ["('blocks.1.hook_resid_pre', {'pos': 4})"]
    assert view.patches == [hl.patching.Patch("blocks.1.hook_resid_pre", pos=4)]
    assert view.selection == [cell]
    top = logits[0, -1].softmax(-1).topk(view.k)
    assert decode_tensor(reply["prediction"]["ids"]).tolist() == top.indices.tolist()
    normalized = (want - view.corrupted_value) / (view.clean_value - view.corrupted_value)
    assert reply["normalized"] == pytest.approx(normalized, abs=1e-4)
    # The code the view shows reproduces the value.
    namespace: dict[str, Any] = {"hl": hl, "model": model, "torch": torch}
    exec(view.code.replace("metric(logits)", "value = metric(logits)"), namespace)
    assert float(namespace["value"]) == pytest.approx(want, abs=1e-5)
    assert "hl.patching.patch(model, corrupted, clean_cache" in view.code


def test_shift_click_set_is_applied_together(gpt2: Any) -> None:
    view, _ = _view(gpt2)
    cells = [
        {"point": "resid_pre", "row": 1, "col": 4},
        {"point": "z", "row": 0, "col": 2},
        {"point": "resid_pre", "row": 1, "col": 4},  # a duplicate counts once
    ]
    reply = view.call("patch", {"cells": cells})
    assert view.selection == cells[:2]
    _, clean_cache = gpt2.run_with_cache(CLEAN)
    patches = [("blocks.1.hook_resid_pre", {"pos": 4}), ("blocks.0.attn.hook_z", {"head": 2})]
    logits = hl.patching.patch(gpt2, CORRUPTED, clean_cache, patches=patches)
    assert reply["prediction"]["metric"] == pytest.approx(float(_metric(gpt2)(logits)), abs=1e-5)
    assert [p.to_python() for p in view.patches] == reply["patches"]
    # An empty set clears it.
    cleared = view.call("patch", {"cells": []})
    assert cleared["prediction"] is None and view.patches == [] and view.code == ""
    assert view.selection == []


def test_noising_patches_corrupted_into_clean(gpt2: Any) -> None:
    view, _ = _view(gpt2, direction="noise")
    reply = view.call("patch", {"cells": [{"point": "mlp_out", "row": 0, "col": 2}]})
    _, corrupted_cache = gpt2.run_with_cache(CORRUPTED)
    logits = hl.patching.patch(
        gpt2, CLEAN, corrupted_cache, [("blocks.0.hook_mlp_out", {"pos": 2})]
    )
    assert reply["prediction"]["metric"] == pytest.approx(float(_metric(gpt2)(logits)), abs=1e-5)
    assert "hl.patching.patch(model, clean, corrupted_cache" in view.code


def test_bad_requests_are_error_replies(gpt2: Any) -> None:
    view, _ = _view(gpt2)
    for params, message in [
        ({"cells": [{"point": "resid_pre", "row": 9, "col": 0}]}, "row must be"),
        ({"cells": [{"point": "nope", "row": 0, "col": 0}]}, "unknown point"),
        ({"cells": "x"}, "cells must be a list"),
    ]:
        reply, _ = view.handle_request({"id": "c:1", "method": "patch", "params": params})
        assert reply["ok"] is False and message in reply["error"]["message"]
        assert message in view.rpc_error
    with pytest.raises(ValueError, match="needs a metric"):
        hl.PatchingView(gpt2, clean=CLEAN, corrupted=CORRUPTED)
    with pytest.raises(ValueError, match="same number of tokens"):
        hl.PatchingView(gpt2, clean=CLEAN, corrupted="when john", answer="mary", wrong="john")


@pytest.mark.parametrize("point", ["resid_pre", "z"])
def test_sweep_from_the_button_equals_sweep(model: Any, point: str) -> None:
    view, sent = _view(model, batch_size=3)
    started = view.call("sweep_start", {"point": point})
    assert view.wait(60)
    want = hl.patching.sweep(model, CLEAN, CORRUPTED, _metric(model), point=point, progress=False)
    assert started["total"] == want.values.numel()
    assert view.sweep_status == "done" and view.sweep_done == view.sweep_total
    heat = view.call("heatmap", {"point": point})
    np.testing.assert_allclose(
        decode_tensor(heat["values"]), want.values.numpy(), atol=1e-4, rtol=1e-4
    )
    assert heat["status"] == "done" and heat["row_labels"][0] == "L0"
    assert heat["column_labels"] == (
        [f"{i} {t!r}" for i, t in enumerate(model.to_str_tokens(CORRUPTED))]
        if point == "resid_pre"
        else [f"H{h}" for h in range(model.cfg.n_heads)]
    )
    # Cells filled in batch by batch, then a final message.
    pushes = [m for m in sent if m["kind"] == SWEEP]
    done = [m["done"] for m in pushes]
    assert done == sorted(done) and done[-1] == started["total"] and len(pushes) > 2
    first = decode_tensor(pushes[0]["values"])
    assert np.isfinite(first).sum() == pushes[0]["done"] < first.size
    assert pushes[-1]["status"] == "done"
    assert view.result is None if point != view.point else view.result is not None
    assert _no_hooks(model)


def test_cancel_stops_the_sweep_and_leaves_no_hooks(gpt2: Any) -> None:
    view, sent = _view(gpt2, batch_size=1)
    recorded = view.send

    on_end: list[Any] = []

    def cancel_on_first(content: Any, buffers: Any = None) -> None:
        recorded(content, buffers)
        if len(sent) == 1:
            assert view.call("sweep_cancel") == {"cancelling": True}
        if content["status"] == "cancelled":
            # The front end sends its queued click as soon as it hears the sweep ended.
            cell = {"point": "resid_pre", "row": 1, "col": 2}
            on_end.append(view.call("patch", {"cells": [cell]}))

    view.send = cancel_on_first  # type: ignore[method-assign]
    view.call("sweep_start", {"point": "resid_pre"})
    assert view.wait(60)
    assert view.sweep_status == "cancelled" and sent[-1]["status"] == "cancelled"
    assert on_end[0]["prediction"] is not None
    assert "resid_pre" not in view.results
    heat = decode_tensor(view.call("heatmap", {"point": "resid_pre"})["values"])
    assert 0 < np.isfinite(heat).sum() < heat.size
    assert _no_hooks(gpt2)
    assert view.call("sweep_cancel") == {"cancelling": False}
    # The model is unchanged and patches work again.
    reply = view.call("patch", {"cells": [{"point": "resid_pre", "row": 0, "col": 1}]})
    assert reply["prediction"] is not None


def test_a_patch_during_a_sweep_runs_between_batches_unmixed(gpt2: Any) -> None:
    cell = {"point": "resid_pre", "row": 0, "col": 1}
    alone, _ = _view(gpt2)
    want = alone.call("patch", {"cells": [cell]})["prediction"]["metric"]
    view, sent = _view(gpt2, batch_size=1)
    in_sweep, release = threading.Event(), threading.Event()
    recorded = view.send

    def block_first(content: Any, buffers: Any = None) -> None:
        recorded(content, buffers)
        if len(sent) == 1:
            in_sweep.set()
            release.wait(30)

    view.send = block_first  # type: ignore[method-assign]
    view.call("sweep_start", {"point": "resid_pre"})
    try:
        assert in_sweep.wait(30)  # the sweep is between two batches, holding nothing
        reply, _ = view.handle_request(
            {"id": "c:2", "method": "patch", "params": {"cells": [cell]}}
        )
        assert reply["ok"] is True and reply["result"]["prediction"]["metric"] == want
        again, _ = view.handle_request(
            {"id": "c:3", "method": "sweep_start", "params": {"point": "z"}}
        )
        assert again["ok"] is False and "already running" in again["error"]["message"]
    finally:
        release.set()
    assert view.wait(60) and view.sweep_status == "done"
    # A click while a batch runs waits for it and is not mixed with the sweep's patches.
    clicks: list[float] = []
    view.call("sweep_start", {"point": "z"})
    while view._thread is not None and view._thread.is_alive():
        clicks.append(view.call("patch", {"cells": [cell]})["prediction"]["metric"])
    assert view.wait(60) and view.sweep_status == "done"
    assert clicks and all(value == want for value in clicks)


def test_sweep_errors_reach_the_view(gpt2: Any) -> None:
    answer = _metric(gpt2)

    def fragile(logits: torch.Tensor) -> torch.Tensor:
        if threading.current_thread() is not threading.main_thread():  # in the sweep only
            raise RuntimeError("metric broke on a batch")
        return answer(logits)

    view, sent = _view(gpt2, metric=fragile)
    view.call("sweep_start", {"point": "attn_out"})
    assert view.wait(60)
    assert view.sweep_status == "error" and "metric broke" in sent[-1]["error"]
    assert "metric broke" in view.rpc_error
    assert _no_hooks(gpt2)
    code = patch_code(CLEAN, CORRUPTED, "denoise", fragile, [], 0.0)
    assert "the metric given to PatchingView" in code


def test_export_holds_the_last_heatmap(gpt2: Any) -> None:
    view, _ = _view(gpt2)
    result = view.run_sweep("mlp_out")
    assert result is not None
    view.point = "mlp_out"
    payload = export_payload(view)
    keys = sorted(payload["responses"])
    assert keys == ['heatmap?{"point":"mlp_out"}', "predictions?{}"]
    reply = payload["responses"]['heatmap?{"point":"mlp_out"}']
    assert reply["ok"] is True
    index = reply["result"]["values"]["data"]["$buffer"]
    import base64

    values = np.frombuffer(base64.b64decode(payload["buffers"][index]), dtype=np.float32)
    np.testing.assert_allclose(values.reshape(result.values.shape), result.values, atol=1e-6)
    page = hl.vis.to_html(view)
    assert "application/hooklens+json" in page and "http" not in json.dumps(payload)


def _state_messages(view: hl.PatchingView) -> list[list[str]]:
    """Record the trait names of each state message the view sends to its front ends."""
    messages: list[list[str]] = []

    def record(key: Any = None) -> None:
        names = [key] if isinstance(key, str) else sorted(key or [])
        if names:  # ipywidgets sends nothing for an empty state
            messages.append(names)

    view.send_state = record  # type: ignore[method-assign]
    return messages


def test_a_click_sends_its_state_once_and_the_reply_does_not_repeat_it(gpt2: Any) -> None:
    view, _ = _view(gpt2)
    messages = _state_messages(view)
    cell = {"point": "resid_pre", "row": 1, "col": 4}
    reply, _ = view.handle_request({"id": "c:1", "method": "patch", "params": {"cells": [cell]}})
    assert reply["ok"] is True
    # The selection and code are traits (the one source of truth, for every rendered view):
    # one state message carries both, and the reply carries only what no trait holds.
    assert messages == [["code", "selection"]]
    assert set(reply["result"]) == {"patches", "prediction", "normalized"}
    assert view.selection == [cell] and view.code.startswith("clean = ")
    # The same click again changes no state, so nothing goes back to the front ends.
    view.handle_request({"id": "c:2", "method": "patch", "params": {"cells": [cell]}})
    assert messages == [["code", "selection"]]
    view.handle_request({"id": "c:3", "method": "patch", "params": {"cells": []}})
    assert messages == [["code", "selection"], ["code", "selection"]]
    assert view.selection == [] and view.code == ""


def test_labels_agree_with_the_sweep_result_without_a_tokenizer(gpt2: Any) -> None:
    clean, corrupted = gpt2.to_tokens(CLEAN), gpt2.to_tokens(CORRUPTED)
    answer, wrong = gpt2.to_single_token("mary"), gpt2.to_single_token("john")
    tokenizer, gpt2.tokenizer = gpt2.tokenizer, None
    try:
        view = hl.PatchingView(gpt2, clean, corrupted, answer, wrong)
        view.send = lambda content, buffers=None: None  # type: ignore[method-assign]
        result = view.run_sweep("resid_pre")
        labels = view.call("heatmap", {"point": "resid_pre"})["column_labels"]
        prediction = view.call("predictions")["clean"]["strings"]
    finally:
        gpt2.tokenizer = tokenizer
    assert result is not None
    assert view.corrupted_tokens == [f"#{int(i)}" for i in corrupted[0]]
    assert result.column_labels == view.corrupted_tokens
    assert labels == [f"{i} {t!r}" for i, t in enumerate(result.column_labels)]
    assert all(s.startswith("#") for s in prediction)
