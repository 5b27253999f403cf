/**
 * CircuitsVis' `attention_patterns`: the tokens tinted by the attention of every shown head at
 * once, a colour per head; head toggles; hover a token to focus it, click to lock it.
 * Token i shows, with no focus, the mean over keys 0..i of its row; with a focus f, the
 * attention f -> i ("dest_to_src") or i -> f ("src_to_dest"). Colours: see cv_color.ts.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type Tensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan } from "../tokens";
import type { AttentionTokensRequest, AttentionTokensTraits } from "../traits.gen";
import type { RGB } from "../ui/color";
import { readTheme } from "../ui/theme";
import type { AttentionReply } from "./attention";
import { clearError, element, formatValue, showError } from "./common";
import { blend, combine, headColor, textOn } from "./cv_color";

export function renderAttentionTokens(
  model: AnyModel<AttentionTokensTraits>,
  el: HTMLElement,
): () => void {
  const rpc = new RpcClient<AttentionTokensRequest>(model);
  const n = model.get("tokens").length;
  const nHeads = model.get("n_heads");
  const colors = Array.from({ length: nHeads }, (_, h) => headColor(h, nHeads));
  let pattern: Tensor | undefined;
  let hover = -1;
  let renders = 0;
  el.dataset.view = "attention_patterns";

  const root = element("div", "hl-attention-tokens", el);
  const header = element("div", "hl-header", root);
  if (model.get("title")) element("span", "hl-title", header, model.get("title"));
  const direction = element("select", "hl-direction", header);
  for (const [value, label] of [
    ["dest_to_src", "focused token is the destination (query)"],
    ["src_to_dest", "focused token is the source (key)"],
  ]) {
    element("option", "", direction, label).value = value;
  }
  const status = element("span", "hl-status", header);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const toggles = element("div", "hl-head-toggles", root);
  const buttons = model.get("head_names").map((name, h) => {
    const button = element("button", "hl-head-toggle", toggles, name);
    button.dataset.head = String(h);
    const [r, g, b] = colors[h];
    button.style.borderLeft = `12px solid rgb(${r}, ${g}, ${b})`;
    button.addEventListener("click", () => {
      const shown = [...model.get("heads_shown")];
      shown[h] = !shown[h];
      model.set("heads_shown", shown);
      model.save_changes();
    });
    return button;
  });
  const strip = element("div", "hl-token-strip hl-cv-tokens", root);
  const spans = model.get("tokens").map((token, i) => {
    const span = tokenSpan(token);
    span.dataset.index = String(i);
    strip.appendChild(span);
    return span;
  });
  const readout = element("div", "hl-readout", root, "hover a token; click to lock it");

  const value = (h: number, q: number, k: number) =>
    pattern ? pattern.values[(h * n + q) * n + k] : 0;

  const draw = () => {
    if (!pattern) return;
    const background = readTheme(el).backgroundRgb;
    const shown = model.get("heads_shown");
    const heads = [...Array(nHeads).keys()].filter((h) => shown[h] !== false);
    const scale = model.get("max_value") || 1;
    const locked = model.get("locked");
    const focus = locked >= 0 ? locked : hover;
    const asDest = model.get("direction") === "dest_to_src";
    direction.value = model.get("direction");
    buttons.forEach((b, h) => {
      b.classList.toggle("hl-off", shown[h] === false);
    });
    const cellColor = (q: number, k: number): RGB =>
      combine(
        background,
        heads.map((h) => blend(background, colors[h], value(h, q, k) / scale)),
      );
    const drawn: number[][] = [];
    spans.forEach((span, i) => {
      let rgb: RGB;
      if (focus >= 0) {
        rgb = asDest ? cellColor(focus, i) : cellColor(i, focus);
      } else {
        const sum: RGB = [0, 0, 0];
        for (let k = 0; k <= i; k++) {
          const c = cellColor(i, k);
          for (let ch = 0; ch < 3; ch++) sum[ch] += c[ch] / (i + 1);
        }
        rgb = sum;
      }
      const [r, g, b] = rgb.map(Math.round);
      span.style.background = `rgb(${r}, ${g}, ${b})`;
      span.style.color = textOn([r, g, b]);
      span.classList.toggle("hl-focus", i === focus);
      span.classList.toggle("hl-locked", i === locked);
      drawn.push([r, g, b]);
    });
    if (focus >= 0) {
      const tokens = model.get("tokens");
      readout.textContent = `${locked >= 0 ? "locked" : "focus"}: ${focus} ${JSON.stringify(
        tokens[focus],
      )}${heads.length === 1 && hover >= 0 ? ` → ${hover}: ${formatValue(asDest ? value(heads[0], focus, hover) : value(heads[0], hover, focus))}` : ""}`;
    }
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({
      focus,
      heads,
      direction: model.get("direction"),
      rgb: drawn,
    });
  };

  rpc
    .request<AttentionReply>("attention", { layer: model.get("layer") })
    .then((reply) => {
      pattern = decodeTensor(reply.pattern);
      status.textContent = "";
      clearError(el, errorBox);
      draw();
    })
    .catch((error) => showError(el, errorBox, error));
  status.textContent = "loading…";

  strip.addEventListener("mouseover", (event) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.index) return;
    hover = Number(target.dataset.index);
    draw();
  });
  strip.addEventListener("mouseleave", () => {
    hover = -1;
    draw();
  });
  strip.addEventListener("click", (event) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.index) return;
    const i = Number(target.dataset.index);
    model.set("locked", model.get("locked") === i ? -1 : i);
    model.save_changes();
  });
  direction.addEventListener("change", () => {
    model.set("direction", direction.value as AttentionTokensTraits["direction"]);
    model.save_changes();
  });
  const events = ["change:heads_shown", "change:locked", "change:direction", "change:max_value"];
  for (const e of events) model.on(e, draw);
  return () => {
    for (const e of events) model.off(e, draw);
    rpc.dispose();
  };
}
