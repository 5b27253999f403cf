"""The structure of hooklens.vis: a leaf wire module, one base (circles and module sizes of the
whole package: tests/unit/test_layout.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import hooklens.vis

VIS = Path(hooklens.vis.__file__).parent


def _imports(path: Path) -> set[str]:
    """Sibling modules of hooklens.vis that ``path`` imports, at any depth (functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["hooklens", "vis"] and len(parts) > 2:
                found.add(parts[2])
    return found


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path) for path in VIS.glob("*.py") if path.stem != "__init__"}


def test_the_wire_is_a_leaf() -> None:
    source = (VIS / "_wire.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("hooklens"), node.module
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("hooklens") for a in node.names)


def test_one_base_and_export_joins_it_to_the_wire() -> None:
    graph = _graph()
    assert graph["_widget"] == {"_wire"}  # the base needs only the wire
    assert graph["export"] == {"_widget", "_wire"}
    # Only the views' CircuitsVis base builds on exports (its show_code() is an export).
    assert {name for name, deps in graph.items() if "export" in deps} == {"_port"}
    views = [hooklens.vis.ColoredTokens, hooklens.vis.AttentionPatterns]
    views += [hooklens.vis.ResidualView, hooklens.vis.PatchingView]
    from hooklens.vis._widget import HookLensWidget

    assert all(issubclass(view, HookLensWidget) for view in views)
