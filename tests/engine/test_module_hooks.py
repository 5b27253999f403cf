"""hooklens's module hooks (`_engine/module_hooks.py`) behave as torch's, and leave no trace."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from hooklens._engine import module_hooks


class Scale(nn.Module):
    def forward(self, x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
        return x * factor


def _hook_set(log: list[str]) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
    """Pre-hooks and forward hooks of every kind torch has, each logging its turn; some edit."""

    def pre(name: str, add: float | None = None) -> Callable[..., Any]:
        def hook(m: nn.Module, args: tuple[Any, ...]) -> Any:
            log.append(name)
            return None if add is None else args[0] + add  # a bare tensor: torch wraps it

        return hook

    def pre_kw(name: str) -> Callable[..., Any]:
        def hook(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            log.append(name)
            return args, {**kwargs, "factor": 3.0}

        return hook

    def post(name: str, mul: float | None = None) -> Callable[..., Any]:
        def hook(m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> Any:
            log.append(name)
            return None if mul is None else out * mul

        return hook

    def post_kw(name: str) -> Callable[..., Any]:
        def hook(m: nn.Module, args: Any, kwargs: dict[str, Any], out: torch.Tensor) -> Any:
            log.append(f"{name}:{kwargs['factor']}")
            return out + args[0]

        return hook

    return [
        ("pre", pre("a", 1.0), {}),
        ("pre", pre_kw("b"), {"with_kwargs": True}),
        ("pre", pre("c"), {"prepend": True}),
        ("post", post("d", 10.0), {}),
        ("post", post_kw("e"), {"with_kwargs": True}),
        ("post", post("f"), {"prepend": True}),
    ]


def test_taps_run_as_torch_runs_the_same_hooks() -> None:
    x = torch.arange(3.0)
    results = []
    for use_taps in (False, True):
        log: list[str] = []
        module = Scale()
        handles = []
        for kind, hook, options in _hook_set(log):
            if use_taps:
                add = module_hooks.pre_hook if kind == "pre" else module_hooks.forward_hook
                handles.append(add(module, hook, **options))
            elif kind == "pre":
                handles.append(module.register_forward_pre_hook(hook, **options))
            else:
                handles.append(module.register_forward_hook(hook, **options))
        out = module(x)
        results.append((log, out))
        for handle in handles:
            handle.remove()
        assert "forward" not in module.__dict__
        assert not module._forward_hooks and not module._forward_pre_hooks
        torch.testing.assert_close(module(x), x * 2)  # nothing left
    (torch_log, torch_out), (taps_log, taps_out) = results
    assert taps_log == torch_log == ["c", "a", "b", "f", "d", "e:3.0"]
    torch.testing.assert_close(taps_out, torch_out)


def test_a_hooked_module_stays_on_torchs_fast_path() -> None:
    module = Scale()
    handle = module_hooks.forward_hook(module, lambda m, a, o: None)
    assert module_hooks.has_hooks(module)
    assert not module._forward_hooks and not module._forward_pre_hooks
    handle.remove()
    handle.remove()  # a second remove does nothing
    assert not module_hooks.has_hooks(module) and "forward" not in module.__dict__


def test_always_call_hooks_run_when_the_forward_raises() -> None:
    class Fails(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("inside")

    seen: list[Any] = []
    module = Fails()
    h1 = module_hooks.forward_hook(
        module, lambda m, a, o: seen.append(("always", o)), always_call=True
    )
    h2 = module_hooks.forward_hook(module, lambda m, a, o: seen.append(("plain", o)))
    with pytest.raises(ValueError, match="inside"):
        module(torch.ones(1))
    assert seen == [("always", None)]
    h1.remove()
    h2.remove()
    assert "forward" not in module.__dict__


def test_an_instance_forward_set_before_is_called_and_restored() -> None:
    """accelerate's device hooks put a forward in the instance's dict: the hooks go around it."""
    module = Scale()
    calls: list[str] = []

    def theirs(x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
        calls.append("theirs")
        return Scale.forward(module, x, factor)

    module.forward = functools.update_wrapper(theirs, Scale.forward)  # type: ignore[method-assign]
    handle = module_hooks.forward_hook(module, lambda m, a, o: o + 1)
    assert module(torch.ones(1)).item() == 3.0 and calls == ["theirs"]
    assert module_hooks.own_forward(module) is theirs
    handle.remove()
    assert module.__dict__["forward"] is theirs


def test_a_swapped_forward_runs_between_the_taps_and_the_signature_stays() -> None:
    module = Scale()
    log: list[str] = []

    def replacement(self: nn.Module, x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
        log.append("swapped")
        return x * factor * 100

    pre = module_hooks.pre_hook(module, lambda m, a: log.append("pre"))
    swap = module_hooks.swap_forward(module, replacement)
    with pytest.raises(RuntimeError, match="already swapped"):
        module_hooks.swap_forward(module, replacement)
    assert module(torch.ones(1)).item() == 200.0 and log == ["pre", "swapped"]
    assert list(inspect.signature(module.forward).parameters) == ["x", "factor"]
    swap.remove()
    assert module(torch.ones(1)).item() == 2.0  # the own forward again, the pre-hook still there
    assert module_hooks.has_hooks(module)
    pre.remove()
    assert "forward" not in module.__dict__


def test_the_signature_is_the_modules_own() -> None:
    """transformers reads `inspect.signature(model.forward)` (generation's argument checks)."""
    module = Scale()
    handle = module_hooks.pre_hook(module, lambda m, a: None)
    assert list(inspect.signature(module.forward).parameters) == ["x", "factor"]
    handle.remove()


def test_a_deep_copy_made_while_hooked_runs_its_own_weights_without_the_hooks() -> None:
    """A hook kept between calls (`add_hook`) is in the module's __dict__ when the user deep
    copies the model: the copy must compute with its own weights, and not fire the hook."""
    import copy

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    fired: list[int] = []
    handle = module_hooks.forward_hook(module[1], lambda m, a, o: fired.append(1))
    twin = copy.deepcopy(module)
    with torch.no_grad():
        twin[1].weight.zero_()
        twin[1].bias.fill_(1.0)
    x = torch.ones(1, 3)
    assert torch.equal(twin(x), torch.ones(1, 3)) and fired == []
    module(x)
    assert fired == [1]
    handle.remove()
    assert "forward" not in module[1].__dict__


def test_a_restored_hook_goes_back_where_a_new_one_would() -> None:
    """`restore` after `remove`: the same order as hooks added anew (appended, or first where
    prepended), among hooks another party added in between; none left after removal."""
    x = torch.arange(3.0)
    log: list[str] = []
    module = Scale()

    def tap(name: str) -> Callable[..., Any]:
        return lambda m, a, o: log.append(name)

    first = module_hooks.forward_hook(module, tap("first"))
    front = module_hooks.forward_hook(module, tap("front"), prepend=True)
    first.remove()
    front.remove()
    assert "forward" not in module.__dict__
    other = module_hooks.forward_hook(module, tap("other"))  # installed meanwhile
    assert module_hooks.restore_all([first, front])
    module(x)
    assert log == ["front", "other", "first"]
    for handle in (first, front, other):
        handle.remove()
    assert "forward" not in module.__dict__
    assert module_hooks.restore_all([first])  # alone: its own hooks go back in the __dict__
    log.clear()
    torch.testing.assert_close(module(x), x * 2)
    assert log == ["first"]
    first.remove()
    assert "forward" not in module.__dict__
    assert not module_hooks.restore_all([first, object()])  # not all module hooks: none back
    assert "forward" not in module.__dict__


def test_a_hook_is_made_anew_where_the_modules_forward_changed() -> None:
    """accelerate may dispatch a model between two calls, putting a forward in a module's
    __dict__: a removed hook is not put back around the old one (the caller makes a new one),
    and what was restored before the refusal is removed again."""
    module, other = Scale(), Scale()
    h_other = module_hooks.pre_hook(other, lambda m, a: None)
    handle = module_hooks.forward_hook(module, lambda m, a, o: o + 1)
    handle.remove()
    h_other.remove()

    def theirs(x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
        return Scale.forward(module, x, factor)

    module.forward = theirs  # type: ignore[method-assign]
    assert not module_hooks.restore_all([h_other, handle])
    assert "forward" not in other.__dict__ and module.__dict__["forward"] is theirs
    assert not module_hooks.has_hooks(module)


def test_sites_put_their_hooks_back_and_a_changed_forward_gets_new_ones() -> None:
    """Through a wrapped model: the second cache restores the first one's hooks (the same
    handles); after an instance forward appears on a block, the cache is still right, made with
    new hooks around that forward."""
    import transformers as tf

    import hooklens as hl
    from hooklens.architectures._registry import tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config("llama")).eval()
    model = hl.HookedModel(hf)
    tokens = torch.randint(4, 100, (1, 6))
    with torch.no_grad():
        _, first = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")
        site = model._points["blocks.1.hook_resid_pre"]._site
        removed = list(site._removed)
        _, again = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")
        assert site._removed == removed  # the same handles, put back and removed again
        torch.testing.assert_close(
            again["blocks.1.hook_resid_pre"], first["blocks.1.hook_resid_pre"]
        )
        block = hf.model.layers[1]
        calls: list[int] = []

        def theirs(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return type(block).forward(block, *args, **kwargs)

        block.forward = theirs
        want = hf(tokens, output_hidden_states=True, use_cache=False).hidden_states[1]
        calls.clear()
        _, third = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")
        assert calls == [1] and site._removed != removed
        torch.testing.assert_close(third["blocks.1.hook_resid_pre"], want)
        assert block.__dict__["forward"] is theirs
