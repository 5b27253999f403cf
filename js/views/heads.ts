/**
 * The map of all heads (`HeadMap`) and the direct logit attribution view: layers x heads
 * coloured by the chosen score (fetched with `scores {kind}`); click a cell for that head's
 * pattern (`pattern {layer, head}`); with `show_layers`, the embeddings' and each layer's
 * attention / MLP attribution as a one-row map (`layers`).
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { RpcClient } from "../rpc";
import { visibleToken } from "../tokens";
import type { HeadsRequest, HeadsTraits } from "../traits.gen";
import { cellAt, cellSize, paintCrosshair, paintHeatmap } from "../ui/heatmap";
import { createLegend, updateLegend } from "../ui/legend";
import { createPlot } from "../ui/plot";
import { colorScale, readTheme, watchTheme } from "../ui/theme";
import { Tooltip } from "../ui/tooltip";
import { clearError, element, formatValue, LruCache, showError } from "./common";

interface ScoresReply {
  kind: string;
  label: string;
  values: EncodedTensor;
}
interface PatternReply {
  layer: number;
  head: number;
  pattern: EncodedTensor;
}
interface LayersReply {
  labels: string[];
  values: EncodedTensor;
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) m = Math.max(m, Math.abs(values[i]));
  }
  return m || 1;
}

export function renderHeads(model: AnyModel<HeadsTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<HeadsRequest>(model);
  const rows = model.get("n_layers");
  // a hybrid's rows are the layers that attend: each row's own layer number
  const rowName = (row: number) => model.get("layer_labels")?.[row] ?? `L${row}`;
  const cols = model.get("n_heads");
  const tokens = model.get("tokens");
  const n = tokens.length;
  const scores = new LruCache<string, { label: string; values: Tensor }>(8);
  const patterns = new LruCache<string, Tensor>(16);
  const tooltip = new Tooltip(el);
  let renders = 0;
  el.dataset.view = "heads";

  const root = element("div", "hl-heads", el);
  const header = element("div", "hl-header", root);
  if (model.get("answer")) {
    element(
      "span",
      "hl-title",
      header,
      `logit[${visibleToken(model.get("answer"))}] − logit[${visibleToken(model.get("wrong"))}]`,
    );
  }
  const pickLabel = element("label", "hl-picker", header, "score ");
  const pick = element("select", "hl-pick-score", pickLabel);
  for (const kind of model.get("score_kinds")) element("option", "", pick, kind).value = kind;
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;

  const layerBox = element("div", "hl-layer-attrs", root);
  layerBox.hidden = !model.get("show_layers");
  const layerLegend = createLegend(layerBox);
  let layerPlot: ReturnType<typeof createPlot> | undefined;

  const legend = createLegend(root);
  const cell = cellSize(Math.max(rows, cols), 360, 40, 12);
  const plot = createPlot(root, {
    rowLabels: Array.from({ length: rows }, (_, l) => rowName(l)),
    columnLabels: Array.from({ length: cols }, (_, h) => `H${h}`),
    rowTitle: "layer",
    columnTitle: "head",
  });
  plot.setCell(cell);
  const caption = element("div", "hl-caption", root, "click a head for its pattern");
  const patternLegend = createLegend(root);
  const patternCell = cellSize(n, 360, 24, 4);
  const patternPlot = createPlot(root, {
    rowLabels: tokens.map((t, i) => `${i} ${visibleToken(t)}`),
    columnLabels: tokens.map((t, i) => `${i} ${visibleToken(t)}`),
    rowTitle: "query",
    columnTitle: "key",
    className: "hl-head-pattern",
  });
  patternPlot.element.hidden = true;

  const current = () => scores.get(model.get("score"));
  const scaleFor = (kind: string, values: ArrayLike<number>) =>
    colorScale(
      readTheme(el),
      kind === "dla"
        ? { kind: "diverging", hi: maxAbs(values) }
        : { kind: "sequential", lo: 0, hi: maxAbs(values) },
    );

  const drawMap = () => {
    const got = current();
    pick.value = model.get("score");
    if (!got) return;
    const scale = scaleFor(model.get("score"), got.values.values);
    paintHeatmap(plot.canvas, got.values.values, 0, rows, cols, cell, scale);
    updateLegend(legend, scale, { label: got.label, missing: "no repeated token" });
    const l = model.get("layer");
    const h = model.get("head");
    paintCrosshair(plot.overlay, cols * cell, rows * cell, cell, l, h, readTheme(el).accent);
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({ score: model.get("score"), rows, cols, cell });
  };

  const drawPattern = () => {
    const l = model.get("layer");
    const h = model.get("head");
    if (l < 0 || h < 0) return;
    const t = patterns.get(`${l}/${h}`);
    if (!t) return;
    const scale = colorScale(readTheme(el), { kind: "sequential", lo: 0, hi: 1 });
    paintHeatmap(patternPlot.canvas, t.values, 0, n, n, patternCell, scale, { mask: "upper" });
    patternPlot.setCell(patternCell);
    patternPlot.element.hidden = false;
    updateLegend(patternLegend, scale, { label: "attention", masked: "key after query" });
    const got = current();
    const value = got ? got.values.values[l * cols + h] : Number.NaN;
    caption.textContent = `${rowName(l)}H${h}: ${got?.label ?? ""} ${formatValue(value)}`;
    el.dataset.pattern = JSON.stringify({ layer: l, head: h });
  };

  const loadScores = () => {
    const kind = model.get("score");
    if (scores.get(kind)) {
      drawMap();
      return;
    }
    rpc
      .request<ScoresReply>("scores", { kind })
      .then((reply) => {
        scores.set(reply.kind, { label: reply.label, values: decodeTensor(reply.values) });
        clearError(el, errorBox);
        if (model.get("score") === reply.kind) drawMap();
      })
      .catch((error) => showError(el, errorBox, error));
  };

  const loadPattern = () => {
    drawMap();
    const l = model.get("layer");
    const h = model.get("head");
    if (l < 0 || h < 0) {
      patternPlot.element.hidden = true;
      return;
    }
    if (patterns.get(`${l}/${h}`)) {
      drawPattern();
      return;
    }
    rpc
      .request<PatternReply>("pattern", { layer: l, head: h })
      .then((reply) => {
        patterns.set(`${reply.layer}/${reply.head}`, decodeTensor(reply.pattern));
        clearError(el, errorBox);
        drawPattern();
      })
      .catch((error) => showError(el, errorBox, error));
  };

  if (model.get("show_layers")) {
    rpc
      .request<LayersReply>("layers", {})
      .then((reply) => {
        const values = decodeTensor(reply.values).values;
        layerPlot = createPlot(layerBox, {
          rowLabels: ["DLA"],
          columnLabels: reply.labels,
          columnTitle: "component",
          className: "hl-layer-plot",
        });
        const scale = colorScale(readTheme(el), { kind: "diverging", hi: maxAbs(values) });
        paintHeatmap(layerPlot.canvas, values, 0, 1, values.length, 40, scale);
        layerPlot.setCell(40);
        updateLegend(layerLegend, scale, { label: "direct logit attribution per component" });
        const cellsText = element("div", "hl-readout", layerBox);
        cellsText.textContent = reply.labels
          .map((label, i) => `${label} ${formatValue(values[i])}`)
          .join("   ");
        el.dataset.layers = JSON.stringify({ labels: reply.labels, values: [...values] });
      })
      .catch((error) => showError(el, errorBox, error));
  }

  const onMove = (event: MouseEvent) => {
    const hit = cellAt(plot.canvas, event.clientX, event.clientY, cell, rows, cols);
    const got = current();
    if (!hit || !got) {
      tooltip.hide();
      return;
    }
    const value = got.values.values[hit[0] * cols + hit[1]];
    tooltip.show(event.clientX, event.clientY, [
      `${rowName(hit[0])}H${hit[1]}`,
      formatValue(value),
    ]);
    el.dataset.hover = JSON.stringify({ layer: hit[0], head: hit[1], value });
  };
  const onClick = (event: MouseEvent) => {
    const hit = cellAt(plot.canvas, event.clientX, event.clientY, cell, rows, cols);
    if (!hit) return;
    model.set("layer", hit[0]);
    model.set("head", hit[1]);
    model.save_changes();
  };
  plot.overlay.addEventListener("mousemove", onMove);
  plot.overlay.addEventListener("mouseleave", () => tooltip.hide());
  plot.overlay.addEventListener("click", onClick);
  pick.addEventListener("change", () => {
    model.set("score", pick.value);
    model.save_changes();
  });
  model.on("change:score", loadScores);
  model.on("change:layer", loadPattern);
  model.on("change:head", loadPattern);
  const redraw = () => {
    drawMap();
    drawPattern();
  };
  const unwatch = watchTheme(el, redraw);
  loadScores();
  loadPattern();
  return () => {
    model.off("change:score", loadScores);
    model.off("change:layer", loadPattern);
    model.off("change:head", loadPattern);
    unwatch();
    rpc.dispose();
  };
}
