/**
 * CircuitsVis' `text_neuron_activations`: pickers for the sample, the first dimension (layer)
 * and the second (neuron); the sample's tokens tinted by that neuron's activations on the
 * signed scale from the minimum to the maximum of all samples. Values are fetched per
 * (sample, first, second) with the `activations` request.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan } from "../tokens";
import type { TextNeuronActivationsRequest, TextNeuronActivationsTraits } from "../traits.gen";
import { clearError, element, formatValue, showError } from "./common";
import { paintValue, signedScale } from "./cv_color";
import { picker } from "./picker";

interface ActivationsReply {
  sample: number;
  first: number;
  second: number;
  values: EncodedTensor;
}

export function renderTextNeuronActivations(
  model: AnyModel<TextNeuronActivationsTraits>,
  el: HTMLElement,
): () => void {
  const rpc = new RpcClient<TextNeuronActivationsRequest>(model);
  let renders = 0;
  el.dataset.view = "text_neuron_activations";
  const root = element("div", "hl-neuron-activations", el);
  const header = element("div", "hl-header", root);
  const samples = model.get("samples");
  picker(
    model,
    header,
    "sample",
    "Sample",
    samples.map((_, i) => String(i)),
  );
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
    "second",
    model.get("second_dimension_name"),
    model.get("second_dimension_labels"),
  );
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const strip = element("div", "hl-colored-tokens", root);
  const readout = element("div", "hl-readout", root);

  const load = () => {
    const params = {
      sample: model.get("sample"),
      first: model.get("first"),
      second: model.get("second"),
    };
    rpc
      .request<ActivationsReply>("activations", params)
      .then((reply) => {
        if (
          reply.sample !== model.get("sample") ||
          reply.first !== model.get("first") ||
          reply.second !== model.get("second")
        )
          return;
        clearError(el, errorBox);
        const values = decodeTensor(reply.values).values;
        const min = model.get("min_value");
        const max = model.get("max_value");
        const scale = signedScale(el, min, max);
        strip.replaceChildren();
        samples[reply.sample].forEach((token, i) => {
          const span = tokenSpan(token);
          paintValue(span, scale, values[i]);
          span.addEventListener("mouseenter", () => {
            readout.textContent = `${JSON.stringify(token)}: ${formatValue(values[i])}`;
          });
          strip.appendChild(span);
        });
        renders += 1;
        el.dataset.renders = String(renders);
        el.dataset.drawn = JSON.stringify({ ...params, min, max });
      })
      .catch((error) => showError(el, errorBox, error));
  };
  const events = ["change:sample", "change:first", "change:second"];
  for (const e of events) model.on(e, load);
  load();
  return () => {
    for (const e of events) model.off(e, load);
    rpc.dispose();
  };
}
