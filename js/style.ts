/** The widgets' stylesheet, injected once per document (no CSS file to fetch). */

const CSS = `
.hl-colored-tokens { font-family: var(--jp-code-font-family, monospace); line-height: 1.9; }
.hl-token { padding: 1px 2px; margin: 0 1px; border-radius: 3px; white-space: pre;
  color: var(--jp-ui-font-color1, var(--vscode-editor-foreground, inherit)); }
`;

export function ensureStyle(doc: Document = document): void {
  if (doc.getElementById("hooklens-style")) return;
  const style = doc.createElement("style");
  style.id = "hooklens-style";
  style.textContent = CSS;
  doc.head.appendChild(style);
}
