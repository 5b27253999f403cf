"""The engine owns its model: a background sweep never changes what another call computes, and
a sweep that fails or is interrupted leaves the model exactly as it was."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from hooklens import HookNameError, patching
from hooklens._engine.ownership import Ownership
from hooklens.metrics import TokenMetric

from .conftest import prompt_pair

ALL_POINTS = ["resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "pattern", "q", "k", "v"]
METRIC = TokenMetric("logit_diff", 5, 9)


def _has_point(model: Any, point: str) -> bool:
    return patching.POINTS[point][0].format(layer=0) in model.hook_dict


def _model_state(model: Any) -> dict[str, Any]:
    """Everything a job could leave changed: the module tree (by identity), every torch hook,
    the hook points' functions, the attention implementation and the model's owner."""
    hf = model.hf_model
    configs = {id(m.config): m.config for m in hf.modules() if hasattr(m, "config")}
    return {
        "modules": [(name, id(module)) for name, module in hf.named_modules()],
        "unembed": id(hf.get_submodule(model.spec.unembed)),
        "torch_hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for m in hf.modules()
        ),
        # hooklens's module hooks (`module_hooks.py`) and swapped attention forwards: in the
        # modules' own __dict__
        "instance_forwards": [n for n, m in hf.named_modules() if "forward" in m.__dict__],
        "point_fns": sum(len(p.fns) for p in model.hook_dict.values()),
        "attn": sorted(str(c._attn_implementation) for c in configs.values()),
        "busy": model.owner.busy,
    }


@pytest.mark.parametrize("point", ALL_POINTS)
def test_calls_during_a_background_sweep_see_the_plain_model(tiny_model: Any, point: str) -> None:
    model = tiny_model
    clean, corrupted = prompt_pair()
    if not _has_point(model, point):  # e.g. resid_mid with a parallel residual: says why
        with pytest.raises(HookNameError, match="parallel"):
            patching.sweep(model, clean, corrupted, METRIC, point=point, progress=False)
        return
    probe = torch.randint(3, 90, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected_logits = model.hf_model(input_ids=probe, use_cache=False).logits
        _, expected_cache = model.run_with_cache(probe)
        alone = patching.sweep(model, clean, corrupted, METRIC, point=point, batch_size=1,
                               progress=False)  # fmt: skip
    before = _model_state(model)

    outcome: dict[str, Any] = {}
    first_batch, main_ran = threading.Event(), threading.Event()

    def after_batch(partial: Any, done: int, total: int) -> None:
        # After the first batch, let the main thread's calls in before the next one.
        if not first_batch.is_set():
            first_batch.set()
            assert main_ran.wait(30)

    def background() -> None:
        with torch.no_grad():
            outcome["result"] = patching.sweep(
                model, clean, corrupted, METRIC, point=point, batch_size=1, progress=False,
                on_batch=after_batch,
            )  # fmt: skip

    thread = threading.Thread(target=background)
    thread.start()
    assert first_batch.wait(30)
    calls = 0
    try:
        while thread.is_alive() or calls == 0:
            with torch.no_grad():
                logits = model(probe)
                cache_logits, cache = model.run_with_cache(probe)
            calls += 1
            main_ran.set()
            torch.testing.assert_close(logits, expected_logits, atol=1e-6, rtol=0)
            torch.testing.assert_close(cache_logits, expected_logits, atol=1e-6, rtol=0)
            assert list(cache) == list(expected_cache)
            for name, value in cache.items():
                torch.testing.assert_close(value, expected_cache[name], atol=1e-6, rtol=0)
    finally:
        thread.join()
    torch.testing.assert_close(outcome["result"].raw, alone.raw, atol=1e-6, rtol=0)
    assert _model_state(model) == before


@pytest.mark.parametrize("point", ["resid_pre", "pattern"])
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_sweep_leaves_the_model_as_it_was(
    tiny_model: Any, point: str, error: type[BaseException]
) -> None:
    model = tiny_model
    clean, corrupted = prompt_pair()
    before = _model_state(model)

    calls = [0]

    def stop_in_batch(logits: torch.Tensor) -> torch.Tensor:
        # Raised inside a batch (after the clean and corrupted values and two batches), while
        # the patch hooks are on and the model is held.
        calls[0] += 1
        if calls[0] > 4:
            raise error("stop")
        return METRIC(logits)

    with pytest.raises(error):
        patching.sweep(model, clean, corrupted, stop_in_batch, point=point, batch_size=1,
                       progress=False)  # fmt: skip
    assert _model_state(model) == before

    def stop_between(partial: Any, done: int, total: int) -> None:
        raise error("stop")

    with pytest.raises(error):
        patching.sweep(model, clean, corrupted, METRIC, point=point, progress=False,
                       on_batch=stop_between)  # fmt: skip
    assert _model_state(model) == before
    # The model still computes what it computed.
    with torch.no_grad():
        torch.testing.assert_close(
            model(clean), model.hf_model(input_ids=clean, use_cache=False).logits
        )


def test_ownership_is_reentrant_fair_and_survives_an_interrupted_wait() -> None:
    owner = Ownership()
    with owner.hold(), owner.hold():
        assert owner.held_here and owner.busy
    assert not owner.busy
    with pytest.raises(RuntimeError, match="does not hold"):
        owner.release()

    order: list[str] = []
    owner.acquire()
    waiting = threading.Event()

    def other() -> None:
        with owner.hold(on_wait=waiting.set):
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    assert waiting.wait(5)
    owner.release()
    # Fair: the waiting thread gets the model before this thread can take it back.
    with owner.hold():
        order.append("me")
    thread.join()
    assert order == ["other", "me"]

    owner.acquire()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        result: list[BaseException] = []

        def waiter() -> None:
            try:
                owner.acquire(on_wait=interrupted)
            except BaseException as exc:
                result.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        t.join()
        raise result[0]
    owner.release()
    assert not owner.busy  # the interrupted waiter left no ticket behind
    with owner.hold():
        pass


def test_a_cache_waiting_for_the_model_attaches_nothing_until_it_has_it(tiny_model: Any) -> None:
    """`run_with_cache` takes the model before its functions go on: while another thread holds
    it (a sweep's batch), the waiting call has attached nothing that batch's forwards would
    fire (they would fill the waiting call's cache)."""
    model = tiny_model
    probe = torch.randint(3, 90, (1, 5), generator=torch.Generator().manual_seed(4))
    got: dict[str, Any] = {}
    model.owner.acquire()  # this thread plays the job holding the model
    try:
        waiting = threading.Thread(target=lambda: got.update(out=model.run_with_cache(probe)))
        waiting.start()
        for _ in range(3000):  # until the call waits in the queue
            if model.owner._queue:
                break
            threading.Event().wait(0.001)
        assert model.owner._queue, "run_with_cache never waited for the model"
        assert sum(len(p.fns) for p in model.hook_dict.values()) == 0
        model(probe)  # a forward of the holder: fills nothing of the waiting call's
    finally:
        model.owner.release()
    waiting.join(30)
    _, cache = got["out"]
    assert cache["blocks.0.hook_resid_pre"].shape[:2] == (1, 5)
