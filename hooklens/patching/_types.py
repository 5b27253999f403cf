"""The public types of patching: which points a sweep patches, one patch, a sweep's result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Point = Literal["resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "pattern", "q", "k", "v"]

#: The points ``sweep`` can patch: hook name template and the axis of the second cell index.
POINTS: dict[str, tuple[str, Literal["pos", "head"]]] = {
    "resid_pre": ("blocks.{layer}.hook_resid_pre", "pos"),
    "resid_mid": ("blocks.{layer}.hook_resid_mid", "pos"),
    "attn_out": ("blocks.{layer}.hook_attn_out", "pos"),
    "mlp_out": ("blocks.{layer}.hook_mlp_out", "pos"),
    "z": ("blocks.{layer}.attn.hook_z", "head"),
    "pattern": ("blocks.{layer}.attn.hook_pattern", "head"),
    "q": ("blocks.{layer}.attn.hook_q", "head"),
    "k": ("blocks.{layer}.attn.hook_k", "head"),
    "v": ("blocks.{layer}.attn.hook_v", "head"),
}


@dataclass(frozen=True)
class Patch:
    """Replace the activation at hook ``name`` by the source run's: at position ``pos`` (None:
    all positions) and head ``head`` (None: all heads; only for per-head points). For an
    attention pattern (``attn.hook_pattern``, ``attn.hook_attn_scores``), ``pos`` is the query
    (destination) position and ``src_pos`` a key (source) position (None: every key), so
    ``Patch(name, pos=d, head=h, src_pos=s)`` patches the one entry ``[:, h, d, s]``."""

    name: str
    pos: int | None = None
    head: int | None = None
    src_pos: int | None = None

    def to_python(self) -> str:
        where = {k: v for k, v in (("pos", self.pos), ("head", self.head),
                                   ("src_pos", self.src_pos)) if v is not None}  # fmt: skip
        return f"({self.name!r}, {where!r})"


PatchLike = Patch | tuple[str, dict[str, int]] | tuple[str]

Direction = Literal["denoise", "noise"]


def base_and_source(direction: str, clean: Any, corrupted: Any) -> tuple[Any, Any]:
    """(run patched into, run patched from) of a direction: denoising patches clean activations
    into the corrupted run, noising corrupted ones into the clean run. The same swap maps
    (base, source) back to (clean, corrupted): ``base_and_source(d, base, source)``."""
    if direction == "denoise":
        return corrupted, clean
    if direction == "noise":
        return clean, corrupted
    raise ValueError(f"direction must be 'denoise' or 'noise', got {direction!r}")


def metric_span(clean_value: float, corrupted_value: float) -> float | None:
    """clean - corrupted, the divisor of a normalised effect; None when the two are equal (the
    prompts do not differ under the metric, so a normalised effect is undefined)."""
    span = clean_value - corrupted_value
    return None if abs(span) < 1e-12 else span


_EQUAL_METRIC = (
    "the metric is the same on the clean and corrupted prompts ({value:.6g}), so normalising by "
    "their difference is undefined; pass normalize=False or a metric that tells the prompts apart."
)


def normalizer(
    clean_value: float, corrupted_value: float, normalize: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """raw metric values -> what a ``PatchingResult`` shows: (raw - corrupted) / (clean -
    corrupted) when ``normalize`` (an error when the two prompts' values are equal), else raw."""
    span = metric_span(clean_value, corrupted_value)
    if normalize and span is None:
        raise ValueError(_EQUAL_METRIC.format(value=clean_value))

    def values(raw: torch.Tensor) -> torch.Tensor:
        return (raw - corrupted_value) / span if normalize and span else raw.clone()

    return values


def cell_patch(point: str, layer: int, column: int) -> Patch:
    """The patch of one sweep cell: ``point`` at ``layer``, at position or head ``column``."""
    template, axis = POINTS[point]
    name = template.format(layer=layer)
    return Patch(name, pos=column) if axis == "pos" else Patch(name, head=column)


def as_patch(item: PatchLike) -> Patch:
    """A ``Patch`` from ``Patch`` or ``(name, {"pos": p, "head": h, "src_pos": s})``."""
    if isinstance(item, Patch):
        return item
    name, where = (item[0], item[1]) if len(item) == 2 else (item[0], {})
    unknown = set(where) - {"pos", "head", "src_pos"}
    if unknown:
        raise ValueError(
            f"a patch is (hook name, {{'pos': p, 'head': h, 'src_pos': s}}); unknown keys {unknown}"
        )
    return Patch(name, where.get("pos"), where.get("head"), where.get("src_pos"))


@dataclass
class PatchingResult:
    """The metric after each single-cell patch.

    ``values``: (layers, positions) or (layers, heads); normalised to
    (patched - corrupted) / (clean - corrupted) when ``normalized``, else the raw metric.
    ``rows`` are layer indices, ``columns`` position indices or head indices, ``column_labels``
    the token strings (positions) or ``"H{h}"`` (heads). ``method`` is ``"exact"`` (one patched
    run per cell) or ``"attribution"`` (the first-order estimate from two runs and a backward).
    """

    values: torch.Tensor
    point: str
    rows: list[int]
    columns: list[int]
    column_labels: list[str]
    clean_value: float
    corrupted_value: float
    normalized: bool
    raw: torch.Tensor = field(repr=False)
    method: str = "exact"

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.values[index]

    def __array__(self, dtype: Any = None) -> Any:
        array = self.values.numpy()
        return array if dtype is None else array.astype(dtype)

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` cells with the largest values, as (layer, position or head, value)."""
        flat = torch.nan_to_num(self.values, nan=-math.inf).flatten()
        order = flat.topk(min(k, flat.numel())).indices.tolist()
        n_columns = len(self.columns)
        return [
            (self.rows[i // n_columns], self.columns[i % n_columns], float(flat[i])) for i in order
        ]

    def patches(self, row: int, column: int) -> list[Patch]:
        """The patch of cell (``row``, ``column``) (indices into ``values``)."""
        return [cell_patch(self.point, self.rows[row], self.columns[column])]
