"""The cells of a ``PatchingView`` heatmap: rows, columns and labels per point, checked clicks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from .._engine.model import HookedModel
from ..patching import POINTS, Patch
from ..patching._inputs import resolve_cells
from ..patching._types import cell_patch
from ._widget import RpcError, index_param


class Cell(TypedDict):
    """One heatmap cell of a point: ``row`` and ``col`` index that point's heatmap."""

    point: str
    row: int
    col: int


@dataclass(frozen=True)
class Layout:
    """Cells of one point: rows are layers, columns positions (``axis="pos"``) or heads."""

    point: str
    axis: Literal["pos", "head"]
    rows: list[int]
    columns: list[int]
    row_labels: list[str]
    column_labels: list[str]

    def patch_of(self, row: int, col: int) -> Patch:
        """The patch of cell (``row``, ``col``) (indices into the heatmap)."""
        return cell_patch(self.point, self.rows[row], self.columns[col])


def point_layout(model: HookedModel, point: str, tokens: list[str]) -> Layout:
    """The rows (layers) and columns (positions or heads) of ``point``'s heatmap.

    ``tokens``: the base prompt's token strings (``token_strings``, as ``sweep`` labels them);
    a position column reads ``"{pos} {token!r}"``.
    """
    axis = POINTS[point][1]
    rows, columns = resolve_cells(model, point, len(tokens), None, None, None)
    labels = (
        [f"{c} {tokens[c]!r}" for c in columns] if axis == "pos" else [f"H{c}" for c in columns]
    )
    return Layout(point, axis, rows, columns, [f"L{r}" for r in rows], labels)


def layout_of(layouts: dict[str, Layout], point: Any) -> Layout:
    """The layout of a requested ``point``; an error naming the known points otherwise."""
    if point not in layouts:
        raise RpcError(f"unknown point {point!r}; this model has {', '.join(layouts)}")
    return layouts[point]


def check_cell(layouts: dict[str, Layout], cell: Any) -> Cell:
    """A requested ``{"point", "row", "col"}`` checked against its heatmap, as a clean dict."""
    if not isinstance(cell, dict):
        raise RpcError(f"a cell is {{point, row, col}}, got {cell!r}")
    layout = layout_of(layouts, cell.get("point"))
    row = index_param("row", cell.get("row"), len(layout.rows))
    col = index_param("col", cell.get("col"), len(layout.columns))
    return Cell(point=layout.point, row=row, col=col)
