/**
 * Attention view: layer picker, a thumbnail canvas per head, the selected head enlarged, hover
 * for exact values, a token strip tinted by where the hovered token attends.
 *
 * Patterns are fetched one layer at a time with the `attention` request (rpc.ts) and kept in a
 * small LRU; synced traits carry only what is selected.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor, type Tensor } from "../codec";
import { cellAt, cellSize, paintCrosshair, paintHeatmap } from "../heatmap";
import { RpcClient } from "../rpc";
import { readTheme, tint } from "../theme";
import { tokenSpan, visibleToken } from "../tokens";
import type { AttentionRequest, AttentionTraits } from "../traits.gen";
import { clearError, element, formatValue, LruCache, showError } from "./common";

/** Reply of the `attention` request. */
export interface AttentionReply {
  layer: number;
  pattern: EncodedTensor; // (n_heads, q, k) float16
}

const THUMBNAIL_PX = 72;
const ENLARGED_PX = 480;

export function renderAttention(model: AnyModel<AttentionTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<AttentionRequest>(model);
  const layers = new LruCache<number, Tensor>(4);
  const n = model.get("tokens").length;
  const cell = cellSize(n, ENLARGED_PX);
  let renders = 0;
  let requests = 0;
  let hover: [number, number] | null = null;
  let stripAs: "query" | "key" = "query";
  let lastStrip = "";
  let focusedSpan: HTMLElement | undefined;
  el.dataset.view = "attention";

  const root = element("div", `hl-attention hl-mode-${model.get("mode")}`, el);
  const header = element("div", "hl-header", root);
  if (model.get("title")) element("span", "hl-title", header, model.get("title"));
  const layerLabel = element("label", "hl-layer-picker", header, "layer ");
  const picker = element("select", "hl-layer-select", layerLabel);
  for (let l = 0; l < model.get("n_layers"); l++) {
    const option = element("option", "", picker, String(l));
    option.value = String(l);
  }
  layerLabel.hidden = model.get("n_layers") <= 1;
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
    element("figcaption", "", figure, model.get("head_names")[h] ?? `H${h}`);
    figure.addEventListener("click", () => {
      model.set("head", h);
      model.save_changes();
    });
    thumbs.push(canvas);
  }

  const main = element("div", "hl-main", root);
  const caption = element("div", "hl-caption", main);
  const stack = element("div", "hl-heatmap-stack", main);
  const heat = element("canvas", "hl-heatmap", stack);
  const overlay = element("canvas", "hl-overlay", stack);
  heat.dataset.cell = String(cell);
  const readout = element("div", "hl-readout", main, "hover the heatmap or a token");

  const stripBar = element("div", "hl-strip-bar", root);
  const stripSelect = element("select", "hl-strip-as", stripBar);
  for (const as of ["query", "key"]) {
    const option = element("option", "", stripSelect, `hovered token is the ${as}`);
    option.value = as;
  }
  const strip = element("div", "hl-token-strip", root);
  const spans = model.get("tokens").map((token, i) => {
    const span = tokenSpan(token);
    span.dataset.index = String(i);
    strip.appendChild(span);
    return span;
  });
  if (model.get("mode") === "patterns") root.insertBefore(strip, grid);
  if (model.get("mode") === "patterns") root.insertBefore(stripBar, strip);

  const current = (): Tensor | undefined => layers.get(model.get("layer"));
  const valueAt = (t: Tensor, h: number, q: number, k: number) => t.values[(h * n + q) * n + k];

  /** The pinned cell, or the hovered one. */
  const focus = (): [number, number] => hover ?? [model.get("query"), model.get("key")];

  const drawFocus = () => {
    const t = current();
    const [q, k] = focus();
    const theme = readTheme(el);
    paintCrosshair(overlay, n * cell, n * cell, cell, q, k, theme.foreground);
    const h = model.get("head");
    if (!t) return;
    // Tint the strip by the focused query's row (or key's column); moving along that row or
    // column leaves the strip as it is.
    const focused = stripAs === "query" ? q : k;
    const stripKey = `${model.get("layer")}/${h}/${stripAs}/${focused}/${model.get("max_value")}`;
    if (stripKey !== lastStrip) {
      lastStrip = stripKey;
      const scale = model.get("max_value") || 1;
      for (let i = 0; i < n; i++) {
        let v = 0;
        if (focused >= 0) v = stripAs === "query" ? valueAt(t, h, q, i) : valueAt(t, h, i, k);
        const span = spans[i];
        span.style.background = tint(theme, v / scale);
        // The exact value on the token itself (its tooltip is built on hover).
        span.dataset.value = String(v);
      }
      focusedSpan?.classList.remove("hl-focus");
      focusedSpan = focused >= 0 ? spans[focused] : undefined;
      focusedSpan?.classList.add("hl-focus");
    }
    if (q >= 0 && k >= 0) {
      const tokens = model.get("tokens");
      const value = valueAt(t, h, q, k);
      readout.textContent =
        `L${model.get("layer")} ${model.get("head_names")[h] ?? `H${h}`}: query ${q} ` +
        `${visibleToken(tokens[q])} → key ${k} ${visibleToken(tokens[k])} = ${formatValue(value)}`;
      el.dataset.hover = JSON.stringify({ layer: model.get("layer"), head: h, q, k, value });
    } else if (q >= 0 || k >= 0) {
      const tokens = model.get("tokens");
      const i = q >= 0 ? q : k;
      readout.textContent = `${q >= 0 ? "query" : "key"} ${i} ${visibleToken(tokens[i])}`;
    }
  };

  const drawHead = () => {
    const t = current();
    const layer = model.get("layer");
    const h = model.get("head");
    caption.textContent = `layer ${layer}, ${model.get("head_names")[h] ?? `head ${h}`}`;
    thumbs.forEach((c, i) => {
      c.parentElement?.classList.toggle("hl-selected", i === h);
    });
    if (!t) return;
    const colors = readTheme(el);
    const scale = model.get("max_value") || 1;
    paintHeatmap(heat, t.values, h * n * n, n, n, cell, scale, colors);
    drawFocus();
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({ layer, head: h, cell, n, scale });
  };

  const drawLayer = () => {
    const t = current();
    if (!t) return;
    const colors = readTheme(el);
    const scale = model.get("max_value") || 1;
    thumbs.forEach((canvas, h) => {
      paintHeatmap(canvas, t.values, h * n * n, n, n, 1, scale, colors);
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

  const onMove = (event: MouseEvent) => {
    const hit = cellAt(heat, event.clientX, event.clientY, cell, n, n);
    if (hit?.[0] === hover?.[0] && hit?.[1] === hover?.[1]) return;
    hover = hit;
    drawFocus();
  };
  const onLeave = () => {
    hover = null;
    drawFocus();
  };
  const onClick = (event: MouseEvent) => {
    const hit = cellAt(heat, event.clientX, event.clientY, cell, n, n);
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
    const value = Number(target.dataset.value ?? 0);
    target.title = `${JSON.stringify(model.get("tokens")[i])}: ${formatValue(value)}`;
  };
  overlay.addEventListener("mousemove", onMove);
  overlay.addEventListener("mouseleave", onLeave);
  overlay.addEventListener("click", onClick);
  strip.addEventListener("mouseover", onStripOver);
  strip.addEventListener("mouseleave", onLeave);
  stripSelect.addEventListener("change", () => {
    stripAs = stripSelect.value === "key" ? "key" : "query";
    drawFocus();
  });
  picker.addEventListener("change", () => {
    model.set("layer", Number(picker.value));
    model.save_changes();
  });

  model.on("change:layer", loadLayer);
  model.on("change:head", drawHead);
  model.on("change:query", drawFocus);
  model.on("change:key", drawFocus);
  model.on("change:max_value", drawLayer);
  loadLayer();

  return () => {
    model.off("change:layer", loadLayer);
    model.off("change:head", drawHead);
    model.off("change:query", drawFocus);
    model.off("change:key", drawFocus);
    model.off("change:max_value", drawLayer);
    rpc.dispose();
  };
}
