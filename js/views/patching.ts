/**
 * Click-to-patch view (hooklens/vis/_patching.py): the clean and corrupted prompts and their
 * predictions, a canvas heatmap of a patching sweep (layers x positions, or layers x heads), and
 * the patched prediction of the clicked cell(s).
 *
 * Requests: `predictions`, `heatmap {point}`, `patch {cells}`, `sweep_start {point}`,
 * `sweep_cancel`. A running sweep pushes `hl:sweep` messages (state + partial values) that fill
 * the heatmap as batches finish. Patch clicks go through a `LatestQueue`: one request in flight,
 * the newest patch set waiting (also while a sweep runs, since the kernel refuses a patch then).
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { RpcClient, unpackBuffers } from "../rpc";
import { tokenSpan, visibleToken } from "../tokens";
import { type PatchingRequest, type PatchingTraits, WIRE } from "../traits.gen";
import { rangeOf } from "../ui/colormap";
import { cellAt, cellSize, paintHeatmap, paintMarks } from "../ui/heatmap";
import { createLegend, updateLegend } from "../ui/legend";
import { createPlot } from "../ui/plot";
import { colorScale, readTheme, watchTheme } from "../ui/theme";
import { Tooltip } from "../ui/tooltip";
import { clearError, element, formatValue, showError } from "./common";
import {
  type Cell,
  filledCount,
  jsonValues,
  LatestQueue,
  nextSelection,
  progressText,
  type QueueState,
  selectionKey,
} from "./patching_state";

/** A prediction at the metric's position: `ids`/`probs` of shape (k,). */
export interface Prediction {
  metric: number;
  ids: EncodedTensor;
  probs: EncodedTensor;
  strings: string[];
}

export interface PredictionsReply {
  clean: Prediction;
  corrupted: Prediction;
  metric: string;
}

/** Reply of `heatmap`: `values` (rows, cols), NaN where not computed yet. */
export interface HeatmapReply {
  point: string;
  axis: "pos" | "head";
  /** Layer of each row; position or head of each column. */
  rows: number[];
  columns: number[];
  row_labels: string[];
  column_labels: string[];
  values: EncodedTensor;
  /** Attribution-patching estimate of every cell (null, with the reason, when unavailable). */
  estimate: EncodedTensor | null;
  estimate_error: string;
  status: string;
  normalized: boolean;
  clean_value: number;
  corrupted_value: number;
}

/**
 * Reply of `patch`: only what no trait holds. The applied cells and their code arrive once, in
 * the `selection` and `code` traits (before this reply), for every rendered view alike.
 */
export interface PatchReply {
  patches: string[];
  prediction: Prediction | null;
  normalized: number | null;
}

/** Pushed by the kernel's sweep thread after every batch and once at the end. */
export interface SweepMessage {
  kind: typeof WIRE.sweep;
  point: string;
  status: string;
  done: number;
  total: number;
  error: string;
  values: EncodedTensor | null;
}

interface Heatmap {
  point: string;
  axis: "pos" | "head";
  rowLabels: string[];
  columnLabels: string[];
  columns: number[];
  values: Tensor;
  estimate: Tensor | null;
  normalized: boolean;
}

/** Exact values where computed, the estimate elsewhere (NaN where neither is). */
function shownValues(heatmap: Heatmap): { values: Float32Array; estimated: number } {
  const exact = heatmap.values.values;
  const values = Float32Array.from(exact);
  let estimated = 0;
  if (!heatmap.estimate) return { values, estimated };
  const guess = heatmap.estimate.values;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]) && Number.isFinite(guess[i])) {
      values[i] = guess[i];
      estimated += 1;
    }
  }
  return { values, estimated };
}

export function renderPatching(model: AnyModel<PatchingTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<PatchingRequest>(model);
  // A standalone export (export.py) has no kernel: it shows the last heatmap, not interactive.
  const isStatic = el.classList.contains("hooklens-standalone");
  const clean = model.get("clean_tokens");
  const corrupted = model.get("corrupted_tokens");
  let heatmap: Heatmap | undefined;
  let selection: Cell[] = model.get("selection") ?? [];
  let hover: [number, number] | null = null;
  let renders = 0;
  el.dataset.view = "patching";

  const root = element("div", "hl-patching", el);
  const header = element("div", "hl-header", root);
  element("span", "hl-title", header, "activation patching");
  element("span", "hl-status", header, `${model.get("direction")} · ${model.get("metric_source")}`);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;

  // Prompts, with the positions where they differ marked.
  const promptSpans: HTMLSpanElement[][] = [];
  for (const [label, tokens, other] of [
    ["clean", clean, corrupted],
    ["corrupted", corrupted, clean],
  ] as const) {
    const line = element("div", "hl-prompt", root);
    element("span", "hl-prompt-label", line, label);
    const spans = tokens.map((token, pos) => {
      const span = line.appendChild(tokenSpan(token));
      span.dataset.pos = String(pos);
      span.title = `${pos}: ${JSON.stringify(token)}`;
      if (token !== other[pos]) span.classList.add("hl-diff");
      return span;
    });
    promptSpans.push(spans);
  }

  const controls = element("div", "hl-controls", root);
  element("label", "", controls, "point");
  const select = element("select", "hl-point-select", controls);
  for (const point of model.get("points")) {
    const option = element("option", "", select, point);
    option.value = point;
  }
  const runButton = element("button", "hl-run", controls, "Run sweep");
  const cancelButton = element("button", "hl-cancel", controls, "Cancel");
  const progress = element("progress", "hl-progress", controls);
  const sweepText = element("span", "hl-sweep-status hl-status", controls);
  if (isStatic) {
    // An export holds the shown point and every swept one: offer exactly those.
    const held = new Set([model.get("point"), ...(model.get("swept_points") ?? [])]);
    for (const option of select.options) option.disabled = !held.has(option.value);
    runButton.hidden = true;
    cancelButton.hidden = true;
  }

  const caption = element("div", "hl-caption", root);
  const legend = createLegend(root);
  // The heatmap and, beside it (sticky while the page scrolls), the predictions: a click's
  // answer is in sight of the clicked cell.
  const heatRow = element("div", "hl-heat-row", root);
  const plot = createPlot(heatRow, {
    rowLabels: [],
    columnLabels: [],
    rowTitle: "layer",
    columnTitle: "position",
    maxHeight: 560,
  });
  const canvas = plot.canvas;
  const overlay = plot.overlay;
  const side = element("div", "hl-side", heatRow);
  const readout = element("div", "hl-readout", side, "");
  const patchStatus = element("div", "hl-patch-status hl-status", side);
  const tooltip = new Tooltip(el);

  const predictions = element("div", "hl-predictions", side);
  const column = (which: string, title: string) => {
    const box = element("div", "hl-pred", predictions);
    box.dataset.which = which;
    element("div", "hl-pred-title", box, title);
    const value = element("div", "hl-metric", box);
    const list = element("ol", "hl-topk", box);
    return { box, value, list };
  };
  const cleanBox = column("clean", "clean");
  const corruptedBox = column("corrupted", "corrupted");
  const patchedBox = column("patched", "patched");
  patchedBox.value.textContent = isStatic ? "(exported page: not interactive)" : "click a cell";
  const code = element("pre", "hl-code", side);
  code.hidden = true;

  const showPrediction = (
    box: ReturnType<typeof column>,
    prediction: Prediction,
    normalized?: number | null,
  ) => {
    const probs = decodeTensor(prediction.probs).values;
    const norm =
      normalized === undefined || normalized === null
        ? ""
        : ` (normalised ${formatValue(normalized)})`;
    box.value.textContent = `metric ${formatValue(prediction.metric)}${norm}`;
    box.value.dataset.value = String(prediction.metric);
    box.list.replaceChildren();
    prediction.strings.forEach((token, i) => {
      const item = element("li", "hl-topk-item", box.list);
      item.appendChild(tokenSpan(token));
      element("span", "hl-prob", item, ` ${formatValue(probs[i])}`);
    });
  };

  // -- heatmap drawing -------------------------------------------------------------------------
  // Cells sized so the whole map fits about 560 x 420 px (30 layers x 15 positions: 14 px),
  // never below 8 px (then it scrolls inside its frame, labels sticky).
  const cellPx = () => {
    if (!heatmap) return 16;
    const [rows, cols] = heatmap.values.shape;
    return Math.min(cellSize(cols, 560, 32, 8), cellSize(rows, 420, 32, 8));
  };

  /** Selection: solid accent frames; hover: a dashed frame (never alike). */
  const drawOverlay = () => {
    if (!heatmap) return;
    const [rows, cols] = heatmap.values.shape;
    const cell = cellPx();
    const theme = readTheme(el);
    const point = heatmap.point;
    const selected = selection.filter((c) => c.point === point).map((c) => [c.row, c.col] as const);
    paintMarks(overlay, cols * cell, rows * cell, cell, selected, hover, theme);
    plot.highlight(hover?.[0] ?? -1, hover?.[1] ?? -1);
    el.dataset.marks = JSON.stringify({ selected, hover });
  };

  const drawHeatmap = () => {
    if (!heatmap) return;
    const [rows, cols] = heatmap.values.shape;
    const cell = cellPx();
    const { values: shown, estimated } = shownValues(heatmap);
    const hi = rangeOf(shown, 0, rows, cols, "diverging");
    const scale = colorScale(readTheme(el), { kind: "diverging", hi });
    paintHeatmap(canvas, shown, 0, rows, cols, cell, scale);
    canvas.dataset.scale = String(hi);
    const base = model.get("direction") === "noise" ? clean : corrupted;
    const columnTexts = heatmap.columns.map((column) =>
      heatmap?.axis === "pos" ? `${column} ${visibleToken(base[column] ?? "")}` : `H${column}`,
    );
    plot.setLabels(heatmap.rowLabels, columnTexts);
    plot.setCell(cell);
    drawOverlay();
    updateLegend(legend, scale, {
      label: heatmap.normalized ? "normalised effect" : "metric after the patch",
      note:
        estimated > 0
          ? `centred on 0; ${estimated} cells are attribution-patching estimates (click one for its exact value, Run sweep for all)`
          : "centred on 0",
      missing: filledCount(shown) < rows * cols ? "not swept yet" : undefined,
    });
    const axis = heatmap.axis === "pos" ? "positions" : "heads";
    const what = heatmap.normalized
      ? "normalised effect (patched - corrupted) / (clean - corrupted)"
      : "metric after the patch";
    caption.textContent = isStatic
      ? `${heatmap.point}: layers x ${axis}, ${what}`
      : `${heatmap.point}: layers x ${axis}, ${what}. Click a cell to patch it; shift-click adds it to the patch set.`;
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.point = heatmap.point;
    el.dataset.heatmap = JSON.stringify({
      point: heatmap.point,
      rows,
      cols,
      scale: hi,
      filled: filledCount(heatmap.values.values),
      values: jsonValues(heatmap.values.values),
      estimated,
      estimate: heatmap.estimate ? jsonValues(heatmap.estimate.values) : null,
    });
  };

  // -- sweep progress ----------------------------------------------------------------------------
  const showSweep = (status: string, point: string, done: number, total: number) => {
    // "waiting": the sweep's next batch waits for another call on the model (a click, a cell).
    const running = status === "running" || status === "waiting";
    progress.max = Math.max(1, total);
    progress.value = done;
    progress.hidden = status === "idle";
    sweepText.textContent = progressText(status, point, done, total);
    runButton.disabled = running || isStatic;
    cancelButton.disabled = !running || isStatic;
    el.dataset.sweep = JSON.stringify({ point, status, done, total });
    el.dataset.sweepProgress = `${done}/${total}`;
  };

  // -- patch requests --------------------------------------------------------------------------
  const onQueue = (state: QueueState) => {
    el.dataset.queue = JSON.stringify(state);
    if (state.queued) {
      patchStatus.textContent = "click queued: it runs when the current patch returns";
    } else if (state.inFlight) {
      patchStatus.textContent = "patching...";
    }
  };

  const sendPatch = (cells: Cell[]) =>
    rpc
      .request<PatchReply>("patch", { cells })
      .then((reply) => {
        clearError(el, errorBox);
        if (reply.prediction === null) {
          patchedBox.value.textContent = "click a cell";
          delete patchedBox.value.dataset.value;
          patchedBox.list.replaceChildren();
          patchStatus.textContent = "patch set cleared";
          delete el.dataset.patchedValue;
        } else {
          showPrediction(patchedBox, reply.prediction, reply.normalized);
          patchStatus.textContent = `patched: ${reply.patches.join(", ")}`;
          // One cell: its exact value beside the estimate the map showed for it.
          const cells = model.get("selection");
          const one = cells.length === 1 && heatmap?.point === cells[0].point ? cells[0] : null;
          const guess =
            one && heatmap?.estimate
              ? heatmap.estimate.values[one.row * heatmap.values.shape[1] + one.col]
              : Number.NaN;
          if (Number.isFinite(guess)) {
            patchedBox.value.textContent += ` · estimate was ${formatValue(guess)}`;
            el.dataset.patchedEstimate = String(guess);
          } else {
            delete el.dataset.patchedEstimate;
          }
          el.dataset.patchedValue = String(reply.prediction.metric);
        }
        el.dataset.patched = JSON.stringify({
          cells: model.get("selection"),
          patches: reply.patches,
          value: reply.prediction?.metric ?? null,
          normalized: reply.normalized ?? null,
          ids: reply.prediction ? Array.from(decodeTensor(reply.prediction.ids).values) : [],
          probs: reply.prediction ? Array.from(decodeTensor(reply.prediction.probs).values) : [],
          strings: reply.prediction?.strings ?? [],
        });
      })
      .catch((error) => {
        patchStatus.textContent = "the patch failed (see the error above)";
        showError(el, errorBox, error);
      });
  const queue = new LatestQueue<Cell[]>(sendPatch, onQueue);

  const onClick = (event: MouseEvent) => {
    if (!heatmap || isStatic) return;
    const [rows, cols] = heatmap.values.shape;
    const hit = cellAt(canvas, event.clientX, event.clientY, cellPx(), rows, cols);
    if (!hit) return;
    const cell = { point: heatmap.point, row: hit[0], col: hit[1] };
    selection = nextSelection(selection, cell, event.shiftKey);
    el.dataset.lastClicked = JSON.stringify({ ...cell, shift: event.shiftKey });
    drawOverlay();
    queue.push(selection);
  };

  const onMove = (event: MouseEvent) => {
    if (!heatmap) return;
    const [rows, cols] = heatmap.values.shape;
    hover = cellAt(canvas, event.clientX, event.clientY, cellPx(), rows, cols);
    drawOverlay();
    if (!hover) tooltip.hide();
    for (const spans of promptSpans) for (const s of spans) s.classList.remove("hl-focus");
    if (!hover) return;
    const [r, c] = hover;
    if (heatmap.axis === "pos")
      for (const spans of promptSpans) spans[c]?.classList.add("hl-focus");
    const value = heatmap.values.values[r * cols + c];
    const guess = heatmap.estimate?.values[r * cols + c] ?? Number.NaN;
    const text = Number.isFinite(value)
      ? formatValue(value)
      : Number.isFinite(guess)
        ? `estimate ${formatValue(guess)} (attribution patching; click for the exact value)`
        : "not swept yet";
    readout.textContent = `${heatmap.rowLabels[r]} · ${heatmap.columnLabels[c]}: ${text}`;
    tooltip.show(event.clientX, event.clientY, [
      `${heatmap.rowLabels[r]} · ${heatmap.columnLabels[c]}`,
      text,
    ]);
    el.dataset.hover = JSON.stringify({
      row: r,
      col: c,
      value: Number.isFinite(value) ? value : null,
    });
  };
  const onLeave = () => {
    hover = null;
    tooltip.hide();
    readout.textContent = "";
    for (const spans of promptSpans) for (const s of spans) s.classList.remove("hl-focus");
    drawOverlay();
  };
  overlay.addEventListener("click", onClick);
  overlay.addEventListener("mousemove", onMove);
  overlay.addEventListener("mouseleave", onLeave);

  const loadHeatmap = (point: string) => {
    select.value = point;
    rpc
      .request<HeatmapReply>("heatmap", { point })
      .then((reply) => {
        if (reply.point !== model.get("point")) return; // the user picked another point meanwhile
        heatmap = {
          point: reply.point,
          axis: reply.axis,
          rowLabels: reply.row_labels,
          columnLabels: reply.column_labels,
          columns: reply.columns,
          values: decodeTensor(reply.values),
          estimate: reply.estimate ? decodeTensor(reply.estimate) : null,
          normalized: reply.normalized,
        };
        if (reply.estimate_error) el.dataset.estimateError = reply.estimate_error;
        drawHeatmap();
        // An exported page has no sweep running: its status is the shown heatmap's own.
        if (isStatic) {
          const [rows, cols] = heatmap.values.shape;
          const filled = filledCount(heatmap.values.values);
          showSweep(reply.status, reply.point, filled, rows * cols);
        }
      })
      .catch((error) => showError(el, errorBox, error));
  };

  const onSweepMessage = (msg: any, buffers: DataView[]) => {
    if (msg === null || typeof msg !== "object" || msg.kind !== WIRE.sweep) return;
    const sweep = unpackBuffers(msg, buffers ?? []) as SweepMessage;
    if (sweep.values && heatmap && heatmap.point === sweep.point) {
      heatmap.values = decodeTensor(sweep.values);
      drawHeatmap();
    }
    showSweep(sweep.status, sweep.point, sweep.done, sweep.total);
    if (sweep.status === "error") showError(el, errorBox, new Error(sweep.error));
  };
  model.on("msg:custom", onSweepMessage);

  const onRun = () => {
    const point = model.get("point");
    runButton.disabled = true;
    rpc
      .request<{ point: string; total: number }>("sweep_start", { point })
      .then((reply) => {
        clearError(el, errorBox);
        showSweep("running", reply.point, 0, reply.total);
      })
      .catch((error) => {
        runButton.disabled = false;
        showError(el, errorBox, error);
      });
  };
  const onCancel = () => {
    cancelButton.disabled = true;
    sweepText.textContent = "cancelling...";
    rpc.request("sweep_cancel").catch((error) => showError(el, errorBox, error));
  };
  runButton.addEventListener("click", onRun);
  cancelButton.addEventListener("click", onCancel);

  const onSelect = () => {
    model.set("point", select.value);
    model.save_changes();
  };
  select.addEventListener("change", onSelect);
  const onPoint = () => loadHeatmap(model.get("point"));
  model.on("change:point", onPoint);

  // Another view of this widget applied a patch set: follow it (unless clicks of ours wait).
  const onSelection = () => {
    const state = queue.state;
    const theirs = model.get("selection") ?? [];
    if (state.inFlight || state.queued || selectionKey(theirs) === selectionKey(selection)) return;
    selection = theirs;
    drawOverlay();
    queue.push(selection);
  };
  model.on("change:selection", onSelection);

  // The code of the applied patch set: a trait, so every rendered view shows the same.
  const showCode = () => {
    const text = model.get("code");
    code.textContent = text;
    code.hidden = text === "";
    el.dataset.code = text;
  };
  model.on("change:code", showCode);

  const onSweepTrait = () =>
    showSweep(
      model.get("sweep_status"),
      model.get("sweep_point"),
      model.get("sweep_done"),
      model.get("sweep_total"),
    );
  model.on("change:sweep_status", onSweepTrait);
  const unwatch = watchTheme(el, drawHeatmap);

  // -- first render ------------------------------------------------------------------------------
  showCode();
  if (!isStatic) onSweepTrait();
  onQueue(queue.state);
  loadHeatmap(model.get("point"));
  rpc
    .request<PredictionsReply>("predictions")
    .then((reply) => {
      showPrediction(cleanBox, reply.clean);
      showPrediction(corruptedBox, reply.corrupted);
      el.dataset.predictions = JSON.stringify({
        clean: reply.clean.metric,
        corrupted: reply.corrupted.metric,
      });
    })
    .catch((error) => showError(el, errorBox, error));
  if (!isStatic && selection.length > 0) queue.push(selection);

  return () => {
    overlay.removeEventListener("click", onClick);
    overlay.removeEventListener("mousemove", onMove);
    overlay.removeEventListener("mouseleave", onLeave);
    runButton.removeEventListener("click", onRun);
    cancelButton.removeEventListener("click", onCancel);
    select.removeEventListener("change", onSelect);
    model.off("msg:custom", onSweepMessage);
    model.off("change:point", onPoint);
    model.off("change:selection", onSelection);
    model.off("change:code", showCode);
    model.off("change:sweep_status", onSweepTrait);
    unwatch();
    rpc.dispose();
  };
}
