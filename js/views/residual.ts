/**
 * Residual-stream view: one table whose columns are the prompt's positions. Its rows are the
 * logit lens (top token, tinted by its probability), then canvas strips of the residual norm
 * and of each component's contribution (embed, L0 attn, L0 mlp, ...) drawn with the table's
 * column width, so every heatmap column sits under its token. Header and row labels are sticky;
 * `final_post` (the prediction) is scrolled into view on load. A chosen token can be tracked:
 * its probability and rank at every row. Data comes from `grid`, `topk` and `track`.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan, visibleToken } from "../tokens";
import type { ResidualRequest, ResidualTraits } from "../traits.gen";
import { rangeOf } from "../ui/colormap";
import { cellAt, paintCrosshair, paintHeatmap } from "../ui/heatmap";
import { createLegend, updateLegend } from "../ui/legend";
import { colorScale, readTheme, tint, watchTheme } from "../ui/theme";
import { Tooltip } from "../ui/tooltip";
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

/** Reply of `track`: `probs` float32 and `ranks` int32, both (rows, pos). */
export interface TrackReply {
  token: number;
  string: string;
  probs: EncodedTensor;
  ranks: EncodedTensor;
}

interface Grid {
  strings: string[];
  topIndex: Tensor;
  topProb: Tensor;
  norms: Tensor;
  contrib: Tensor;
}

/** Column width (px) shared by the table and the heatmap strips below it. */
const COLUMN_PX = 56;
/** Height (px) of a heatmap strip's row. */
const STRIP_ROW_PX = 12;

/** `0_pre` -> `L0 pre`; `3_attn_out` -> `L3 attn`; `embed`, `final_post` unchanged. */
export function rowName(label: string): string {
  const m = /^(\d+)_(.+)$/.exec(label);
  if (!m) return label;
  const what = m[2].replace(/_out$/, "");
  return `L${m[1]} ${what}`;
}

export function renderResidual(model: AnyModel<ResidualTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<ResidualRequest>(model);
  const tokens = model.get("tokens");
  const rowLabels = model.get("row_labels").map(rowName);
  const contribLabels = model.get("contrib_labels").map(rowName);
  const nPos = tokens.length;
  let grid: Grid | undefined;
  let tracked: { token: number; string: string; probs: Tensor; ranks: Tensor } | undefined;
  let renders = 0;
  el.dataset.view = "residual";

  const root = element("div", "hl-residual", el);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const header = element("div", "hl-header", root);
  element(
    "span",
    "hl-title",
    header,
    "logit lens: top token at each layer, tinted by its probability",
  );
  const trackLabel = element("label", "hl-track", header, "track token ");
  const trackInput = element("input", "hl-track-input", trackLabel);
  trackInput.placeholder = "text or id";
  trackInput.size = 10;
  const trackButton = element("button", "hl-track-button", trackLabel, "track");
  const trackStatus = element("span", "hl-status", header);
  const legend = createLegend(root);
  const scroller = element("div", "hl-lens-scroll", root);
  const table = element("table", "hl-lens", scroller);
  const readout = element("div", "hl-readout", root, "click a cell for its top tokens");
  const topk = element("ol", "hl-topk", root);
  const tooltip = new Tooltip(el);

  // -- the table's frame: fixed column widths, sticky header and row labels -------------------
  const colgroup = element("colgroup", "", table);
  element("col", "hl-col-label", colgroup);
  for (let p = 0; p < nPos; p++) element("col", "", colgroup).style.width = `${COLUMN_PX}px`;
  table.style.width = `calc(11em + ${nPos * COLUMN_PX}px)`;
  const headRow = element("tr", "", element("thead", "", table));
  element("th", "hl-corner", headRow, "position →");
  tokens.forEach((token, p) => {
    const th = element("th", "hl-pos", headRow, `${p} ${visibleToken(token)}`);
    th.title = `${p}: ${JSON.stringify(token)}`;
  });
  const lensBody = element("tbody", "hl-lens-rows", table);
  const trackBody = element("tbody", "hl-track-rows", table);
  const stripBody = element("tbody", "hl-strips", table);

  interface Strip {
    name: string;
    canvas: HTMLCanvasElement;
    overlay: HTMLCanvasElement;
    labels: string[];
    kind: "sequential" | "diverging";
    legend: HTMLElement;
    tensor: () => Tensor | undefined;
  }
  const strips: Strip[] = [];
  const addStrip = (
    name: string,
    caption: string,
    labels: string[],
    kind: Strip["kind"],
    tensor: () => Tensor | undefined,
  ) => {
    const captionRow = element("tr", "hl-strip-caption", stripBody);
    const captionCell = element("th", "hl-row-label hl-section", captionRow, caption);
    captionCell.colSpan = 1;
    const legendCell = element("td", "hl-section", captionRow);
    legendCell.colSpan = nPos;
    const stripLegend = createLegend(legendCell);
    const tr = element("tr", "hl-strip-row", stripBody);
    const th = element("th", "hl-row-label hl-strip-labels", tr);
    for (const label of labels) {
      const div = element("div", "", th, label);
      div.style.height = `${STRIP_ROW_PX}px`;
      div.style.lineHeight = `${STRIP_ROW_PX}px`;
    }
    const td = element("td", "hl-strip-cell", tr);
    td.colSpan = nPos;
    const stack = element("div", "hl-heatmap-stack", td);
    const canvas = element("canvas", `hl-heatmap hl-${name}`, stack);
    const overlay = element("canvas", "hl-overlay", stack);
    strips.push({ name, canvas, overlay, labels, kind, legend: stripLegend, tensor });
  };
  addStrip("norms", "residual norm", rowLabels, "sequential", () => grid?.norms);
  addStrip(
    "contrib",
    "contribution (on the final residual)",
    contribLabels,
    "diverging",
    () => grid?.contrib,
  );

  const buildLens = (g: Grid) => {
    const theme = readTheme(el);
    lensBody.replaceChildren();
    rowLabels.forEach((label, r) => {
      const tr = element("tr", "", lensBody);
      if (r === rowLabels.length - 1) tr.classList.add("hl-final");
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
      }
    });
    updateLegend(legend, colorScale(theme, { kind: "sequential", hi: 1 }), {
      label: "top-token probability",
    });
  };

  const buildTracked = () => {
    trackBody.replaceChildren();
    if (!tracked) return;
    const theme = readTheme(el);
    const caption = element("tr", "hl-strip-caption", trackBody);
    element("th", "hl-row-label hl-section", caption, "tracked");
    const what = element("td", "hl-section", caption);
    what.colSpan = nPos;
    what.textContent = `${visibleToken(tracked.string)} (id ${tracked.token}): probability, #rank`;
    rowLabels.forEach((label, r) => {
      const tr = element("tr", "", trackBody);
      element("th", "hl-row-label", tr, label);
      for (let p = 0; p < nPos; p++) {
        const prob = tracked?.probs.values[r * nPos + p] ?? 0;
        const rank = tracked?.ranks.values[r * nPos + p] ?? 0;
        const td = element("td", "hl-track-cell", tr, `#${rank + 1}`);
        td.style.background = tint(theme, prob);
        td.dataset.row = String(r);
        td.dataset.position = String(p);
        td.dataset.prob = String(prob);
        td.dataset.rank = String(rank);
      }
    });
  };

  const drawStrips = () => {
    const theme = readTheme(el);
    for (const strip of strips) {
      const t = strip.tensor();
      if (!t) continue;
      const [rows, cols] = t.shape;
      const hi = rangeOf(t.values, 0, rows, cols, strip.kind, { skipFirstColumn: true });
      const scale = colorScale(theme, { kind: strip.kind, hi });
      paintHeatmap(strip.canvas, t.values, 0, rows, cols, COLUMN_PX, scale, {
        cellHeight: STRIP_ROW_PX,
      });
      strip.canvas.dataset.scale = String(hi);
      paintCrosshair(strip.overlay, cols * COLUMN_PX, rows * STRIP_ROW_PX, 1, -1, -1, "");
      updateLegend(strip.legend, scale, {
        label: strip.kind === "diverging" ? "centred on 0" : "norm",
        note: "range leaves position 0 out (it may clip)",
      });
    }
  };

  const redraw = () => {
    if (!grid) return;
    buildLens(grid);
    buildTracked();
    drawStrips();
    drawSelection(false);
  };

  /** Put the final row (the prediction) and the last position in view. */
  const showFinal = () => {
    const final = lensBody.querySelector<HTMLElement>("tr.hl-final");
    if (!final) return;
    const bottom = final.offsetTop + final.offsetHeight;
    scroller.scrollTop = Math.max(0, bottom - scroller.clientHeight);
    scroller.scrollLeft = scroller.scrollWidth;
    const box = final.getBoundingClientRect();
    const frame = scroller.getBoundingClientRect();
    el.dataset.finalInView = String(box.top >= frame.top - 1 && box.bottom <= frame.bottom + 1);
  };

  const drawSelection = (fetch = true) => {
    const r = model.get("row");
    const p = model.get("position");
    for (const td of table.querySelectorAll<HTMLElement>("td.hl-selected")) {
      td.classList.remove("hl-selected");
    }
    if (r < 0 || p < 0) return;
    table
      .querySelector(`td.hl-cell[data-row="${r}"][data-position="${p}"]`)
      ?.classList.add("hl-selected");
    if (!fetch) return;
    rpc
      .request<TopkReply>("topk", { row: r, position: p })
      .then((reply) => {
        const probs = decodeTensor(reply.probs).values;
        const ids = decodeTensor(reply.ids).values;
        topk.replaceChildren();
        readout.textContent = `${rowLabels[reply.row]}, position ${reply.position} (${visibleToken(
          tokens[reply.position],
        )}): top ${reply.strings.length} (click one to track it)`;
        reply.strings.forEach((s, i) => {
          const li = element("li", "hl-topk-item", topk);
          li.appendChild(tokenSpan(s));
          li.dataset.token = String(ids[i]);
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

  const loadTracked = () => {
    const token = model.get("tracked");
    if (token < 0) {
      tracked = undefined;
      buildTracked();
      return;
    }
    trackStatus.textContent = "tracking…";
    rpc
      .request<TrackReply>("track", { token })
      .then((reply) => {
        tracked = {
          token: reply.token,
          string: reply.string,
          probs: decodeTensor(reply.probs),
          ranks: decodeTensor(reply.ranks),
        };
        trackStatus.textContent = `tracking ${visibleToken(reply.string)}`;
        clearError(el, errorBox);
        buildTracked();
        el.dataset.tracked = JSON.stringify({
          token: reply.token,
          probs: Array.from(tracked.probs.values),
          ranks: Array.from(tracked.ranks.values),
        });
      })
      .catch((error) => {
        trackStatus.textContent = "";
        showError(el, errorBox, error);
      });
  };

  const track = (token: number | string) => {
    if (typeof token === "number") {
      model.set("tracked", token);
      model.save_changes();
      return;
    }
    // Text: the kernel resolves it to one token id, then the trait carries the id.
    rpc
      .request<TrackReply>("track", { token })
      .then((reply) => {
        model.set("tracked", reply.token);
        model.save_changes();
      })
      .catch((error) => showError(el, errorBox, error));
  };
  trackButton.addEventListener("click", () => {
    const text = trackInput.value;
    if (text === "") return;
    track(/^\d+$/.test(text) ? Number(text) : text);
  });
  topk.addEventListener("click", (event) => {
    const li = (event.target as HTMLElement).closest<HTMLElement>("li.hl-topk-item");
    if (li?.dataset.token) track(Number(li.dataset.token));
  });

  const onTableClick = (event: MouseEvent) => {
    const td = (event.target as HTMLElement).closest<HTMLElement>("td.hl-cell");
    if (!td) return;
    model.set("row", Number(td.dataset.row));
    model.set("position", Number(td.dataset.position));
    model.save_changes();
  };
  table.addEventListener("click", onTableClick);
  const onTableHover = (event: MouseEvent) => {
    const td = (event.target as HTMLElement).closest<HTMLElement>("td.hl-cell, td.hl-track-cell");
    if (!td?.dataset.row) return;
    const r = Number(td.dataset.row);
    const p = Number(td.dataset.position);
    const lines = [`${rowLabels[r]} · ${p} ${visibleToken(tokens[p])}`];
    if (td.classList.contains("hl-cell") && grid) {
      const top = grid.strings[grid.topIndex.values[r * nPos + p]] ?? "?";
      lines.push(`top ${visibleToken(top)} p=${formatValue(Number(td.dataset.prob))}`);
    } else {
      lines.push(`p=${formatValue(Number(td.dataset.prob))} rank ${Number(td.dataset.rank) + 1}`);
    }
    tooltip.show(event.clientX, event.clientY, lines);
  };
  table.addEventListener("mousemove", onTableHover);
  table.addEventListener("mouseleave", () => tooltip.hide());

  for (const strip of strips) {
    strip.overlay.addEventListener("mousemove", (event) => {
      const t = strip.tensor();
      if (!t) return;
      const [rows, cols] = t.shape;
      const hit = cellAt(
        strip.canvas,
        event.clientX,
        event.clientY,
        COLUMN_PX,
        rows,
        cols,
        STRIP_ROW_PX,
      );
      const color = readTheme(el).foreground;
      const ctx = strip.overlay.getContext("2d");
      ctx?.clearRect(0, 0, strip.overlay.width, strip.overlay.height);
      if (!hit) {
        tooltip.hide();
        return;
      }
      if (ctx) {
        ctx.strokeStyle = color;
        ctx.strokeRect(
          hit[1] * COLUMN_PX + 0.5,
          hit[0] * STRIP_ROW_PX + 0.5,
          COLUMN_PX - 1,
          STRIP_ROW_PX - 1,
        );
      }
      const value = t.values[hit[0] * cols + hit[1]];
      const where = `${strip.labels[hit[0]]} · ${hit[1]} ${visibleToken(tokens[hit[1]])}`;
      readout.textContent = `${where}: ${formatValue(value)}`;
      tooltip.show(event.clientX, event.clientY, [where, formatValue(value)]);
      el.dataset.hover = JSON.stringify({ map: strip.name, row: hit[0], col: hit[1], value });
    });
    strip.overlay.addEventListener("mouseleave", () => tooltip.hide());
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
      redraw();
      renders += 1;
      el.dataset.renders = String(renders);
      el.dataset.lastReply = JSON.stringify({ method: "grid", rows: rowLabels.length, nPos });
      drawSelection();
      // After layout: the final row's position is known once the table is in the page.
      requestAnimationFrame(showFinal);
    })
    .catch((error) => showError(el, errorBox, error));

  const onSelect = () => {
    if (grid) drawSelection();
  };
  model.on("change:row", onSelect);
  model.on("change:position", onSelect);
  model.on("change:tracked", loadTracked);
  const unwatch = watchTheme(el, redraw);
  if (model.get("tracked") >= 0) loadTracked();
  return () => {
    model.off("change:row", onSelect);
    model.off("change:position", onSelect);
    model.off("change:tracked", loadTracked);
    table.removeEventListener("click", onTableClick);
    unwatch();
    rpc.dispose();
  };
}
