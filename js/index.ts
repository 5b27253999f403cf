/**
 * Entry point of the widget bundle. Every hooklens widget loads this one ESM module; the
 * `view` trait says which view to build. A standalone page (hooklens/vis/export.py) inlines the
 * same module next to its data, and the module renders it on load (see `renderStandalonePages`).
 */
import type { AnyModel, Render } from "@anywidget/types";
import { createStaticModel, type StandalonePayload, withEmbeddedReplies } from "./standalone";
import { ensureStyle } from "./ui/style";
import { renderAttention } from "./views/attention";
import { renderAttentionTokens } from "./views/attention_tokens";
import { renderHeads } from "./views/heads";
import { renderHello } from "./views/hello";
import { renderTokenLogProbs } from "./views/logprobs";
import { renderColoredTokensMulti } from "./views/multi";
import { renderTextNeuronActivations } from "./views/neurons";
import { renderPatching } from "./views/patching";
import { renderResidual } from "./views/residual";
import { renderColoredTokens } from "./views/tokens";
import { renderTopkSamples, renderTopkTokens } from "./views/topk";

type ViewRenderer = (model: AnyModel<any>, el: HTMLElement) => () => void;

const VIEWS: Record<string, ViewRenderer> = {
  colored_tokens: renderColoredTokens,
  attention: renderAttention,
  residual: renderResidual,
  patching: renderPatching,
  attention_patterns: renderAttentionTokens,
  colored_tokens_multi: renderColoredTokensMulti,
  token_log_probs: renderTokenLogProbs,
  text_neuron_activations: renderTextNeuronActivations,
  topk_tokens: renderTopkTokens,
  topk_samples: renderTopkSamples,
  hello: renderHello,
  heads: renderHeads,
};

/** Build the view named by the model's `view` trait into `el`; returns its cleanup. */
export function renderView(model: AnyModel<any>, el: HTMLElement): (() => void) | undefined {
  ensureStyle(el);
  el.classList.add("hooklens");
  const name = model.get("view") as string;
  const renderer = VIEWS[name];
  if (!renderer) {
    el.textContent = `hooklens: this bundle has no view named '${name}'.`;
    return;
  }
  try {
    return renderer(withEmbeddedReplies(model), el);
  } catch (error) {
    el.textContent = `hooklens: the '${name}' view failed: ${String(error)}`;
    el.dataset.error = String(error);
    throw error;
  }
}

const render: Render<{ view: string }> = ({ model, el }) => renderView(model, el);

const DATA_SELECTOR = 'script[type="application/hooklens+json"]:not([data-rendered])';

/** Render every standalone payload of the page into the element just before it. */
export function renderStandalonePages(doc: Document = document): number {
  let count = 0;
  for (const script of doc.querySelectorAll<HTMLScriptElement>(DATA_SELECTOR)) {
    script.dataset.rendered = "1";
    const target = script.previousElementSibling;
    if (!(target instanceof HTMLElement)) continue;
    const payload = JSON.parse(script.textContent ?? "{}") as StandalonePayload;
    renderView(createStaticModel(payload), target);
    target.dataset.standalone = "1";
    count += 1;
  }
  return count;
}

if (typeof document !== "undefined" && document.querySelector(DATA_SELECTOR)) {
  renderStandalonePages();
}

export default { render };
