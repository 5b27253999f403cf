import type { AnyModel } from "@anywidget/types";
import { element } from "./common";

/**
 * A labelled `<select>` bound to an integer trait: options `labels`, the trait the selected
 * index. Hidden when there is only one option. Returns the element.
 */
export function picker(
  model: AnyModel<any>,
  parent: HTMLElement,
  trait: string,
  name: string,
  labels: string[],
): HTMLSelectElement {
  const label = element("label", "hl-picker", parent, `${name} `);
  const select = element("select", `hl-pick-${trait}`, label);
  labels.forEach((text, i) => {
    element("option", "", select, text).value = String(i);
  });
  select.value = String(model.get(trait));
  label.hidden = labels.length <= 1;
  select.addEventListener("change", () => {
    model.set(trait, Number(select.value));
    model.save_changes();
  });
  model.on(`change:${trait}`, () => {
    select.value = String(model.get(trait));
  });
  return select;
}
