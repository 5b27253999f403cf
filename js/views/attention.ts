/**
 * Attention view: layer picker, a max-pooled thumbnail per head, the selected head enlarged with
 * the tokens on both axes (query rows, key columns, with their index), a legend of its colour
 * scale, zoom, hover values at the cursor, and a token strip tinted by where the hovered token
 * attends.
 *
 * Patterns are fetched one layer at a time with the `attention` request (rpc.ts) and kept in a
 * small LRU; synced traits carry only what is selected.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { RpcClient } from "../rpc";
import { appendTokens, visibleToken } from "../tokens";
import type { AttentionRequest, AttentionTraits } from "../traits.gen";
import type { ColorScale } from "../ui/colormap";
import { rangeOf } from "../ui/colormap";
import { cellAt, type Mask, paintHeatmap, paintThumbnail } from "../ui/heatmap";
import { createLegend, updateLegend } from "../ui/legend";
import { createPlot } from "../ui/plot";
import { StripPainter } from "../ui/strip";
import { setText } from "../ui/text";
import { colorScale, readTheme, type Theme, tint, watchTheme } from "../ui/theme";
import { Tooltip } from "../ui/tooltip";
import { Zoom } from "../ui/zoom";
import { clearError, element, formatValue, LruCache, showError } from "./common";

/** Reply of the `attention` request. */
export interface AttentionReply {
  layer: number;
  pattern: EncodedTensor; // (n_heads, q, k) float16
}

const THUMBNAIL_PX = 72;
const ENLARGED_PX = 480;
/** Smallest cell of the first screen: below it the map scrolls (zoom out is still possible). */
const MIN_CELL = 3;

const SCALE_NOTES: Record<string, string> = {
  skip_first: "0 to the largest value outside key 0; larger values clip",
  fixed: "fixed range (min_value to max_value)",
  per_row: "each query row / its largest value outside key 0",
};

/**
 * Values of one head ready to paint and the scale to paint them with: `per_row` divides each
 * query row by its largest value outside key 0.
 */
export function headScale(
  values: Float32Array,
  offset: number,
  n: number,
  mode: string,
  fixed: { min: number; max: number },
): {
  values: Float32Array;
  offset: number;
  lo: number;
  hi: number;
  kind: "sequential" | "diverging";
} {
  if (mode === "fixed") {
    return { values, offset, lo: fixed.min, hi: fixed.max, kind: "diverging" };
  }
  if (mode === "per_row") {
    const out = new Float32Array(n * n);
    for (let q = 0; q < n; q++) {
      const row = offset + q * n;
      const m = rangeOf(values, row, 1, q + 1, "sequential", { skipFirstColumn: true });
      for (let k = 0; k < n; k++) out[q * n + k] = values[row + k] / m;
    }
    return { values: out, offset: 0, lo: 0, hi: 1, kind: "sequential" };
  }
  const hi = rangeOf(values, offset, n, n, "sequential", { skipFirstColumn: true });
  return { values, offset, lo: 0, hi, kind: "sequential" };
}

/** Show a crosshair box over row (or column) `index` of `cell` px, moved by a transform; hide
 * it for -1. Its size is set once per zoom (`sizeCross`). */
function placeCross(box: HTMLElement, index: number, cell: number, axis: "row" | "col") {
  const hidden = index < 0;
  if (box.hidden !== hidden) box.hidden = hidden;
  if (hidden) return;
  const at = `${index * cell}px`;
  box.style.transform = axis === "row" ? `translateY(${at})` : `translateX(${at})`;
}

export function renderAttention(model: AnyModel<AttentionTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<AttentionRequest>(model);
  const layers = new LruCache<number, Tensor>(4);
  const tokens = model.get("tokens");
  const n = tokens.length;
  const labels = tokens.map((t, i) => `${i} ${visibleToken(t)}`);
  let renders = 0;
  let requests = 0;
  let hover: [number, number] | null = null;
  let stripAs: "query" | "key" = "query";
  let lastStrip = "";
  let scale: ColorScale | undefined;
  let theme: Theme | undefined;
  el.dataset.view = "attention";

  const layerName = (layer: number) => model.get("layer_labels")[layer] ?? "";
  const headName = (h: number) => model.get("head_names")[h] ?? `H${h}`;
  const mask = (): Mask => (model.get("mask_upper_tri") ? "upper" : "none");

  const root = element("div", `hl-attention hl-mode-${model.get("mode")}`, el);
  const header = element("div", "hl-header", root);
  if (model.get("title")) element("span", "hl-title", header, model.get("title"));
  const layerLabel = element("label", "hl-layer-picker", header, "layer ");
  const picker = element("select", "hl-layer-select", layerLabel);
  // An exported page offers only the layers it holds (`held_layers`); a live view all of them.
  const held = model.get("held_layers") ?? [];
  const offered =
    held.length > 0 ? held : Array.from({ length: model.get("n_layers") }, (_, l) => l);
  for (const l of offered) {
    const option = element("option", "", picker, layerName(l) || String(l));
    option.value = String(l);
  }
  layerLabel.hidden = offered.length <= 1;
  if (held.length > 0 && held.length < model.get("n_layers")) {
    element(
      "span",
      "hl-status hl-held",
      header,
      `exported: ${held.length} of ${model.get("n_layers")} layers`,
    );
  }
  const scaleLabel = element("label", "hl-scale-picker", header, "scale ");
  const scaleSelect = element("select", "hl-scale-select", scaleLabel);
  for (const [value, text] of [
    ["skip_first", "max outside first token"],
    ["per_row", "per query row"],
    ["fixed", "fixed (min/max_value)"],
  ]) {
    element("option", "", scaleSelect, text).value = value;
  }
  const gammaSelect = element("select", "hl-gamma-select", scaleLabel);
  for (const [value, text] of [
    ["1", "linear"],
    ["0.5", "γ 0.5"],
    ["0.25", "γ 0.25"],
  ]) {
    element("option", "", gammaSelect, text).value = value;
  }
  const zoomBox = element("span", "", header);
  const status = element("span", "hl-status", header);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;

  const grid = element("div", "hl-head-grid", root);
  const thumbs: HTMLCanvasElement[] = [];
  for (let h = 0; h < model.get("n_heads"); h++) {
    const figure = element("figure", "hl-thumb", grid);
    figure.dataset.head = String(h);
    const canvas = element("canvas", "hl-thumb-canvas", figure);
    canvas.style.width = `${THUMBNAIL_PX}px`;
    canvas.style.height = `${THUMBNAIL_PX}px`;
    element("figcaption", "", figure, headName(h));
    figure.addEventListener("click", () => {
      model.set("head", h);
      model.save_changes();
    });
    thumbs.push(canvas);
  }

  const main = element("div", "hl-main", root);
  const caption = element("div", "hl-caption hl-head-title", main);
  const legend = createLegend(main);
  const plot = createPlot(main, {
    rowLabels: labels,
    columnLabels: labels,
    rowTitle: "query",
    columnTitle: "key",
    maxHeight: 640,
  });
  const heat = plot.canvas;
  const overlay = plot.overlay;
  // The crosshair is two boxes moved by transforms, not strokes on the overlay canvas: at 1024
  // tokens that canvas has millions of pixels, and repainting it on every move costs a frame;
  // a transform is no layout and no paint, the compositor moves the box's layer.
  const crossRow = element("div", "hl-cross hl-cross-row", plot.canvas.parentElement ?? main);
  const crossCol = element("div", "hl-cross hl-cross-col", plot.canvas.parentElement ?? main);
  crossRow.hidden = true;
  crossCol.hidden = true;
  const sizeCross = (cell: number) => {
    crossRow.style.width = `${n * cell}px`;
    crossRow.style.height = `${cell}px`;
    crossCol.style.width = `${cell}px`;
    crossCol.style.height = `${n * cell}px`;
  };
  const zoom = new Zoom(zoomBox, { n, target: ENLARGED_PX, min: MIN_CELL }, () => {
    plot.setCell(zoom.cell);
    sizeCross(zoom.cell);
    drawHead();
  });
  plot.setCell(zoom.cell);
  sizeCross(zoom.cell);
  // One line of fixed height that lays out on its own: its text changes on every move.
  const readout = element(
    "div",
    "hl-readout hl-readout-line",
    main,
    "hover the heatmap or a token",
  );
  const setReadout = (text: string) => setText(readout, text);
  const tooltip = new Tooltip(el);

  const stripBar = element("div", "hl-strip-bar", root);
  const stripSelect = element("select", "hl-strip-as", stripBar);
  for (const as of ["query", "key"]) {
    const option = element("option", "", stripSelect, `hovered token is the ${as}`);
    option.value = as;
  }
  const strip = element("div", "hl-token-strip", root);
  const spans = appendTokens(strip, tokens);
  // The strip's colours are painted on a canvas behind its spans (ui/strip.ts).
  const painter = new StripPainter(strip, spans);
  const stripColours: string[] = new Array(n).fill("");
  const stripValues = new Float64Array(n).fill(Number.NaN);
  if (model.get("mode") === "patterns") root.insertBefore(strip, grid);
  if (model.get("mode") === "patterns") root.insertBefore(stripBar, strip);

  const current = (): Tensor | undefined => layers.get(model.get("layer"));
  const valueAt = (t: Tensor, h: number, q: number, k: number) => t.values[(h * n + q) * n + k];

  /** The pinned cell, or the hovered one. */
  const focus = (): [number, number] => hover ?? [model.get("query"), model.get("key")];

  const scaleFor = (t: Tensor, h: number) => {
    const theme = readTheme(el);
    const prepared = headScale(t.values, h * n * n, n, model.get("color_scale"), {
      min: model.get("min_value"),
      max: model.get("max_value"),
    });
    const s = colorScale(theme, {
      kind: prepared.kind,
      lo: prepared.lo,
      hi: prepared.hi,
      gamma: model.get("gamma"),
      positiveColor: model.get("positive_color"),
      negativeColor: model.get("negative_color"),
    });
    return { prepared, scale: s, theme };
  };

  const drawStrip = (t: Tensor, h: number, q: number, k: number) => {
    if (!scale || !theme) return;
    const focused = stripAs === "query" ? q : k;
    const stripKey = `${model.get("layer")}/${h}/${stripAs}/${focused}/${JSON.stringify(scale)}`;
    if (stripKey !== lastStrip) {
      lastStrip = stripKey;
      const hi = scale.hi || 1;
      const levels = new Map<number, string>();
      for (let i = 0; i < n; i++) {
        let v = 0;
        if (focused >= 0) v = stripAs === "query" ? valueAt(t, h, q, i) : valueAt(t, h, i, k);
        // Quantised to a colour byte: a strip repeats few colours, each computed once.
        const level = Math.round(Math.max(-1, Math.min(1, v / hi)) * 255);
        let colour = levels.get(level);
        if (colour === undefined) {
          colour = tint(theme, level / 255);
          levels.set(level, colour);
        }
        stripColours[i] = colour;
        // The exact value, for readers of the page; written only where it changed.
        if (stripValues[i] !== v) {
          stripValues[i] = v;
          spans[i].dataset.value = String(v);
        }
      }
      painter.paint(stripColours, focused, theme.accent);
      el.dataset.strip = `${stripAs}:${focused}`;
    }
  };

  const drawFocus = () => {
    const t = current();
    const [q, k] = focus();
    const cell = zoom.cell;
    if (overlay.width !== n * cell) overlay.width = n * cell;
    if (overlay.height !== n * cell) overlay.height = n * cell;
    placeCross(crossRow, q, cell, "row");
    placeCross(crossCol, k, cell, "col");
    plot.highlight(q, k);
    const h = model.get("head");
    if (!t || !scale) return;
    // Tint the strip by the focused query's row (or key's column); moving along that row or
    // column leaves the strip as it is.
    drawStrip(t, h, q, k);
    if (q >= 0 && k >= 0) {
      const value = valueAt(t, h, q, k);
      const where = [layerName(model.get("layer")), headName(h)].filter(Boolean).join(" ");
      setReadout(
        `${where}: query ${q} ${visibleToken(tokens[q])} → key ${k} ` +
          `${visibleToken(tokens[k])} = ${formatValue(value)}`,
      );
      el.dataset.hover = JSON.stringify({ layer: model.get("layer"), head: h, q, k, value });
    } else if (q >= 0 || k >= 0) {
      const i = q >= 0 ? q : k;
      setReadout(`${q >= 0 ? "query" : "key"} ${i} ${visibleToken(tokens[i])}`);
    }
  };

  const drawHead = () => {
    const t = current();
    const layer = model.get("layer");
    const h = model.get("head");
    caption.textContent = [layerName(layer), headName(h)].filter(Boolean).join(" · ");
    thumbs.forEach((c, i) => {
      c.parentElement?.classList.toggle("hl-selected", i === h);
    });
    if (!t) return;
    const { prepared, scale: s, theme: read } = scaleFor(t, h);
    scale = s;
    // Read once per draw (a theme change redraws): the strip's tints on hover reuse it.
    theme = read;
    crossRow.style.borderColor = theme.foreground;
    crossCol.style.borderColor = theme.foreground;
    const cell = zoom.cell;
    // One canvas pixel per cell, scaled up by CSS (pixelated): a canvas of n * cell pixels a
    // side is tens of megabytes at 1024 tokens, copied to the compositor on every frame where
    // canvases are not on a GPU.
    paintHeatmap(heat, prepared.values, prepared.offset, n, n, 1, s, { mask: mask() });
    heat.style.width = `${n * cell}px`;
    heat.style.height = `${n * cell}px`;
    updateLegend(legend, s, {
      label: model.get("color_scale") === "per_row" ? "attention / row max" : "attention",
      note: SCALE_NOTES[model.get("color_scale")],
      masked: mask() === "upper" ? "masked (key after query)" : undefined,
    });
    lastStrip = "";
    drawFocus();
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({ layer, head: h, cell, n, lo: s.lo, hi: s.hi });
  };

  const drawLayer = () => {
    const t = current();
    if (!t) return;
    thumbs.forEach((canvas, h) => {
      const { prepared, scale: s } = scaleFor(t, h);
      paintThumbnail(canvas, prepared.values, prepared.offset, n, n, THUMBNAIL_PX, s, mask());
    });
    el.dataset.layer = String(model.get("layer"));
    drawHead();
  };

  const loadLayer = () => {
    const layer = model.get("layer");
    picker.value = String(layer);
    if (layers.get(layer)) {
      drawLayer();
      return;
    }
    status.textContent = `loading layer ${layer}…`;
    const started = performance.now();
    requests += 1;
    el.dataset.rpcCount = String(requests);
    rpc
      .request<AttentionReply>("attention", { layer })
      .then((reply) => {
        const received = performance.now();
        const tensor = decodeTensor(reply.pattern);
        layers.set(reply.layer, tensor);
        const ms = received - started;
        el.dataset.lastReply = JSON.stringify({
          method: "attention",
          layer: reply.layer,
          shape: tensor.shape,
          dtype: reply.pattern.dtype,
          ms,
        });
        el.dataset.loadedLayers = JSON.stringify(layers.keys());
        status.textContent = "";
        clearError(el, errorBox);
        if (model.get("layer") === reply.layer) drawLayer();
        // Bytes in hand -> pixels on the canvases (decode + paint of every head of the layer).
        el.dataset.drawMs = String(performance.now() - received);
      })
      .catch((error) => {
        status.textContent = "";
        showError(el, errorBox, error);
      });
  };

  const tooltipLines = (q: number, k: number): string[] => {
    const t = current();
    if (!t) return [];
    const h = model.get("head");
    const masked = mask() === "upper" && k > q;
    return [
      `query ${q} ${visibleToken(tokens[q])}`,
      `key ${k} ${visibleToken(tokens[k])}`,
      masked ? "masked" : formatValue(valueAt(t, h, q, k)),
    ];
  };

  /**
   * Moves are handled once per frame, in the frame: the cursor's last position is kept and read
   * back in one animation-frame callback, which reads the layout (the canvas' box) before it
   * writes anything, so nothing forces a layout and moves between two frames cost nothing.
   */
  let pointer: [number, number] | null = null;
  let frameAsked = false;
  const onFrame = () => {
    frameAsked = false;
    if (!pointer) return;
    const [x, y] = pointer;
    pointer = null;
    const hit = cellAt(heat, x, y, 1, n, n);
    if (hit) tooltip.show(x, y, tooltipLines(hit[0], hit[1]));
    else tooltip.hide();
    if (hit?.[0] === hover?.[0] && hit?.[1] === hover?.[1]) return;
    hover = hit;
    drawFocus();
  };
  const onMove = (event: MouseEvent) => {
    pointer = [event.clientX, event.clientY];
    if (frameAsked) return;
    frameAsked = true;
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(onFrame);
    else setTimeout(onFrame, 0);
  };
  const onLeave = () => {
    pointer = null;
    hover = null;
    tooltip.hide();
    drawFocus();
  };
  const onClick = (event: MouseEvent) => {
    const hit = cellAt(heat, event.clientX, event.clientY, 1, n, n);
    if (!hit) return;
    const pinned = model.get("query") === hit[0] && model.get("key") === hit[1];
    model.set("query", pinned ? -1 : hit[0]);
    model.set("key", pinned ? -1 : hit[1]);
    model.save_changes();
  };
  const onStripOver = (event: MouseEvent) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.index) return;
    const i = Number(target.dataset.index);
    hover = stripAs === "query" ? [i, -1] : [-1, i];
    drawFocus();
    // The hovered token is now the focus: its own value is the diagonal (it attending to itself).
    const t = current();
    const value = t ? valueAt(t, model.get("head"), i, i) : 0;
    tooltip.show(event.clientX, event.clientY, [
      `${i} ${visibleToken(tokens[i])}`,
      formatValue(value),
    ]);
  };
  const onStripMove = (event: MouseEvent) => {
    if (!tooltip.element.hidden) tooltip.move(event.clientX, event.clientY);
  };
  overlay.addEventListener("mousemove", onMove);
  overlay.addEventListener("mouseleave", onLeave);
  overlay.addEventListener("click", onClick);
  strip.addEventListener("mouseover", onStripOver);
  strip.addEventListener("mousemove", onStripMove);
  strip.addEventListener("mouseleave", onLeave);
  stripSelect.addEventListener("change", () => {
    stripAs = stripSelect.value === "key" ? "key" : "query";
    drawFocus();
  });
  picker.addEventListener("change", () => {
    model.set("layer", Number(picker.value));
    model.save_changes();
  });
  scaleSelect.value = model.get("color_scale");
  gammaSelect.value = String(model.get("gamma"));
  scaleSelect.addEventListener("change", () => {
    model.set("color_scale", scaleSelect.value as AttentionTraits["color_scale"]);
    model.save_changes();
  });
  gammaSelect.addEventListener("change", () => {
    model.set("gamma", Number(gammaSelect.value));
    model.save_changes();
  });
  const onScale = () => {
    scaleSelect.value = model.get("color_scale");
    gammaSelect.value = String(model.get("gamma"));
    drawLayer();
  };

  const scaleTraits = [
    "max_value",
    "min_value",
    "color_scale",
    "gamma",
    "positive_color",
    "negative_color",
    "mask_upper_tri",
  ] as const;
  model.on("change:layer", loadLayer);
  model.on("change:head", drawHead);
  model.on("change:query", drawFocus);
  model.on("change:key", drawFocus);
  for (const name of scaleTraits) model.on(`change:${name}`, onScale);
  const unwatch = watchTheme(el, drawLayer);
  loadLayer();

  return () => {
    model.off("change:layer", loadLayer);
    model.off("change:head", drawHead);
    model.off("change:query", drawFocus);
    model.off("change:key", drawFocus);
    for (const name of scaleTraits) model.off(`change:${name}`, onScale);
    unwatch();
    painter.dispose();
    rpc.dispose();
  };
}
