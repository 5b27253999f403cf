import type { AnyModel } from "@anywidget/types";
import { decodeTensor } from "../codec";
import { readTheme } from "../theme";
import { tokenSpan } from "../tokens";
import type { ColoredTokensTraits } from "../traits.gen";
import { parseColor, signedColor } from "./cv_color";

/** Tokens tinted by one value each; hovering a token shows its exact value. */
export function renderColoredTokens(
  model: AnyModel<ColoredTokensTraits>,
  el: HTMLElement,
): () => void {
  const root = document.createElement("div");
  root.className = "hl-colored-tokens";
  el.appendChild(root);
  let renders = 0;

  const draw = () => {
    const tokens = model.get("tokens");
    const values = decodeTensor(model.get("values")).values;
    // CircuitsVis' scale: the given range, or the values' own minimum and maximum.
    const min = model.get("min_value") ?? Math.min(...values);
    const max = model.get("max_value") ?? Math.max(...values);
    const theme = readTheme(el);
    const negative = parseColor(model.get("negative_color"), theme.negative);
    const positive = parseColor(model.get("positive_color"), theme.positive);
    root.replaceChildren();
    tokens.forEach((token, i) => {
      const span = tokenSpan(token);
      span.style.background = signedColor(values[i], min, max, negative, positive);
      span.dataset.value = String(values[i]);
      span.title = `${JSON.stringify(token)}: ${values[i].toPrecision(4)}`;
      root.appendChild(span);
    });
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.tokens = JSON.stringify(tokens);
  };

  draw();
  model.on("change:tokens", draw);
  model.on("change:values", draw);
  return () => {
    model.off("change:tokens", draw);
    model.off("change:values", draw);
  };
}
