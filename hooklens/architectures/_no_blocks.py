"""Why a model has no list of `num_hidden_layers` blocks, in words the refusal shows.

The template reads one block per layer from a `ModuleList` of `num_hidden_layers` modules. Two
kinds of model count their layers otherwise, and a refusal should say which: a layer that holds
several attention sublayers (LongCat-Flash: two attention and two MLP sublayers, plus a mixture
of experts reading the first sublayer's stream and added after the second), counted once per
sublayer; and blocks run more than once per forward (HRM's two stacks, looped: a layer count
that counts passes, not modules). Read from the modules and from one forward, not from names.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._names import ATTN
from ._run_order import probe_forward

__all__ = ["looped_blocks", "sublayered_layers", "why_no_blocks"]

MSG_SUBLAYERS = (
    "no list of {n} blocks: its {k} layers ({path}) each hold {per} attention sublayers "
    "({attn} is a list of {per}, {n} = {k} x {per} is num_hidden_layers), and a layer's parts "
    "{mixing}; TransformerLens's blocks add one attention and one MLP each, so hooklens "
    "cannot split them into {n} blocks with hook_resid_pre/hook_resid_post of their own"
)

MSG_LOOPED = (
    "no list of {n} blocks: its blocks ({lists}) run more than once in one forward ({runs}), "
    "a recurrent loop over the same modules, so num_hidden_layers={n} counts passes rather "
    "than modules, and a point of block l would fire once per pass (hooklens's points fire "
    "once per forward, and resid_post of one block is not the next one's resid_pre)"
)


def _lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and n]


def sublayered_layers(model: nn.Module, n_layers: int) -> tuple[str, str, int] | None:
    """(path of the list of layers, name of their attention list, attention sublayers per
    layer) where `n_layers` counts sublayers: each layer holds a list of `per` > 1 attention
    modules and `per` x the layers is `n_layers` (LongCat-Flash); None otherwise."""
    for path, layers in _lists(model):
        attn = next(
            (a for a in ATTN if isinstance(getattr(layers[0], a, None), nn.ModuleList)), None
        )
        if attn is None:
            continue
        per = len(getattr(layers[0], attn))
        if per > 1 and per * len(layers) == n_layers:
            return path, attn, per
    return None


def _sublayers(model: nn.Module, n_layers: int) -> str | None:
    found = sublayered_layers(model, n_layers)
    if found is None:
        return None
    path, attn, per = found
    first = model.get_submodule(f"{path}.0")
    other = [n for n, c in first.named_children() if not isinstance(c, nn.ModuleList)]
    mixing = (
        f"also hold modules outside the sublayer lists ({', '.join(other)}), which "
        "belong to no one sublayer"
        if other
        else "are sublayers run in turn"
    )
    k = len(model.get_submodule(path))  # type: ignore[arg-type]
    return MSG_SUBLAYERS.format(n=n_layers, k=k, path=path, per=per, attn=attn, mixing=mixing)


MSG_ALSO_LOOPED = (
    "its blocks ({lists}) also run more than once in one forward ({runs}), a recurrent loop "
    "over the same modules, where hooklens's points fire once per forward"
)


def looped_blocks(model: nn.Module) -> str | None:
    """Which blocks run more than once in one forward, in words, for a refusal given for
    another reason (Dory's recurrent section); None where each runs once (or the probe
    cannot run)."""
    return _runs_in_words(model, MSG_ALSO_LOOPED)


def _looped(model: nn.Module, n_layers: int) -> str | None:
    return _runs_in_words(model, MSG_LOOPED, n=n_layers)


def _runs_in_words(model: nn.Module, message: str, **fields: int) -> str | None:
    looped = _block_runs(model)
    if not looped:
        return None
    lists = ", ".join(sorted({k.rpartition(".")[0] for k in looped}))
    runs = ", ".join(f"{k}: {v} times" for k, v in looped.items())
    return message.format(lists=lists, runs=runs, **fields)


def _block_runs(model: nn.Module) -> dict[str, int] | None:
    """Path -> number of calls in one probe forward, of each block of a module list called
    more than once; None when the probe cannot run."""
    counts: dict[str, int] = {}
    handles = []
    for path, layers in _lists(model):
        for i, block in enumerate(layers):

            def count(m: nn.Module, a: Any, key: str = f"{path}.{i}") -> None:
                counts[key] = counts.get(key, 0) + 1

            handles.append(block.register_forward_pre_hook(count))
    try:
        probe_forward(model, handles)
    except Exception:  # the refusal stays the plain one when the model cannot run this probe
        return None
    return {k: v for k, v in counts.items() if v > 1}


def why_no_blocks(model: nn.Module, n_layers: int) -> str:
    """Why `model` has no list of `n_layers` blocks (each run once per forward)."""
    return (
        _sublayers(model, n_layers) or _looped(model, n_layers) or f"no list of {n_layers} blocks"
    )
