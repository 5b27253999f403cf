import type { AnyModel } from "@anywidget/types";
import type { HelloTraits } from "../traits.gen";
import { element } from "./common";

/** CircuitsVis' `examples.hello`: "Hello, {name}!" as text. */
export function renderHello(model: AnyModel<HelloTraits>, el: HTMLElement): () => void {
  const line = element("div", "hl-hello", el);
  const draw = () => {
    line.textContent = `Hello, ${model.get("name")}!`;
    el.dataset.renders = String(Number(el.dataset.renders ?? 0) + 1);
  };
  draw();
  model.on("change:name", draw);
  return () => model.off("change:name", draw);
}
