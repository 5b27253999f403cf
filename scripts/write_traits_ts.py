"""Write js/traits.gen.ts: the TypeScript side of each view's contract, from the Python classes.

For every view: an interface of its synced traits (each with its ``help=`` text, Python type and
default as a doc comment) and a union of the request names it answers (its ``rpc_method``
handlers); also the wire's message kinds and the ``TypedDict`` shapes that traits carry.
``tests/vis/test_contract.py`` fails when the file on disk differs from what this writes.

Usage: ``python scripts/write_traits_ts.py`` (from the repository root).
"""

from __future__ import annotations

import json
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import traitlets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's hooklens, also when run as a plain script

from hooklens.vis import _wire  # noqa: E402
from hooklens.vis._attention import AttentionPatterns  # noqa: E402
from hooklens.vis._attention_tokens import AttentionTokens  # noqa: E402
from hooklens.vis._cells import Cell  # noqa: E402
from hooklens.vis._heads import HeadMap  # noqa: E402
from hooklens.vis._hello import Hello  # noqa: E402
from hooklens.vis._logprobs import TokenLogProbs  # noqa: E402
from hooklens.vis._multi import ColoredTokensMulti  # noqa: E402
from hooklens.vis._neurons import TextNeuronActivations  # noqa: E402
from hooklens.vis._patching import PatchingView  # noqa: E402
from hooklens.vis._residual import ResidualView  # noqa: E402
from hooklens.vis._tokens import ColoredTokens  # noqa: E402
from hooklens.vis._topk import TopkSamples, TopkTokens  # noqa: E402
from hooklens.vis._widget import HookLensWidget  # noqa: E402

TARGET = ROOT / "js" / "traits.gen.ts"
WIDTH = 100

#: (TypeScript name stem, view class, the Python module it lives in).
VIEWS: list[tuple[str, type[HookLensWidget]]] = [
    ("ColoredTokens", ColoredTokens),
    ("Attention", AttentionPatterns),
    ("Residual", ResidualView),
    ("Patching", PatchingView),
    ("AttentionTokens", AttentionTokens),
    ("ColoredTokensMulti", ColoredTokensMulti),
    ("TokenLogProbs", TokenLogProbs),
    ("TextNeuronActivations", TextNeuronActivations),
    ("TopkTokens", TopkTokens),
    ("TopkSamples", TopkSamples),
    ("Hello", Hello),
    ("Heads", HeadMap),
]
#: TypedDicts that traits carry (named in a trait's ``ts=`` tag).
SHAPES: list[Any] = [Cell]
#: Types a ``ts=`` tag may name that live in another module of js/.
IMPORTS = {"EncodedTensor": "./codec"}

_SCALARS = {traitlets.Unicode: "string", traitlets.Int: "number", traitlets.Float: "number"}
_SCALARS[traitlets.Bool] = "boolean"
_PY_TO_TS = {str: "string", int: "number", float: "number", bool: "boolean"}


def _ts_type(trait: traitlets.TraitType[Any, Any]) -> str:
    """The TypeScript type of a trait's synced value (a ``ts=`` tag overrides it)."""
    tagged = trait.metadata.get("ts")
    if tagged:
        return str(tagged)
    if isinstance(trait, traitlets.Enum):
        return " | ".join(json.dumps(v) for v in trait.values or ())
    for kind, name in _SCALARS.items():
        if isinstance(trait, kind):
            return name
    if isinstance(trait, traitlets.List):
        inner = trait._trait  # the element trait, when one was given
        return f"{_ts_type(inner) if inner is not None else 'unknown'}[]"
    if isinstance(trait, traitlets.Dict):
        return "Record<string, unknown>"
    raise TypeError(f"no TypeScript type for {type(trait).__name__}: add a ts= tag")


def _py_type(trait: traitlets.TraitType[Any, Any]) -> str:
    """The trait's Python type as declared, e.g. ``List(Unicode)``."""
    inner = getattr(trait, "_trait", None)
    name = type(trait).__name__
    return f"{name}({_py_type(inner)})" if inner is not None else name


def _doc(lines: list[str], indent: str) -> list[str]:
    """A JSDoc comment of ``lines`` wrapped to the line width."""
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, WIDTH - len(indent) - 3) or [""]
    if len(wrapped) == 1 and len(indent) + len(wrapped[0]) + 7 <= WIDTH:
        return [f"{indent}/** {wrapped[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {w}" for w in wrapped), f"{indent} */"]


def _synced(view: type[HookLensWidget]) -> dict[str, traitlets.TraitType[Any, Any]]:
    """The view's own synced traits (its classes' and the hooklens base's, not ipywidgets')."""
    traits = view.class_traits(sync=True)
    return {
        name: trait
        for name, trait in traits.items()
        if not name.startswith("_") and issubclass(trait.this_class, HookLensWidget)
    }


def _interface(stem: str, view: type[HookLensWidget]) -> list[str]:
    source = view.__module__.replace(".", "/") + ".py"
    out = _doc([f"Synced traits of `hooklens.vis.{view.__name__}` ({source})."], "")
    out.append(f"export interface {stem}Traits {{")
    for name, trait in _synced(view).items():
        default = json.dumps(trait.default(), ensure_ascii=False)
        python = _py_type(trait)
        out += _doc([f"{trait.help} Python: {python}, default {default}."], "  ")
        out.append(f"  {name}: {_ts_type(trait)};")
    out += ["}", ""]
    names = sorted(view.rpc_methods)
    union = " | ".join(json.dumps(n) for n in names) if names else "never"
    out += _doc([f"Requests `{view.__name__}` answers (its `rpc_method` handlers)."], "")
    line = f"export type {stem}Request = {union};"
    if len(line) > WIDTH:
        out.append(f"export type {stem}Request =")
        out += [f"  | {json.dumps(n)}" for n in names]
        out[-1] += ";"
    else:
        out.append(line)
    return out


def _shape(shape: Any) -> list[str]:
    out = _doc([" ".join((shape.__doc__ or "").replace("``", "`").split())], "")
    out.append(f"export interface {shape.__name__} {{")
    for name, kind in typing.get_type_hints(shape).items():
        out.append(f"  {name}: {_PY_TO_TS[kind]};")
    out.append("}")
    return out


def traits_ts() -> str:
    """The text of js/traits.gen.ts."""
    used = {
        name
        for _, view in VIEWS
        for trait in _synced(view).values()
        for name in IMPORTS
        if name in str(trait.metadata.get("ts", ""))
    }
    out = [
        "// Generated by scripts/write_traits_ts.py from the Python view classes: do not edit.",
        "// Regenerate with `python scripts/write_traits_ts.py`; a test fails when it is stale.",
        *(f'import type {{ {name} }} from "{IMPORTS[name]}";' for name in sorted(used)),
        "",
        *_doc(["Message kinds and the buffer placeholder key (hooklens/vis/_wire.py)."], ""),
        "export const WIRE = {",
        f"  request: {json.dumps(_wire.REQUEST)},",
        f"  response: {json.dumps(_wire.RESPONSE)},",
        f"  sweep: {json.dumps(_wire.SWEEP)},",
        f"  bufferKey: {json.dumps(_wire.BUFFER_KEY)},",
        "} as const;",
    ]
    for shape in SHAPES:
        out += ["", *_shape(shape)]
    for stem, view in VIEWS:
        out += ["", *_interface(stem, view)]
    return "\n".join(out) + "\n"


def main() -> None:
    TARGET.write_text(traits_ts(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
