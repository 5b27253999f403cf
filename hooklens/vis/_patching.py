"""``PatchingView``: click a cell of an activation-patching heatmap, see the patched prediction.

The view holds one prompt pair and a metric. The kernel caches the source run once (the clean
run when denoising) at every point the view offers, so a click costs one forward pass
(:func:`hooklens.patching.patch`). A sweep (:func:`hooklens.patching.sweep`) runs in a
background thread: a kernel busy inside a message handler could not receive the cancel request,
while torch releases the GIL during its kernels, so the main thread stays free to answer. The
thread streams each batch's partial heatmap to the front end as an ``hl:sweep`` custom message
(and keeps it for ``heatmap`` requests, so a view rendered later, or a standalone export, shows
it). Cancelling sets a flag that the sweep's ``on_batch`` callback checks and raises on; the
engine removes its hooks when ``on_batch`` raises.

The sweep reuses the view's own base run and source cache, and holds the model one batch at a
time (``hooklens/_engine/ownership.py``): a click, or any other cell's call on the model, runs
between two batches and sees the model as loaded; while a batch waits for such a call the
view's status reads "waiting".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any, Literal

import torch
from traitlets import Dict, Enum, Int, List, Unicode

from .._engine.tokens import token_strings
from ..metrics import Metric, logit_diff
from ..patching import POINTS, Patch, Patcher, PatchingResult
from ..patching._inputs import aligned_tokens
from ..patching._sweep import sweep_cells
from ..patching._types import base_and_source, metric_span
from ._cells import Cell, Layout, check_cell, layout_of, point_layout
from ._estimates import attribution_estimates
from ._patch_code import patch_code
from ._predictions import prediction as top_prediction
from ._widget import HookLensWidget, RpcError, rpc_method
from ._wire import SWEEP, encode_tensor, pack_buffers

_NEED_METRIC = (
    "PatchingView needs a metric: pass answer= and wrong= (single tokens, e.g. "
    "answer=' Mary', wrong=' John') for hl.metrics.logit_diff, or metric=hl.metrics.prob(model, "
    "' Mary') / any callable logits (batch, pos, d_vocab) -> (batch,)."
)
_HOLDING = (
    "this thread holds the model (inside `with model.hooks(...)`?), and the sweep needs it for "
    "its next batch: waiting here would never end. Leave the block first, or pass wait=False."
)


class SweepCancelled(Exception):
    """Raised from ``on_batch`` to stop a sweep the user cancelled."""


class PatchingView(HookLensWidget):
    """Activation patching of ``model`` on a clean/corrupted prompt pair, click by click.

    ``clean``/``corrupted``: text or ids (1, pos) of equal length. The metric is
    ``hl.metrics.logit_diff(model, answer, wrong)`` unless ``metric`` is given (any
    ``metric(logits (batch, pos, d_vocab)) -> (batch,)``). ``direction="denoise"`` patches
    clean activations into the corrupted run, ``"noise"`` the reverse. ``k``: top tokens per
    prediction. ``batch_size``, ``normalize`` go to ``sweep``. ``point``: the first heatmap,
    ``"resid_pre"`` (else ``"attn_out"``: several parallel streams). From Python:
    ``view.patches`` (the patch set last applied), ``view.code`` (the Python that reproduces
    it), ``view.run_sweep()`` / ``view.cancel_sweep()`` / ``view.wait()``, ``view.results``.
    """

    clean_tokens = List(Unicode(), help="Token strings of the clean prompt.").tag(sync=True)
    corrupted_tokens = List(Unicode(), help="Token strings of the corrupted prompt.").tag(sync=True)
    metric_source = Unicode("", help="repr() of the metric.").tag(sync=True)
    direction = Enum(
        ("denoise", "noise"),
        "denoise",
        help='"denoise": clean activations into the corrupted run; "noise": the reverse.',
    ).tag(sync=True)
    points = List(Unicode(), help="This model's points, in POINTS order.").tag(sync=True)
    point = Unicode("resid_pre", help="The point whose heatmap is shown.").tag(sync=True)
    k = Int(5, help="How many top tokens each prediction lists.").tag(sync=True)
    selection = List(
        Dict(), help="Cells of the patch set last applied (set by the kernel only)."
    ).tag(sync=True, ts="Cell[]")
    code = Unicode("", help='Python reproducing the patched result; "" before one.').tag(sync=True)
    sweep_status = Unicode(
        "idle",
        help='Last sweep: "idle", "running", "waiting" (its next batch waits for another call on '
        'the model), "done", "cancelled" or "error".',
    ).tag(sync=True)
    sweep_point = Unicode("", help='The point of the last sweep; "" before one.').tag(sync=True)
    sweep_done = Int(0, help="Cells of the running (or last) sweep done so far.").tag(sync=True)
    sweep_total = Int(0, help="Cells of the running (or last) sweep in all.").tag(sync=True)
    swept_points = List(
        Unicode(),
        help="Points with sweep values (finished, cancelled or failed part-way), in sweep order.",
    ).tag(sync=True)

    def __init__(
        self,
        model: Any,
        clean: Any,
        corrupted: Any,
        answer: str | int | None = None,
        wrong: str | int | None = None,
        *,
        point: str | None = None,
        metric: Metric | None = None,
        k: int = 5,
        direction: Literal["denoise", "noise"] = "denoise",
        batch_size: int | Literal["auto"] = "auto",
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        if metric is None:
            if answer is None or wrong is None:
                raise ValueError(_NEED_METRIC)
            metric = logit_diff(model, answer, wrong)
        self.model = model
        self.metric: Metric = metric
        self.clean, self.corrupted = clean, corrupted
        self._batch_size, self._normalize = batch_size, normalize
        clean_ids, corrupted_ids = aligned_tokens(model, clean, corrupted)
        self._base_ids, source_ids = base_and_source(direction, clean_ids, corrupted_ids)
        points = [p for p, (t, _) in POINTS.items() if t.format(layer=0) in model.hook_dict]
        point = point or ("resid_pre" if "resid_pre" in points else points[0])
        if point not in points:
            raise ValueError(f"point {point!r} is not one of this model's: {', '.join(points)}")
        base_strings = token_strings(model, self._base_ids)
        self._layouts = {p: point_layout(model, p, base_strings) for p in points}
        names = [
            POINTS[p][0].format(layer=layer) for p in points for layer in self._layouts[p].rows
        ]
        with torch.no_grad():
            source_logits, source_cache = model.run_with_cache(source_ids, names_filter=names)
            # Clicks reuse the base run (its residual stream and keys/values) to skip work.
            self._patcher = Patcher(model, self._base_ids, source_cache)
            base_logits = self._patcher.base.logits
        clean_logits, corrupted_logits = base_and_source(direction, base_logits, source_logits)
        self._k = int(k)
        self._clean = self._prediction(clean_logits)
        self._corrupted = self._prediction(corrupted_logits)
        self._estimates, self._estimate_error = attribution_estimates(  # what heatmaps open on
            model, clean, corrupted, metric, self._layouts, normalize=normalize, direction=direction
        )
        self._patches: list[Patch] = []
        self._partial: dict[str, torch.Tensor] = {}
        self.results: dict[str, PatchingResult] = {}
        # How each point's last sweep ended ("done", "cancelled", "error"): what its heatmap says.
        self._ended: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        # True from sweep_start until the engine's sweep has returned (its hooks are gone),
        # which is before the thread reports the end: a patch sent on that report must run.
        self._sweeping = False
        self._cancel = threading.Event()
        super().__init__(
            view="patching",
            clean_tokens=token_strings(model, clean_ids),
            corrupted_tokens=token_strings(model, corrupted_ids),
            metric_source=repr(metric),
            direction=direction,
            points=points,
            point=point,
            k=self._k,
            **kwargs,
        )
        self.refresh_first_screen()
        self.observe(lambda _change: self.refresh_first_screen(), names="point")

    # -- Python API ------------------------------------------------------------------------------
    @property
    def patches(self) -> list[Patch]:
        """The patch set last applied (by a click or shift-clicks), as ``Patch`` objects."""
        return list(self._patches)

    @property
    def clean_value(self) -> float:
        return float(self._clean["metric"])

    @property
    def corrupted_value(self) -> float:
        return float(self._corrupted["metric"])

    @property
    def result(self) -> PatchingResult | None:
        """The finished sweep of the shown point, if any."""
        return self.results.get(self.point)

    def run_sweep(self, point: str | None = None, wait: bool = True) -> PatchingResult | None:
        """Sweep ``point`` (default: the shown one) as the Run button does; with ``wait``,
        block until it ends and return its result (None if cancelled)."""
        self.call("sweep_start", {"point": point or self.point})
        if wait:
            self.wait()
            return self.results.get(point or self.point)
        return None

    def cancel_sweep(self) -> None:
        """Ask a running sweep to stop after its current batch."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running sweep to end; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            if thread.is_alive() and self.model.owner.held_here:
                raise RuntimeError(_HOLDING)
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    # -- requests --------------------------------------------------------------------------------
    @rpc_method("predictions")
    def _rpc_predictions(self) -> dict[str, Any]:
        """Clean and corrupted predictions: metric value, top-k ``ids`` (k,) int32 and ``probs``
        (k,) float32 at the metric's position, and their strings."""
        return {"clean": self._clean, "corrupted": self._corrupted, "metric": repr(self.metric)}

    @rpc_method("heatmap")
    def _rpc_heatmap(self, point: str) -> dict[str, Any]:
        """Cells of ``point`` and the values swept so far: ``values`` (rows, cols) float32,
        NaN where not computed, normalised when ``normalized``; ``estimate``: by attribution."""
        layout = self._layout_of(point)
        values = self._partial.get(point)
        if values is None:
            values = torch.full((len(layout.rows), len(layout.columns)), math.nan)
        running = self._running() and self.sweep_point == point
        ended = self._ended.get(point, "done" if point in self.results else "idle")
        return {
            "point": point,
            "axis": layout.axis,
            "rows": layout.rows,
            "columns": layout.columns,
            "row_labels": layout.row_labels,
            "column_labels": layout.column_labels,
            "values": encode_tensor(values),
            "estimate": None if (e := self._estimates.get(point)) is None else encode_tensor(e),
            "estimate_error": self._estimate_error,
            "status": self.sweep_status if running else ended,
            "normalized": self._normalize,
            "clean_value": self.clean_value,
            "corrupted_value": self.corrupted_value,
        }

    @rpc_method("patch")
    def _rpc_patch(self, cells: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply the patches of ``cells`` ([{"point", "row", "col"}], row/col index the point's
        heatmap) together; an empty list clears the patch set.

        The applied cells and their code are state: they go to every rendered view once, in the
        ``selection`` and ``code`` traits (the one source of truth, also for the clicking view),
        and the reply carries only what no trait holds: the patched prediction, its metric value
        (raw and normalised) and the patches as Python.
        """
        if not isinstance(cells, list):
            raise RpcError("cells must be a list of {point, row, col}")
        checked: list[Cell] = []
        for cell in cells:
            one = check_cell(self._layouts, cell)
            if one not in checked:
                checked.append(one)
        patches = [self._layouts[c["point"]].patch_of(c["row"], c["col"]) for c in checked]
        if not patches:
            self._patches = []
            with self.hold_sync():
                self.selection, self.code = [], ""
            return {"patches": [], "prediction": None, "normalized": None}
        with torch.no_grad():
            logits = self._patcher(patches)
        prediction = self._prediction(logits)
        self._patches = patches
        with self.hold_sync():  # one state message for both traits
            self.selection = [dict(c) for c in checked]
            self.code = patch_code(
                self.clean,
                self.corrupted,
                self.direction,
                self.metric,
                patches,
                prediction["metric"],
            )
        return {
            "patches": [p.to_python() for p in patches],
            "prediction": prediction,
            "normalized": self._normalized(prediction["metric"]),
        }

    @rpc_method("sweep_start")
    def _rpc_sweep_start(self, point: str) -> dict[str, Any]:
        """Start sweeping ``point`` in a background thread; progress arrives as ``hl:sweep``
        messages and in the ``sweep_*`` traits."""
        layout = self._layout_of(point)
        if self._running() or (self._thread is not None and self._thread.is_alive()):
            raise RpcError(f"a sweep of {self.sweep_point!r} is already running")
        total = len(layout.rows) * len(layout.columns)
        self._cancel.clear()
        self._partial[point] = torch.full((len(layout.rows), len(layout.columns)), math.nan)
        self.results.pop(point, None)
        self._ended.pop(point, None)
        self.sweep_point, self.sweep_done, self.sweep_total = point, 0, total
        self.sweep_status = "running"
        self._sweeping = True
        self._thread = threading.Thread(
            target=self._sweep_worker, args=(point,), name=f"hooklens-sweep-{point}", daemon=True
        )
        self._thread.start()
        return {"point": point, "total": total}

    @rpc_method("sweep_cancel")
    def _rpc_sweep_cancel(self) -> dict[str, Any]:
        """Stop the running sweep after its current batch (its partial values are kept)."""
        running = self._running()
        if running:
            self._cancel.set()
        return {"cancelling": running}

    def first_screen_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("predictions", {}), ("heatmap", {"point": self.point})]

    def exported_requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        yield ("predictions", {})
        for point in dict.fromkeys([self.point, *self._partial]):
            yield ("heatmap", {"point": point})

    # -- internals -------------------------------------------------------------------------------
    def _running(self) -> bool:
        return self._sweeping

    def _sweep_worker(self, point: str) -> None:
        def on_batch(partial: PatchingResult, done: int, total: int) -> None:
            self._partial[point] = partial.values.clone()
            self.sweep_done = done
            self.sweep_status = "running"
            self._push(point, "running", done, total)
            if self._cancel.is_set():
                raise SweepCancelled

        def on_wait() -> None:
            self.sweep_status = "waiting"

        status, error = "done", ""
        try:
            result = sweep_cells(
                self._patcher,
                self.metric,
                point,
                clean_value=self.clean_value,
                corrupted_value=self.corrupted_value,
                batch_size=self._batch_size,
                normalize=self._normalize,
                on_batch=on_batch,
                on_wait=on_wait,
            )
            self._partial[point] = result.values.clone()
            self.results[point] = result
        except SweepCancelled:
            status = "cancelled"
        except Exception as exc:  # shown in the widget, not lost in a thread
            status, error = "error", f"{type(exc).__name__}: {exc}"
            self.rpc_error = error
        finally:
            self._sweeping = False
        self._ended[point] = status
        self.refresh_first_screen()
        if point in self._partial and point not in self.swept_points:
            self.swept_points = [*self.swept_points, point]
        self.sweep_status = status
        self._push(point, status, self.sweep_done, self.sweep_total, error)

    def _push(self, point: str, status: str, done: int, total: int, error: str = "") -> None:
        """Send the sweep's state and values (rows, cols) float32 to every rendered view."""
        values = self._partial.get(point)
        message = {
            "kind": SWEEP,
            "point": point,
            "status": status,
            "done": done,
            "total": total,
            "error": error,
            "values": None if values is None else encode_tensor(values),
        }
        packed, buffers = pack_buffers(message)
        self.send(packed, buffers)

    def _layout_of(self, point: Any) -> Layout:
        return layout_of(self._layouts, point)

    def _normalized(self, value: float) -> float | None:
        span = metric_span(self.clean_value, self.corrupted_value)
        return None if span is None else (value - self.corrupted_value) / span

    @property
    def source_cache(self) -> Any:
        """The ``ActivationCache`` of the source run that patches copy from."""
        return self._patcher.source_cache

    @source_cache.setter
    def source_cache(self, cache: Any) -> None:
        self._patcher.source_cache = cache

    def _prediction(self, logits: torch.Tensor) -> dict[str, Any]:
        return top_prediction(self.model, self.metric, logits, self._k)
