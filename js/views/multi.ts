/**
 * CircuitsVis' `colored_tokens_multi` (and `visualize_model_performance`): a button per value
 * type; the selected one tints the tokens on the signed scale from that type's min to its max;
 * hovering a token lists all its values.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor } from "../codec";
import { tokenSpan } from "../tokens";
import type { ColoredTokensMultiTraits } from "../traits.gen";
import { element, formatValue } from "./common";
import { paintValue, signedScale } from "./cv_color";

export function renderColoredTokensMulti(
  model: AnyModel<ColoredTokensMultiTraits>,
  el: HTMLElement,
): () => void {
  const tensor = decodeTensor(model.get("values"));
  const [s, k] = tensor.shape;
  const at = (i: number, j: number) => tensor.values[i * k + j];
  const labels = model.get("labels");
  let renders = 0;
  el.dataset.view = "colored_tokens_multi";
  const root = element("div", "hl-colored-tokens-multi", el);
  const bar = element("div", "hl-header", root);
  const buttons = labels.map((label, j) => {
    const button = element("button", "hl-value-button", bar, label);
    button.dataset.index = String(j);
    const pick = () => {
      model.set("selected", j);
      model.save_changes();
    };
    button.addEventListener("click", pick);
    button.addEventListener("mouseenter", pick);
    return button;
  });
  const strip = element("div", "hl-colored-tokens", root);
  const spans = model.get("tokens").map((token, i) => {
    const span = tokenSpan(token);
    span.dataset.index = String(i);
    strip.appendChild(span);
    return span;
  });
  const readout = element("table", "hl-multi-readout", root);

  const draw = () => {
    const j = model.get("selected");
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < s; i++) {
      min = Math.min(min, at(i, j));
      max = Math.max(max, at(i, j));
    }
    buttons.forEach((b, i) => {
      b.classList.toggle("hl-selected", i === j);
    });
    const scale = signedScale(el, min, max);
    spans.forEach((span, i) => {
      paintValue(span, scale, at(i, j));
    });
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({ selected: j, min, max });
  };
  strip.addEventListener("mouseover", (event) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.index) return;
    const i = Number(target.dataset.index);
    readout.replaceChildren();
    labels.forEach((label, j) => {
      const row = element("tr", "", readout);
      element("td", "hl-row-label", row, label);
      element("td", "", row, formatValue(at(i, j)));
    });
    el.dataset.hover = JSON.stringify({ index: i, values: labels.map((_, j) => at(i, j)) });
  });
  draw();
  model.on("change:selected", draw);
  return () => model.off("change:selected", draw);
}
