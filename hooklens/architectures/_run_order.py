"""Which modules run, in what order, and on what, in one forward of a few tokens.

A derived adapter reads where a norm sits from the order modules run and what they are given
(a BART decoder's norms, an embedding norm before block 0, a final norm the model also applies
to the embedding), and how q/k/v are laid out from their shapes. Each probe stops as soon as
what it watches has run: probing block 0 of a 1B model costs one block, not the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._spec import text_config
from ._spec_parts import Layout
from ._towers import module_paths, remember, walked

__all__ = [
    "ProbeDone",
    "_first",
    "_run_order",
    "_same",
    "attention_probe",
    "child_hooks",
    "final_norm_on_embed",
    "layout_of",
    "probe_forward",
    "stop_probe",
]


class ProbeDone(Exception):
    """Raised from a hook to end a probe forward once what it watches has run."""


def stop_probe(*_: Any) -> None:
    """A hook that ends the probe forward it runs in (`ProbeDone`)."""
    raise ProbeDone


def probe_forward(model: nn.Module, handles: list[Any], stop_after: nn.Module | None = None,
                  input_ids: torch.Tensor | None = None,
                  stop_before: nn.Module | None = None) -> None:  # fmt: skip
    """One forward of `input_ids` (default 3 tokens; on the model's device) of `model` (no
    gradients, no cache), ended as soon as `stop_after` (a module the probe watches, e.g. block
    0) has returned, or as soon as `stop_before` is called, so a probe of the first block costs
    one block (or none), not the model and its unembedding; `handles` (of hooks put there to
    watch it) are removed afterwards, also when it raises."""
    device = next(p.device for p in model.parameters())
    # registered last: the watching hooks on the same module run first
    if stop_after is not None:
        handles = [*handles, stop_after.register_forward_hook(stop_probe)]
    if stop_before is not None:
        handles = [*handles, stop_before.register_forward_pre_hook(stop_probe)]
    ids = torch.ones(1, 3, dtype=torch.long) if input_ids is None else input_ids
    try:
        with torch.no_grad():
            model(input_ids=ids.to(device), use_cache=False)
    except ProbeDone:
        pass
    finally:
        for h in handles:
            h.remove()


def _run_order(model: nn.Module, modules: dict[str, nn.Module],
               stop_after: nn.Module | None = None) -> dict[str, Any]:  # fmt: skip
    """One forward of 3 tokens (up to `stop_after`, see `probe_forward`): each module's first
    call, as (order, input, output)."""
    seen: dict[str, Any] = {}
    handles = []
    for key, mod in modules.items():

        def record(m: nn.Module, args: Any, kwargs: Any, out: Any, key: str = key) -> None:
            first = args[0] if args else kwargs.get("hidden_states")
            t = out[0] if isinstance(out, tuple) else out
            seen.setdefault(key, (len(seen), first, t))

        handles.append(mod.register_forward_hook(record, with_kwargs=True))
    probe_forward(model, handles, stop_after)
    return seen


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.shape == b.shape
        and bool(torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4))
    )


def final_norm_on_embed(model: nn.Module, final: str, blocks: str) -> str | None:
    """`final` (a model path, beside the block list `blocks`) when the model also applies that
    final norm to the embedding before block 0, whose input is its output (NanoChat: `norm`
    before the layers and after them), else None."""
    seen = walked(model, (BEFORE_BLOCK_0, blocks), lambda: _before_block_0(model, blocks))
    out, block0 = seen["outputs"].get(final), seen["block0"]
    return final if out is not None and _same(out, block0) else None


#: the question (with the block list's path) of what runs before block 0: the forward of
#: `attention_probe` answers it on its way, else a forward up to block 0 (`walked`)
BEFORE_BLOCK_0 = "before block 0"


def _before_block_0(model: nn.Module, blocks: str) -> dict[str, Any]:
    seen, handles = _before_block_0_hooks(model, blocks)
    first = model.get_submodule(blocks)[0]  # type: ignore[index]
    probe_forward(model, handles, stop_before=first)  # block 0's input is all it reads
    return seen


def _before_block_0_hooks(model: nn.Module, blocks: str) -> tuple[dict[str, Any], list[Any]]:
    """Hooks recording {"block0": block 0's first input, "outputs": model path -> first output
    of each module beside the block list (a child of its parent) returned before block 0
    starts}, and their handles."""
    parent_path = blocks.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    block_list: Any = model.get_submodule(blocks)
    seen: dict[str, Any] = {"block0": None, "outputs": {}}

    def returned(key: str, out: Any) -> None:
        if seen["block0"] is None:
            seen["outputs"].setdefault(key, _first(out))

    def block_in(m: nn.Module, args: Any, kwargs: Any) -> None:
        if seen["block0"] is None:
            seen["block0"] = args[0] if args else kwargs.get("hidden_states")

    handles = [block_list[0].register_forward_pre_hook(block_in, with_kwargs=True)]
    for name, child in parent.named_children():
        if child is not block_list:
            key = f"{parent_path}.{name}" if parent_path else name
            handles.append(child.register_forward_hook(lambda m, a, o, key=key: returned(key, o)))
    return seen, handles


def _block_list_of(model: nn.Module, module: nn.Module) -> str | None:
    """The path of the outermost module list `module` is in an element of, or None."""
    parts = module_paths(model).get(id(module), "").split(".")
    for i, part in enumerate(parts[1:], start=1):
        head = ".".join(parts[:i])
        if part.isdigit() and isinstance(model.get_submodule(head), nn.ModuleList):
            return head
    return None


def attention_probe(model: nn.Module, attn_mod: nn.Module) -> dict[str, Any]:
    """What block 0's attention module `attn_mod` and its children compute in one forward of a
    few distinct tokens, up to its return (once per derivation, `shared_walks`):
    {"n_pos": positions, "inputs": child name -> [first argument of each call],
    "outputs": child name -> first output (a tuple's first item)}; n_pos is neither the
    number of query heads nor of key/value heads, so a shape tells positions from heads."""
    return walked(model, ("attention probe", id(attn_mod)), lambda: _attention(model, attn_mod))


def _attention(model: nn.Module, attn_mod: nn.Module) -> dict[str, Any]:
    n_pos = next(n for n in (5, 7, 3) if n not in _head_counts(text_config(model.config)))
    inputs, outputs, handles = child_hooks(attn_mod)
    blocks = _block_list_of(model, attn_mod)
    if blocks is not None:  # on its way, what runs before block 0 (`final_norm_on_embed`)
        before, more = _before_block_0_hooks(model, blocks)
        handles += more
    probe_forward(model, handles, attn_mod, torch.arange(1, n_pos + 1)[None])
    if blocks is not None and before["block0"] is not None:
        remember(model, (BEFORE_BLOCK_0, blocks), before)
    return {"n_pos": n_pos, "inputs": inputs, "outputs": outputs}


def child_hooks(
    module: nn.Module,
) -> tuple[dict[str, list[torch.Tensor]], dict[str, torch.Tensor], list[Any]]:
    """Hooks recording what `module`'s children compute in a probe forward: (child name ->
    [first argument of each call], child name -> first output (a tuple's first item), the
    hooks' handles)."""
    inputs: dict[str, list[torch.Tensor]] = {}
    outputs: dict[str, torch.Tensor] = {}

    def called(key: str, args: Any) -> None:
        inputs.setdefault(key, []).append(_first(args).detach())

    def returned(key: str, out: Any) -> None:
        outputs.setdefault(key, _first(out).detach())

    handles = []
    for name, child in module.named_children():
        handles.append(child.register_forward_pre_hook(lambda m, a, key=name: called(key, a)))
        handles.append(child.register_forward_hook(lambda m, a, o, key=name: returned(key, o)))
    return inputs, outputs, handles


def _head_counts(text: Any) -> set[Any]:
    """The config's numbers of query and key/value heads (those it gives every layer: a
    per-layer config's own raise when read globally, Gemma 4's key/value heads)."""
    found = set()
    for attr in ("num_attention_heads", "num_key_value_heads"):
        try:
            found.add(getattr(text, attr, None))
        except Exception:
            continue
    return found


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) and value else value


def layout_of(shape: tuple[int, ...] | None, n_pos: int) -> Layout | None:
    """How a q/k output of `shape` (from `attention_probe` with `n_pos` positions) is laid
    out."""
    if shape is None:
        return None
    if len(shape) == 3 and shape[1] == n_pos:
        return "flat"
    if len(shape) == 4 and shape[1] == n_pos:
        return "bphd"
    if len(shape) == 4 and shape[2] == n_pos:
        return "bhpd"
    return None
