/**
 * Residual-stream view: a rows x positions grid of the logit lens (top token, tinted by its
 * probability), canvas heatmaps of the residual norm and of each layer's contribution, and the
 * top-k tokens of a clicked cell. Data comes from the `grid` and `topk` requests.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan, visibleToken } from "../tokens";
import type { ResidualRequest, ResidualTraits } from "../traits.gen";
import { rangeOf } from "../ui/colormap";
import { cellAt, cellSize, paintCrosshair, paintHeatmap } from "../ui/heatmap";
import { colorScale, readTheme, tint } from "../ui/theme";
import { clearError, element, formatValue, showError } from "./common";

/** Reply of `grid`: shapes (rows, pos) except `contrib` (components, pos). */
export interface GridReply {
  strings: string[];
  top_index: EncodedTensor;
  top_prob: EncodedTensor;
  norms: EncodedTensor;
  contrib: EncodedTensor;
}

/** Reply of `topk`: `ids`/`probs` of shape (k,). */
export interface TopkReply {
  row: number;
  position: number;
  ids: EncodedTensor;
  probs: EncodedTensor;
  strings: string[];
}

interface Grid {
  strings: string[];
  topIndex: Tensor;
  topProb: Tensor;
  norms: Tensor;
  contrib: Tensor;
}

export function renderResidual(model: AnyModel<ResidualTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<ResidualRequest>(model);
  const tokens = model.get("tokens");
  const rowLabels = model.get("row_labels");
  const contribLabels = model.get("contrib_labels");
  const nPos = tokens.length;
  const cell = cellSize(nPos, 640, 24);
  let grid: Grid | undefined;
  let renders = 0;
  el.dataset.view = "residual";

  const root = element("div", "hl-residual", el);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  element("div", "hl-caption", root, "logit lens: top token and its probability");
  const scroller = element("div", "hl-lens-scroll", root);
  const table = element("table", "hl-lens", scroller);
  const readout = element("div", "hl-readout", root, "click a cell for its top tokens");
  const topk = element("ol", "hl-topk", root);

  const heatmaps: Array<{
    caption: string;
    canvas: HTMLCanvasElement;
    overlay: HTMLCanvasElement;
    labels: string[];
    tensor: () => Tensor | undefined;
  }> = [];
  const addHeatmap = (caption: string, labels: string[], tensor: () => Tensor | undefined) => {
    element("div", "hl-caption", root, caption);
    const stack = element("div", "hl-heatmap-stack", root);
    const canvas = element("canvas", "hl-heatmap", stack);
    const overlay = element("canvas", "hl-overlay", stack);
    canvas.dataset.cell = String(cell);
    heatmaps.push({ caption, canvas, overlay, labels, tensor });
  };
  addHeatmap("residual norm (rows x positions)", rowLabels, () => grid?.norms);
  addHeatmap(
    "contribution of each component, projected on the final residual (components x positions)",
    contribLabels,
    () => grid?.contrib,
  );
  heatmaps[0].canvas.classList.add("hl-norms");
  heatmaps[1].canvas.classList.add("hl-contrib");

  const buildTable = (g: Grid) => {
    const theme = readTheme(el);
    table.replaceChildren();
    const head = element("tr", "", element("thead", "", table));
    element("th", "", head);
    for (const token of tokens) element("th", "", head).appendChild(tokenSpan(token));
    const body = element("tbody", "", table);
    rowLabels.forEach((label, r) => {
      const tr = element("tr", "", body);
      element("th", "hl-row-label", tr, label);
      for (let p = 0; p < nPos; p++) {
        const td = element("td", "hl-cell", tr);
        const prob = g.topProb.values[r * nPos + p];
        const top = g.strings[g.topIndex.values[r * nPos + p]] ?? "?";
        td.textContent = visibleToken(top);
        td.style.background = tint(theme, prob);
        td.dataset.row = String(r);
        td.dataset.position = String(p);
        td.dataset.prob = String(prob);
        td.title = `${label}, position ${p}: ${JSON.stringify(top)} p=${formatValue(prob)}`;
      }
    });
  };

  const drawHeatmaps = () => {
    const colors = readTheme(el);
    for (const map of heatmaps) {
      const t = map.tensor();
      if (!t) continue;
      const [rows, cols] = t.shape;
      const kind = map.canvas.classList.contains("hl-norms") ? "sequential" : "diverging";
      const hi = rangeOf(t.values, 0, rows, cols, kind, { skipFirstColumn: true });
      paintHeatmap(map.canvas, t.values, 0, rows, cols, cell, colorScale(colors, { kind, hi }));
      map.canvas.dataset.scale = String(hi);
      paintCrosshair(map.overlay, cols * cell, rows * cell, cell, -1, -1, colors.foreground);
    }
  };

  const drawSelection = () => {
    const r = model.get("row");
    const p = model.get("position");
    for (const td of table.querySelectorAll<HTMLElement>("td.hl-selected")) {
      td.classList.remove("hl-selected");
    }
    if (r < 0 || p < 0) return;
    table.querySelector(`td[data-row="${r}"][data-position="${p}"]`)?.classList.add("hl-selected");
    rpc
      .request<TopkReply>("topk", { row: r, position: p })
      .then((reply) => {
        const probs = decodeTensor(reply.probs).values;
        const ids = decodeTensor(reply.ids).values;
        topk.replaceChildren();
        readout.textContent = `${rowLabels[reply.row]}, position ${reply.position} (${visibleToken(
          tokens[reply.position],
        )}): top ${reply.strings.length}`;
        reply.strings.forEach((s, i) => {
          const li = element("li", "hl-topk-item", topk);
          li.appendChild(tokenSpan(s));
          element("span", "hl-prob", li, ` ${formatValue(probs[i])}`);
        });
        el.dataset.topk = JSON.stringify({
          row: reply.row,
          position: reply.position,
          ids: Array.from(ids),
          probs: Array.from(probs),
          strings: reply.strings,
        });
        el.dataset.lastReply = JSON.stringify({ method: "topk", row: reply.row, position: p });
      })
      .catch((error) => showError(el, errorBox, error));
  };

  const onTableClick = (event: MouseEvent) => {
    const td = (event.target as HTMLElement).closest<HTMLElement>("td.hl-cell");
    if (!td) return;
    model.set("row", Number(td.dataset.row));
    model.set("position", Number(td.dataset.position));
    model.save_changes();
  };
  table.addEventListener("click", onTableClick);

  for (const map of heatmaps) {
    map.overlay.addEventListener("mousemove", (event) => {
      const t = map.tensor();
      if (!t) return;
      const [rows, cols] = t.shape;
      const hit = cellAt(map.canvas, event.clientX, event.clientY, cell, rows, cols);
      const color = readTheme(el).foreground;
      paintCrosshair(map.overlay, cols * cell, rows * cell, cell, hit?.[0] ?? -1, -1, color);
      if (!hit) return;
      const value = t.values[hit[0] * cols + hit[1]];
      readout.textContent = `${map.labels[hit[0]]}, position ${hit[1]} (${visibleToken(
        tokens[hit[1]],
      )}): ${formatValue(value)}`;
      el.dataset.hover = JSON.stringify({
        map: map.canvas.className,
        row: hit[0],
        col: hit[1],
        value,
      });
    });
  }

  rpc
    .request<GridReply>("grid")
    .then((reply) => {
      grid = {
        strings: reply.strings,
        topIndex: decodeTensor(reply.top_index),
        topProb: decodeTensor(reply.top_prob),
        norms: decodeTensor(reply.norms),
        contrib: decodeTensor(reply.contrib),
      };
      clearError(el, errorBox);
      buildTable(grid);
      drawHeatmaps();
      renders += 1;
      el.dataset.renders = String(renders);
      el.dataset.lastReply = JSON.stringify({ method: "grid", rows: rowLabels.length, nPos });
      drawSelection();
    })
    .catch((error) => showError(el, errorBox, error));

  const onSelect = () => {
    if (grid) drawSelection();
  };
  model.on("change:row", onSelect);
  model.on("change:position", onSelect);
  return () => {
    model.off("change:row", onSelect);
    model.off("change:position", onSelect);
    table.removeEventListener("click", onTableClick);
    rpc.dispose();
  };
}
