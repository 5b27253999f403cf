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
