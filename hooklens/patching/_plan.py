"""The batching cost model: which cells share a forward pass."""

from __future__ import annotations

from dataclasses import dataclass

from ._types import Patch


@dataclass(frozen=True)
class _Cell:
    index: tuple[int, ...]  # where the cell's value goes in the result
    layer: int
    patch: Patch
    start_pos: int  # first position the patch can change


# A forward pass reads every weight it uses once, whatever its batch: on a CPU that costs about
# as much as computing this many rows (batch element x position) through the same weights. It
# decides how cells are grouped into passes: few big passes amortise the weight reads, exact
# skipping saves compute; the plan minimises the sum.
_WEIGHT_READ_ROWS = 16
_BAND_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def _pass_cost(tile: list[_Cell], n_layers: int, seq_len: int, d_model: int,
               unembed_width: int) -> float:  # fmt: skip
    """Modelled cost of one pass, in multiply-accumulates: the blocks it runs (about
    12 d_model^2 per row each; a cell joins the pass at its own layer) and the unembedding of
    one position per cell."""
    layer0 = min(c.layer for c in tile)
    rows = seq_len - min(c.start_pos for c in tile)  # per cell
    row_blocks = sum((n_layers - c.layer) * rows for c in tile)
    blocks = 12.0 * d_model * d_model * (row_blocks + (n_layers - layer0) * _WEIGHT_READ_ROWS)
    return blocks + d_model * unembed_width * (len(tile) + _WEIGHT_READ_ROWS)


def _banded(cells: list[_Cell], layer_band: int, pos_band: int, rows_per_pass: int,
            seq_len: int) -> list[list[_Cell]]:  # fmt: skip
    """Tiles of ``layer_band`` consecutive layers x ``pos_band`` consecutive start positions
    (counting only layers/positions that have cells), split to at most ``rows_per_pass`` rows."""
    layer_rank = {layer: i for i, layer in enumerate(sorted({c.layer for c in cells}))}
    pos_rank = {pos: i for i, pos in enumerate(sorted({c.start_pos for c in cells}))}
    bands: dict[tuple[int, int], list[_Cell]] = {}
    for cell in cells:
        key = (pos_rank[cell.start_pos] // pos_band, layer_rank[cell.layer] // layer_band)
        bands.setdefault(key, []).append(cell)
    tiles = []
    for _, band in sorted(bands.items()):
        band.sort(key=lambda c: (c.layer, c.start_pos))
        per_pass = max(1, rows_per_pass // (seq_len - min(c.start_pos for c in band)))
        tiles += [band[i : i + per_pass] for i in range(0, len(band), per_pass)]
    return tiles


def _plan(cells: list[_Cell], n_layers: int, seq_len: int, d_model: int,
          rows_per_pass: int, unembed_width: int) -> list[list[_Cell]]:  # fmt: skip
    """Group cells into forward passes: the band sizes whose modelled cost is lowest.

    A pass starts at its lowest layer and first start position, so wide bands recompute
    work a cell did not need, and narrow bands pay the fixed cost of more passes."""
    n_distinct_layers = len({c.layer for c in cells})
    n_distinct_starts = len({c.start_pos for c in cells})
    best: tuple[float, list[list[_Cell]]] | None = None
    for layer_band in [b for b in _BAND_SIZES if b < n_distinct_layers] + [n_distinct_layers]:
        for pos_band in [b for b in _BAND_SIZES if b < n_distinct_starts] + [n_distinct_starts]:
            tiles = _banded(cells, layer_band, pos_band, rows_per_pass, seq_len)
            cost = sum(_pass_cost(t, n_layers, seq_len, d_model, unembed_width) for t in tiles)
            if best is None or cost < best[0]:
                best = (cost, tiles)
    assert best is not None
    return best[1]
