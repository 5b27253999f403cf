import type { AnyModel } from "@anywidget/types";
import { decodeTensor } from "../codec";
import { appendTokens, visibleToken } from "../tokens";
import type { ColoredTokensTraits } from "../traits.gen";
import { cssRgb } from "../ui/color";
import { colorOf } from "../ui/colormap";
import { createLegend, updateLegend } from "../ui/legend";
import { colorScale, readTheme, watchTheme } from "../ui/theme";
import { Tooltip } from "../ui/tooltip";
import { formatValue } from "./common";

/**
 * Tokens tinted by one value each on a diverging scale centred on 0 (± the largest |value|),
 * wrapping like text (a newline token ends its line); the value under the cursor shows at once.
 */
export function renderColoredTokens(
  model: AnyModel<ColoredTokensTraits>,
  el: HTMLElement,
): () => void {
  el.dataset.view = "colored_tokens";
  const legend = createLegend(el);
  const root = document.createElement("div");
  root.className = "hl-colored-tokens";
  el.appendChild(root);
  const tooltip = new Tooltip(el);
  let renders = 0;
  let values: Float32Array = new Float32Array(0);

  const draw = () => {
    const tokens = model.get("tokens");
    values = decodeTensor(model.get("values")).values;
    // CircuitsVis' scale: min_value / max_value, by default the values' own min and max.
    const hi = model.get("max_value") ?? Math.max(...values);
    const lo = model.get("min_value") ?? Math.min(...values);
    const scale = colorScale(readTheme(el), {
      kind: "diverging",
      lo,
      hi,
      positiveColor: model.get("positive_color"),
      negativeColor: model.get("negative_color"),
    });
    el.dataset.colormap = JSON.stringify(scale);
    root.replaceChildren();
    appendTokens(root, tokens).forEach((span, i) => {
      span.style.background = cssRgb(colorOf(scale, values[i]));
      span.dataset.value = String(values[i]);
      span.removeAttribute("title");
    });
    updateLegend(legend, scale, {
      label: "value",
      note: lo === -hi ? "centred on 0" : "",
    });
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.tokens = JSON.stringify(tokens);
  };
  const onMove = (event: MouseEvent) => {
    const span = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!span?.dataset.index) {
      tooltip.hide();
      return;
    }
    const i = Number(span.dataset.index);
    const token = model.get("tokens")[i];
    tooltip.show(event.clientX, event.clientY, [
      `${i} ${visibleToken(token)}`,
      formatValue(values[i]),
    ]);
    el.dataset.hover = JSON.stringify({ index: i, value: values[i], tooltip: tooltip.text });
  };
  const onLeave = () => tooltip.hide();
  root.addEventListener("mousemove", onMove);
  root.addEventListener("mouseleave", onLeave);

  draw();
  model.on("change:tokens", draw);
  model.on("change:values", draw);
  const unwatch = watchTheme(el, draw);
  return () => {
    model.off("change:tokens", draw);
    model.off("change:values", draw);
    root.removeEventListener("mousemove", onMove);
    root.removeEventListener("mouseleave", onLeave);
    unwatch();
  };
}
