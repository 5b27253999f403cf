/**
 * CircuitsVis' `topk_tokens` (a table of the k highest and lowest activating tokens per
 * neuron, a page of neurons at a time, fetched with `topk_page`) and `topk_samples` (a neuron's
 * samples as tinted token strips, fetched with `samples`).
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan, visibleToken } from "../tokens";
import type {
  TopkSamplesRequest,
  TopkSamplesTraits,
  TopkTokensRequest,
  TopkTokensTraits,
} from "../traits.gen";
import { clearError, element, formatValue, showError } from "./common";
import { paintValue, signedScale } from "./cv_color";
import { picker } from "./picker";

interface PageReply {
  sample: number;
  first: number;
  page: number;
  start: number;
  top_values: EncodedTensor;
  top_indices: EncodedTensor;
  bottom_values: EncodedTensor;
  bottom_indices: EncodedTensor;
}

export function renderTopkTokens(model: AnyModel<TopkTokensTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<TopkTokensRequest>(model);
  const pages = Math.max(1, Math.ceil(model.get("n_neurons") / model.get("page_size")));
  let renders = 0;
  el.dataset.view = "topk_tokens";
  const root = element("div", "hl-topk-tokens", el);
  const header = element("div", "hl-header", root);
  picker(model, header, "sample", "Sample", model.get("sample_labels"));
  picker(
    model,
    header,
    "first",
    model.get("first_dimension_name"),
    model.get("first_dimension_labels"),
  );
  picker(
    model,
    header,
    "page",
    `${model.get("third_dimension_name")}s`,
    Array.from({ length: pages }, (_, p) => {
      const start = p * model.get("page_size");
      return `${start}-${Math.min(start + model.get("page_size"), model.get("n_neurons")) - 1}`;
    }),
  );
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const table = element("table", "hl-lens hl-topk-table", root);

  const load = () => {
    const params = {
      sample: model.get("sample"),
      first: model.get("first"),
      page: model.get("page"),
    };
    rpc
      .request<PageReply>("topk_page", params)
      .then((reply) => {
        if (reply.sample !== model.get("sample") || reply.first !== model.get("first")) return;
        if (reply.page !== model.get("page")) return;
        clearError(el, errorBox);
        const tokens = model.get("samples")[reply.sample];
        const top = decodeTensor(reply.top_values);
        const topIdx = decodeTensor(reply.top_indices).values;
        const bottom = decodeTensor(reply.bottom_values).values;
        const bottomIdx = decodeTensor(reply.bottom_indices).values;
        const [k, cols] = top.shape;
        let min = 0;
        let max = 0;
        for (const v of top.values) max = Math.max(max, v);
        for (const v of bottom) min = Math.min(min, v);
        const scale = signedScale(el, min, max);
        table.replaceChildren();
        const head = element("tr", "", table);
        element("th", "", head, model.get("third_dimension_name"));
        for (let c = 0; c < cols; c++) element("th", "", head, String(reply.start + c));
        const addRow = (
          label: string,
          values: ArrayLike<number>,
          indices: ArrayLike<number>,
          r: number,
        ) => {
          const row = element("tr", "", table);
          element("th", "hl-row-label", row, label);
          for (let c = 0; c < cols; c++) {
            const v = values[r * cols + c];
            const index = indices[r * cols + c];
            const cell = element(
              "td",
              "hl-topk-cell",
              row,
              `${visibleToken(tokens[index])} ${formatValue(v)}`,
            );
            paintValue(cell, scale, v);
            cell.dataset.token = String(index);
            cell.dataset.neuron = String(reply.start + c);
          }
        };
        for (let r = 0; r < k; r++) addRow(`top ${r + 1}`, top.values, topIdx, r);
        // Bottom rows arrive lowest first; CircuitsVis lists them from the top of the bottom k.
        for (let r = k - 1; r >= 0; r--) addRow(`bottom ${r + 1}`, bottom, bottomIdx, r);
        renders += 1;
        el.dataset.renders = String(renders);
        el.dataset.drawn = JSON.stringify({ ...params, k, cols, start: reply.start });
      })
      .catch((error) => showError(el, errorBox, error));
  };
  const events = ["change:sample", "change:first", "change:page"];
  for (const e of events) model.on(e, load);
  load();
  return () => {
    for (const e of events) model.off(e, load);
    rpc.dispose();
  };
}

interface SamplesReply {
  zeroth: number;
  first: number;
  tokens: string[][];
  lengths: number[];
  values: EncodedTensor;
  max: number;
}

export function renderTopkSamples(model: AnyModel<TopkSamplesTraits>, el: HTMLElement): () => void {
  const rpc = new RpcClient<TopkSamplesRequest>(model);
  let renders = 0;
  let last: SamplesReply | undefined;
  el.dataset.view = "topk_samples";
  const root = element("div", "hl-topk-samples", el);
  const header = element("div", "hl-header", root);
  picker(
    model,
    header,
    "zeroth",
    model.get("zeroth_dimension_name"),
    model.get("zeroth_dimension_labels"),
  );
  picker(
    model,
    header,
    "first",
    model.get("first_dimension_name"),
    model.get("first_dimension_labels"),
  );
  const counts = Array.from({ length: model.get("n_samples") }, (_, i) => String(i + 1));
  const shownLabel = element("label", "hl-picker", header, "Samples ");
  const shown = element("select", "hl-pick-shown", shownLabel);
  counts.forEach((text) => {
    element("option", "", shown, text).value = text;
  });
  shown.value = String(model.get("shown"));
  shown.addEventListener("change", () => {
    model.set("shown", Number(shown.value));
    model.save_changes();
  });
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const list = element("div", "hl-sample-list", root);

  const draw = () => {
    if (!last) return;
    const values = decodeTensor(last.values).values;
    const scale = signedScale(el, 0, last.max);
    list.replaceChildren();
    let offset = 0;
    last.tokens.forEach((sample, s) => {
      const start = offset;
      offset += last?.lengths[s] ?? 0;
      if (s >= model.get("shown")) return;
      const strip = element("div", "hl-colored-tokens hl-sample", list);
      strip.dataset.sample = String(s);
      sample.forEach((token, i) => {
        const span = tokenSpan(token);
        const v = values[start + i];
        paintValue(span, scale, v);
        span.title = `${JSON.stringify(token)}: ${formatValue(v)}`;
        strip.appendChild(span);
      });
    });
    shown.value = String(model.get("shown"));
    renders += 1;
    el.dataset.renders = String(renders);
    el.dataset.drawn = JSON.stringify({ zeroth: last.zeroth, first: last.first, max: last.max });
  };
  const load = () => {
    const params = { zeroth: model.get("zeroth"), first: model.get("first") };
    rpc
      .request<SamplesReply>("samples", params)
      .then((reply) => {
        if (reply.zeroth !== model.get("zeroth") || reply.first !== model.get("first")) return;
        clearError(el, errorBox);
        last = reply;
        draw();
      })
      .catch((error) => showError(el, errorBox, error));
  };
  model.on("change:zeroth", load);
  model.on("change:first", load);
  model.on("change:shown", draw);
  load();
  return () => {
    model.off("change:zeroth", load);
    model.off("change:first", load);
    model.off("change:shown", draw);
    rpc.dispose();
  };
}
