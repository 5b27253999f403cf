import type { AnyModel } from "@anywidget/types";
import { decodeTensor } from "../codec";
import { readTheme, tint } from "../theme";
import { tokenSpan } from "../tokens";
import type { ColoredTokensTraits } from "../traits.gen";

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
    const scale = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
    const theme = readTheme(el);
    root.replaceChildren();
    tokens.forEach((token, i) => {
      const span = tokenSpan(token);
      span.style.background = tint(theme, values[i] / scale);
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
