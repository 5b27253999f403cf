/**
 * Entry point of the widget bundle. Every hooklens widget loads this one ESM module; the
 * `view` trait says which view to build.
 */
import type { AnyModel, Render } from "@anywidget/types";
import { ensureStyle } from "./style";
import { renderColoredTokens } from "./views/tokens";

type ViewRenderer = (model: AnyModel<any>, el: HTMLElement) => () => void;

const VIEWS: Record<string, ViewRenderer> = {
  colored_tokens: renderColoredTokens,
};

const render: Render<{ view: string }> = ({ model, el }) => {
  ensureStyle();
  el.classList.add("hooklens");
  const name = model.get("view");
  const renderer = VIEWS[name];
  if (!renderer) {
    el.textContent = `hooklens: this bundle has no view named '${name}'.`;
    return;
  }
  try {
    return renderer(model, el);
  } catch (error) {
    el.textContent = `hooklens: the '${name}' view failed: ${String(error)}`;
    el.dataset.error = String(error);
    throw error;
  }
};

export default { render };
