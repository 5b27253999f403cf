"""Where a model's block list can be: not inside another tower of a multimodal model.

A captioning or vision-language model holds a vision (or audio) encoder beside its language
model, and that encoder has its own list of layers, sometimes as many as the language model's.
Such a tower is a nested model with its own config (the vision config); the language model's
blocks are elsewhere (in the model itself, or in a nested model whose config is the text config).

Deriving an adapter asks for the model's modules, and for its block list, several times (whether
it is an encoder, a post-LN decoder, a pre-norm decoder; where its embeddings are). Within
`shared_walks()` those answers are computed once per model: a walk over a 32-layer model's
thousands of modules costs more than the probe forwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from torch import nn

from ._spec import text_config

T = TypeVar("T")

#: (id of the model, what was asked) -> (the model, kept alive so its id stays its own; the
#: answer, or the exception it raised); None outside `shared_walks()`
_WALKS: ContextVar[dict[tuple[Any, ...], tuple[nn.Module, Any, BaseException | None]] | None] = (
    ContextVar("_WALKS", default=None)
)


@contextmanager
def shared_walks() -> Iterator[None]:
    """Within: `walked` answers are computed once per model and question (the modules do not
    change while an adapter is derived)."""
    token = _WALKS.set({})
    try:
        yield
    finally:
        _WALKS.reset(token)


def walked(model: nn.Module, question: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """`compute()`, once per (model, question) within `shared_walks()` (an exception it raised
    is raised again), every time outside it."""
    cache = _WALKS.get()
    if cache is None:
        return compute()
    key = (id(model), *question)
    if key not in cache:
        try:
            cache[key] = (model, compute(), None)
        except Exception as exc:
            cache[key] = (model, None, exc)
    _, answer, error = cache[key]
    if error is not None:
        raise error
    return answer


def remember(model: nn.Module, question: tuple[Any, ...], answer: Any) -> None:
    """Within `shared_walks()`: `walked` answers (model, question) with `answer` from now on,
    unless it has an answer (a probe's forward found it on the way to another); outside it,
    nothing."""
    cache = _WALKS.get()
    if cache is not None:
        cache.setdefault((id(model), *question), (model, answer, None))


def named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`model.named_modules()` as a list (shared within `shared_walks()`)."""
    return walked(model, ("named_modules",), lambda: list(model.named_modules()))


def module_paths(model: nn.Module) -> dict[int, str]:
    """id of each of `model`'s modules -> its path, the first where a module sits at several
    (shared within `shared_walks()`)."""

    def paths() -> dict[int, str]:
        found: dict[int, str] = {}
        for name, module in named_modules(model):
            found.setdefault(id(module), name)
        return found

    return walked(model, ("module paths",), paths)


def _other_towers(model: nn.Module) -> list[str]:
    """Prefixes (`name.`) of nested modules whose config is neither the model's nor its text
    model's."""
    own: Any = getattr(model, "config", None)
    mine = {id(own), id(text_config(own))} if own is not None else set()
    towers = []
    for name, module in named_modules(model):
        config = module.__dict__.get("config")  # a plain attribute (a config is no module)
        if name and hasattr(config, "to_dict") and id(config) not in mine:
            towers.append(f"{name}.")
    return towers


def block_list_candidates(model: nn.Module, embed: str) -> list[tuple[str, nn.Module]]:
    """The model's module lists (where blocks are held), outside other towers, those next to
    the token embedding (`embed`, a path) first."""
    return walked(model, ("candidates", embed), lambda: _candidates(model, embed))


def _candidates(model: nn.Module, embed: str) -> list[tuple[str, nn.Module]]:
    near = embed.rpartition(".")[0]
    towers = tuple(_other_towers(model))
    candidates = [
        (n, m)
        for n, m in named_modules(model)
        if isinstance(m, nn.ModuleList) and not n.startswith(towers)
    ]
    return sorted(candidates, key=lambda nm: not nm[0].startswith(f"{near}."))
