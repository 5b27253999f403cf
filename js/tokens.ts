/** Token strings as the user should see them: text, with whitespace made visible. */

const VISIBLE: Record<string, string> = { " ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍" };

export function visibleToken(token: string): string {
  let out = "";
  for (const ch of token) out += VISIBLE[ch] ?? ch;
  return out === "" ? "∅" : out;
}

/** A span showing `token` as text. Never markup: tokenizer output is data. */
export function tokenSpan(token: string, className = "hl-token"): HTMLSpanElement {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = visibleToken(token);
  span.title = JSON.stringify(token);
  return span;
}

/**
 * Append a span per token to `parent` and return them. The strip wraps between tokens, and a
 * token holding a newline ends its line (a `<br>` after it), as the text itself would.
 */
export function appendTokens(parent: HTMLElement, tokens: readonly string[]): HTMLSpanElement[] {
  return tokens.map((token, i) => {
    const span = tokenSpan(token);
    span.dataset.index = String(i);
    parent.appendChild(span);
    if (token.includes("\n")) parent.appendChild(document.createElement("br"));
    return span;
  });
}
