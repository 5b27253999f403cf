/**
 * CircuitsVis' `token_log_probs`: the prompt after its first token, each token tinted by the
 * probability the model gave it; hover (or click to lock) a token for the model's top-k guesses
 * there (fetched with `topk {position}`) and the true token's rank.
 */
import type { AnyModel } from "@anywidget/types";
import { decodeTensor, type EncodedTensor } from "../codec";
import { RpcClient } from "../rpc";
import { tokenSpan, visibleToken } from "../tokens";
import type { TokenLogProbsRequest, TokenLogProbsTraits } from "../traits.gen";
import { clearError, element, formatValue, LruCache, showError } from "./common";
import { paintValue, signedScale } from "./cv_color";

interface TopkReply {
  position: number;
  tokens: string[];
  log_probs: EncodedTensor;
}

export function renderTokenLogProbs(
  model: AnyModel<TokenLogProbsTraits>,
  el: HTMLElement,
): () => void {
  const rpc = new RpcClient<TokenLogProbsRequest>(model);
  const cache = new LruCache<number, TopkReply>(64);
  const prompt = model.get("prompt");
  const correct = decodeTensor(model.get("correct_log_prob")).values;
  const ranks = model.get("correct_rank");
  let hover = -1;
  el.dataset.view = "token_log_probs";
  const root = element("div", "hl-token-log-probs", el);
  const errorBox = element("div", "hl-error", root);
  errorBox.hidden = true;
  const strip = element("div", "hl-colored-tokens", root);
  // Tinted by probability: 0 blank, 1 full colour.
  const scale = signedScale(el, 0, 1);
  // Position p of the prompt (p >= 1) is predicted by row p - 1.
  const spans = prompt.slice(1).map((token, row) => {
    const span = tokenSpan(token);
    span.dataset.position = String(row + 1);
    paintValue(span, scale, Math.exp(correct[row]));
    span.dataset.value = String(correct[row]);
    strip.appendChild(span);
    return span;
  });
  const caption = element("div", "hl-caption", root, "hover a token; click to lock it");
  const table = element("table", "hl-lens hl-topk-table", root);
  el.dataset.renders = "1";

  const show = (reply: TopkReply) => {
    const p = reply.position;
    const values = decodeTensor(reply.log_probs).values;
    caption.textContent =
      `${visibleToken(prompt[p])} at ${p}: log prob ${formatValue(correct[p - 1])}, ` +
      `rank ${ranks[p - 1]} (0 = the top guess)`;
    table.replaceChildren();
    const head = element("tr", "", table);
    for (const title of ["rank", "token", "log prob", "prob"]) element("th", "", head, title);
    reply.tokens.forEach((token, r) => {
      const row = element("tr", token === prompt[p] ? "hl-selected" : "", table);
      element("td", "", row, String(r));
      element("td", "", row, visibleToken(token));
      element("td", "", row, formatValue(values[r]));
      element("td", "", row, formatValue(Math.exp(values[r])));
    });
    el.dataset.topk = JSON.stringify({ position: p, tokens: reply.tokens, log_probs: [...values] });
  };

  const focus = () => {
    const p = model.get("position") >= 1 ? model.get("position") : hover;
    spans.forEach((s, i) => {
      s.classList.toggle("hl-focus", i + 1 === p);
    });
    if (p < 1) return;
    const cached = cache.get(p);
    if (cached) {
      show(cached);
      return;
    }
    rpc
      .request<TopkReply>("topk", { position: p })
      .then((reply) => {
        cache.set(reply.position, reply);
        clearError(el, errorBox);
        const now = model.get("position") >= 1 ? model.get("position") : hover;
        if (now === reply.position) show(reply);
      })
      .catch((error) => showError(el, errorBox, error));
  };
  strip.addEventListener("mouseover", (event) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.position) return;
    hover = Number(target.dataset.position);
    focus();
  });
  strip.addEventListener("click", (event) => {
    const target = (event.target as HTMLElement).closest<HTMLElement>(".hl-token");
    if (!target?.dataset.position) return;
    const p = Number(target.dataset.position);
    model.set("position", model.get("position") === p ? -1 : p);
    model.save_changes();
  });
  model.on("change:position", focus);
  focus();
  return () => {
    model.off("change:position", focus);
    rpc.dispose();
  };
}
