"""Activation patching as a batched engine operation.

``sweep`` patches one activation at a time (a cell: a layer and a position, or a layer and a
head) and measures a metric for every cell. Cells run as the batch elements of few forward
passes instead of one pass each, and no work is done that a patch cannot change:

- a patch at layer ``l`` leaves every layer below ``l`` as in the unpatched run, so a batch of
  cells starts at the lowest layer among them, on the unpatched residual stream there;
- with causal attention, a patch at position ``p`` leaves positions before ``p`` unchanged at
  every layer, so only positions from ``p`` on are run, attending to the unpatched run's cached
  keys and values for the earlier ones.

Cells are grouped into tiles of nearby layers and positions so that little is recomputed.
``patch`` applies a set of patches in one ordinary forward pass; it is also the reference the
tests compare ``sweep`` against.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ._patch_inputs import (
    aligned_tokens,
    check_metric_value,
    per_head_axis,
    resolve_cells,
    single_prompt,
    str_tokens,
)
from .metrics import Metric, TokenMetric

__all__ = ["POINTS", "Patch", "Patcher", "PatchingResult", "patch", "sweep"]

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

# Work budget of one batched forward pass in (batch element x position) rows, when
# batch_size="auto": big enough that matrix products are efficient, small enough that the
# activations of a pass stay far below the weights' size for models that fit on one device.
_AUTO_ROWS = 2048


@dataclass(frozen=True)
class Patch:
    """Replace the activation at hook ``name`` by the source run's: at position ``pos`` (None:
    all positions) and head ``head`` (None: all heads; only for per-head points)."""

    name: str
    pos: int | None = None
    head: int | None = None

    def to_python(self) -> str:
        where = {k: v for k, v in (("pos", self.pos), ("head", self.head)) if v is not None}
        return f"({self.name!r}, {where!r})"


PatchLike = Patch | tuple[str, dict[str, int]] | tuple[str]


def as_patch(item: PatchLike) -> Patch:
    """A ``Patch`` from ``Patch`` or ``(name, {"pos": p, "head": h})``."""
    if isinstance(item, Patch):
        return item
    name, where = (item[0], item[1]) if len(item) == 2 else (item[0], {})
    unknown = set(where) - {"pos", "head"}
    if unknown:
        raise ValueError(f"a patch is (hook name, {{'pos': p, 'head': h}}); unknown keys {unknown}")
    return Patch(name, where.get("pos"), where.get("head"))


def _write(act: torch.Tensor, element: int, patch: Patch, src: torch.Tensor,
           pos_offset: int, head_axis: int | None) -> None:  # fmt: skip
    """In place: ``act[element]`` takes ``src`` (the source run's activation, batch 1) where
    ``patch`` says. ``act`` covers positions ``pos_offset..``; ``src`` all positions."""
    src = src[0].to(act.device, act.dtype)
    target = act[element]
    if head_axis is None:  # (pos, ...) residual-like activation
        if patch.pos is None:
            target[...] = src[pos_offset:]
        else:
            target[patch.pos - pos_offset] = src[patch.pos]
        return
    # Per-head activations: (pos, heads, d_head), or (heads, q, k) for patterns.
    axis = head_axis - 1
    head = slice(None) if patch.head is None else patch.head
    if axis == 0:  # pattern: (heads, q, k)
        q = slice(None) if patch.pos is None else patch.pos
        q_src = src[head] if patch.pos is None else src[head, q]
        if patch.pos is None:
            target[head] = q_src[..., pos_offset:, :]
        else:
            target[head, patch.pos - pos_offset] = q_src
    elif patch.pos is None:
        target[:, head] = src[pos_offset:, head]
    else:
        target[patch.pos - pos_offset, head] = src[patch.pos, head]


def _patch_hooks(model: Any, groups: dict[str, list[tuple[int, Patch]]],
                 source: Any, pos_offset: int) -> list[tuple[str, Callable[..., Any]]]:  # fmt: skip
    """One hook per patched point, writing every (batch element, patch) of that point."""
    hooks = []
    for name, writes in groups.items():
        axis = per_head_axis(name)

        def hook(act: torch.Tensor, hook: Any, writes: Any = writes, name: str = name,
                 axis: int | None = axis) -> torch.Tensor:  # fmt: skip
            act = act.clone()
            for element, one in writes:
                _write(act, element, one, source[name], pos_offset, axis)
            return act

        hooks.append((name, hook))
    return hooks


def patch(model: Any, base: Any, source_cache: Any, patches: Iterable[PatchLike]) -> torch.Tensor:
    """Run ``base`` (text or ids (1, pos)) with ``patches`` from ``source_cache`` applied together.

    ``source_cache`` is an ``ActivationCache`` of the source run (with its batch dimension, as
    ``run_with_cache`` returns it) holding every patched point. Denoising patches a clean cache
    into the corrupted prompt; noising, a corrupted cache into the clean prompt.
    Returns logits (1, pos, d_vocab).
    """
    tokens = single_prompt(model, base)
    groups: dict[str, list[tuple[int, Patch]]] = {}
    for item in patches:
        one = as_patch(item)
        if one.name not in source_cache:
            raise KeyError(
                f"the source cache has no {one.name!r}: cache it with "
                f"run_with_cache(source, names_filter=[{one.name!r}, ...])"
            )
        groups.setdefault(one.name, []).append((0, one))
    return model.run_with_hooks(tokens, fwd_hooks=_patch_hooks(model, groups, source_cache, 0))


@dataclass
class PatchingResult:
    """The metric after each single-cell patch.

    ``values``: (layers, positions) or (layers, heads); normalised to
    (patched - corrupted) / (clean - corrupted) when ``normalized``, else the raw metric.
    ``rows`` are layer indices, ``columns`` position indices or head indices, ``column_labels``
    the token strings (positions) or ``"H{h}"`` (heads).
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
        name = POINTS[self.point][0].format(layer=self.rows[row])
        if POINTS[self.point][1] == "pos":
            return [Patch(name, pos=self.columns[column])]
        return [Patch(name, head=self.columns[column])]


@dataclass(frozen=True)
class _Cell:
    index: tuple[int, int]
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
    12 d_model^2 per row each) and the unembedding of one position per cell."""
    layer0 = min(c.layer for c in tile)
    rows = len(tile) * (seq_len - min(c.start_pos for c in tile))
    blocks = (n_layers - layer0) * 12.0 * d_model * d_model * (rows + _WEIGHT_READ_ROWS)
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


class _BaseRun:
    """What every batch reuses from the run being patched into: the residual stream entering
    each layer, the logits, and the keys/values of every layer (of which a batch starting at
    position ``p`` reuses positions ``< p``: with causal attention they equal the prefix's)."""

    def __init__(self, model: Any, tokens: torch.Tensor) -> None:
        self.model = model
        self.tokens = tokens
        self._resid_pre: dict[int, torch.Tensor] = {}

        def keep(resid: torch.Tensor, hook: Any) -> None:
            self._resid_pre[hook.layer()] = resid.detach()

        names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
        # One forward pass gives the logits, the residual stream and the keys/values.
        with torch.no_grad(), model.hooks([(name, keep) for name in names]):
            self.logits, kv = model._forward_with_kv(tokens)
        # (keys, values) per layer, each (1, n_kv_heads, pos, d_head).
        self._keys_values = [(layer.keys, layer.values) for layer in kv.layers]

    def resid_pre(self, layer: int) -> torch.Tensor:
        """(1, pos, d_model) entering block ``layer``."""
        return self._resid_pre[layer]

    def kv_for(self, prefix_len: int, batch: int) -> Any:
        """A fresh key/value cache of the first ``prefix_len`` positions for ``batch`` elements."""
        from transformers import DynamicCache

        pairs = [
            (keys[:, :, :prefix_len].expand(batch, -1, -1, -1),
             values[:, :, :prefix_len].expand(batch, -1, -1, -1))
            for keys, values in self._keys_values
        ]  # fmt: skip
        return DynamicCache(ddp_cache_data=pairs, config=self.model.hf_model.config)


class Patcher:
    """Applies patch sets to one base prompt, doing only the work a patch set can change.

    ``Patcher(model, base, source_cache)(patches)`` returns the same logits (1, pos, d_vocab) as
    ``patch(model, base, source_cache, patches)``, but runs from the lowest patched layer and
    the first patched position on, reusing the base run's residual stream and keys/values.
    Built once per prompt pair (one forward pass to prepare), it makes clicks cheap.
    """

    def __init__(self, model: Any, base: Any, source_cache: Any) -> None:
        self.model = model
        self.source_cache = source_cache
        self.base = _BaseRun(model, single_prompt(model, base))

    def __call__(self, patches: Iterable[PatchLike]) -> torch.Tensor:
        chosen = [as_patch(item) for item in patches]
        layers: list[int | None] = [self.model.hook_dict[p.name].layer() for p in chosen]
        block_layers = [layer for layer in layers if layer is not None]
        if not chosen or len(block_layers) < len(layers):
            # No patch, or a model-level point (e.g. hook_embed): no block to start from.
            return patch(self.model, self.base.tokens, self.source_cache, chosen)
        layer0 = min(block_layers)
        pos0 = min(0 if p.pos is None or p.head is not None else p.pos for p in chosen)
        for one in chosen:
            if one.name not in self.source_cache:
                raise KeyError(f"the source cache has no {one.name!r}")
        groups: dict[str, list[tuple[int, Patch]]] = {}
        for one in chosen:
            groups.setdefault(one.name, []).append((0, one))
        kv = self.base.kv_for(pos0, 1) if pos0 > 0 else None
        resid = self.base.resid_pre(layer0)[:, pos0:]
        with (
            torch.no_grad(),
            self.model.hooks(_patch_hooks(self.model, groups, self.source_cache, pos0)),
        ):
            logits = self.model._run_from_layer(resid, layer0, kv_cache=kv)
        prefix = self.base.logits[:, :pos0].to(logits.device, logits.dtype)
        return torch.cat([prefix, logits], dim=1)


def _run_tile(model: Any, tile: list[_Cell], base: _BaseRun, source: Any,
              metric: Metric, only_last: bool) -> torch.Tensor:  # fmt: skip
    """Metric values (len(tile),) with each cell's patch applied to its own batch element."""
    layer0 = min(c.layer for c in tile)
    pos0 = min(c.start_pos for c in tile)
    n = len(tile)
    resid = base.resid_pre(layer0)[:, pos0:].expand(n, -1, -1)
    groups: dict[str, list[tuple[int, Patch]]] = {}
    for element, cell in enumerate(tile):
        groups.setdefault(cell.patch.name, []).append((element, cell.patch))
    kv = base.kv_for(pos0, n) if pos0 > 0 else None
    with model.hooks(_patch_hooks(model, groups, source, pos0)):
        logits = model._run_from_layer(
            resid, layer0, kv_cache=kv, logits_to_keep=1 if only_last else 0
        )
    if not only_last and pos0 > 0:
        # Positions before pos0 are unchanged by every patch in this tile.
        prefix = base.logits[:, :pos0].to(logits.device, logits.dtype).expand(n, -1, -1)
        logits = torch.cat([prefix, logits], dim=1)
    return check_metric_value(metric, logits)


def sweep(
    model: Any,
    clean: Any,
    corrupted: Any,
    metric: Metric,
    point: Point = "resid_pre",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    batch_size: int | Literal["auto"] = "auto",
    normalize: bool = True,
    progress: bool = True,
    direction: Literal["denoise", "noise"] = "denoise",
    on_batch: Callable[[PatchingResult, int, int], None] | None = None,
) -> PatchingResult:
    """Patch ``point`` one cell at a time and measure ``metric`` after each patch.

    ``clean``/``corrupted``: text or ids (1, pos); they must have the same number of tokens.
    ``metric(logits (batch, pos, d_vocab)) -> (batch,)``, e.g. ``hl.metrics.logit_diff``.
    ``direction="denoise"`` patches clean activations into the corrupted run; ``"noise"``
    corrupted activations into the clean run. Cells are (layer, position) for ``resid_pre``,
    ``resid_mid``, ``attn_out``, ``mlp_out`` and (layer, head) for ``z``, ``pattern``, ``q``,
    ``k``, ``v`` (k and v heads are key/value heads). ``batch_size``: cells per forward pass,
    or "auto" for a budget of rows. ``on_batch(partial_result, done, total)`` is called after
    each batch (a view fills cells as they arrive; raising from it stops the sweep cleanly).
    Returns a ``PatchingResult`` whose ``values`` are (layers, positions) or (layers, heads).
    """
    if point not in POINTS:
        raise ValueError(f"unknown point {point!r}; choose one of {', '.join(POINTS)}")
    clean_tokens, corrupted_tokens = aligned_tokens(model, clean, corrupted)
    base_tokens, source_tokens = (
        (corrupted_tokens, clean_tokens)
        if direction == "denoise"
        else (clean_tokens, corrupted_tokens)
    )
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    template, axis = POINTS[point]
    seq_len = base_tokens.shape[1]
    rows, columns = resolve_cells(model, point, template, axis, seq_len, layers, positions, heads)
    names = sorted({template.format(layer=layer) for layer in rows})
    source_logits, source = model.run_with_cache(source_tokens, names_filter=names)
    base = _BaseRun(model, base_tokens)
    with torch.no_grad():
        clean_logits, corrupted_logits = (
            (source_logits, base.logits) if direction == "denoise" else (base.logits, source_logits)
        )
        clean_value = float(check_metric_value(metric, clean_logits)[0])
        corrupted_value = float(check_metric_value(metric, corrupted_logits)[0])
    cells = [
        _Cell(
            (i, j),
            layer,
            Patch(template.format(layer=layer), pos=col)
            if axis == "pos"
            else Patch(template.format(layer=layer), head=col),
            col if axis == "pos" else 0,
        )
        for i, layer in enumerate(rows)
        for j, col in enumerate(columns)
    ]
    if batch_size == "auto":
        budget = _AUTO_ROWS
    else:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        budget = int(batch_size) * seq_len
    only_last = isinstance(metric, TokenMetric) and metric.pos == -1
    # A logit difference needs two logits, not the whole vocabulary: unembed only those.
    two_logits = only_last and isinstance(metric, TokenMetric) and metric.kind == "logit_diff"
    tile_metric: Metric = TokenMetric("logit_diff", 0, 1) if two_logits else metric
    unembed_width = 2 if two_logits else model.cfg.d_vocab
    tiles = _plan(cells, model.cfg.n_layers, seq_len, model.cfg.d_model, max(budget, seq_len),
                  unembed_width)  # fmt: skip
    raw = torch.full((len(rows), len(columns)), math.nan)
    shown = str_tokens(model, base_tokens) if axis == "pos" else []
    labels = [shown[c] for c in columns] if axis == "pos" else [f"H{c}" for c in columns]
    denominator = clean_value - corrupted_value

    def result() -> PatchingResult:
        values = (raw - corrupted_value) / denominator if normalize else raw.clone()
        return PatchingResult(values, point, list(rows), list(columns), labels, clean_value,
                              corrupted_value, normalize, raw.clone())  # fmt: skip

    if normalize and abs(denominator) < 1e-12:
        raise ValueError(
            f"the metric is the same on the clean and corrupted prompts ({clean_value:.6g}), so "
            "normalising by their difference is undefined; pass normalize=False or a metric "
            "that tells the prompts apart."
        )
    bar = _progress(progress, len(cells), point)
    done = 0
    narrow: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if two_logits:
        assert isinstance(metric, TokenMetric) and metric.wrong_id is not None
        narrow = _unembed_only(model, [metric.answer_id, metric.wrong_id])
    try:
        with torch.no_grad(), narrow:
            for tile in tiles:
                values = _run_tile(model, tile, base, source, tile_metric, only_last)
                for cell, value in zip(tile, values.tolist(), strict=True):
                    raw[cell.index] = value
                done += len(tile)
                if bar is not None:
                    bar.update(len(tile))
                if on_batch is not None:
                    on_batch(result(), done, len(cells))
    finally:
        if bar is not None:
            bar.close()
    return result()


@contextlib.contextmanager
def _unembed_only(model: Any, token_ids: list[int]) -> Iterator[None]:
    """While open, the model's unembedding computes only the logits of ``token_ids``, in that
    order: (..., d_model) -> (..., len(token_ids)). The full module is restored on exit."""
    parent_path, _, attribute = model.spec.unembed.rpartition(".")
    parent = model.hf_model.get_submodule(parent_path)
    full = getattr(parent, attribute)
    ids = torch.tensor(token_ids, device=full.weight.device)
    rows = torch.nn.Linear(full.in_features, len(token_ids), bias=full.bias is not None,
                           device=full.weight.device, dtype=full.weight.dtype)  # fmt: skip
    with torch.no_grad():
        rows.weight.copy_(full.weight[ids])
        if full.bias is not None:
            rows.bias.copy_(full.bias[ids])
    setattr(parent, attribute, rows)
    try:
        yield
    finally:
        setattr(parent, attribute, full)


def _progress(enabled: bool, total: int, point: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"patching {point}", unit="patch")
