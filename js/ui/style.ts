/**
 * The widgets' stylesheet, injected once per document, or once per shadow root for a view a
 * host renders inside one (marimo does): a document's stylesheet does not reach into it.
 */

const FG =
  "var(--jp-ui-font-color1, var(--vscode-editor-foreground, var(--hl-foreground, inherit)))";
const MUTED =
  "var(--jp-ui-font-color2, var(--vscode-descriptionForeground, var(--hl-muted, #666)))";
const BORDER = "var(--jp-border-color2, var(--vscode-panel-border, var(--hl-border, #ccc)))";
const BG = "var(--jp-layout-color0, var(--vscode-editor-background, var(--hl-background, #fff)))";
const ACCENT = "var(--jp-brand-color1, var(--vscode-focusBorder, #2563eb))";

const CSS = `
.hooklens-standalone { --hl-background: #ffffff; --hl-foreground: #1f1f1f; --hl-muted: #616161;
  --hl-border: #cccccc; background: #ffffff; color: #1f1f1f; padding: 4px; }
@media (prefers-color-scheme: dark) {
  .hooklens-standalone { --hl-background: #1e1e1e; --hl-foreground: #dddddd; --hl-muted: #a8a8a8;
    --hl-border: #555555; background: #1e1e1e; color: #dddddd; }
}
.hooklens { max-width: 100%; overflow-wrap: anywhere; }
.hooklens { color: ${FG}; font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); }
.hl-colored-tokens { font-family: var(--jp-code-font-family, monospace); line-height: 1.9; }
.hl-token { display: inline-block; padding: 0 2px; margin: 1px; border-radius: 3px; white-space: pre;
  color: ${FG}; line-height: 1.5; }
.hl-token.hl-focus { outline: 1px solid ${ACCENT}; }
.hl-header { display: flex; gap: 12px; align-items: center; margin-bottom: 6px; }
.hl-title { font-weight: 600; }
.hl-status, .hl-caption { color: ${MUTED}; }
.hl-caption { margin: 6px 0 3px; }
.hl-error { color: var(--jp-error-color1, var(--vscode-errorForeground, #b91c1c)); margin: 4px 0;
  white-space: pre-wrap; }
.hl-head-grid { display: flex; flex-wrap: wrap; gap: 6px; }
.hl-thumb { margin: 0; padding: 2px; border: 1px solid ${BORDER}; border-radius: 4px;
  cursor: pointer; text-align: center; }
.hl-thumb.hl-selected { border-color: ${ACCENT}; box-shadow: 0 0 0 1px ${ACCENT}; }
.hl-thumb figcaption { color: ${MUTED}; font-size: 11px; }
.hl-thumb-canvas { display: block; image-rendering: pixelated; }
.hl-heatmap-stack { position: relative; display: inline-block; border: 1px solid ${BORDER};
  line-height: 0; contain: layout paint; }
.hl-heatmap { display: block; image-rendering: pixelated; }
.hl-overlay { position: absolute; left: 0; top: 0; cursor: crosshair; }
.hl-cross { position: absolute; left: 0; top: 0; pointer-events: none; border: 1px solid;
  box-sizing: border-box; will-change: transform; }
.hl-readout { font-family: var(--jp-code-font-family, monospace); margin: 4px 0; min-height: 1.4em;
  white-space: pre; }
.hl-readout-line { height: 1.4em; line-height: 1.4em; overflow: hidden; text-overflow: ellipsis;
  contain: strict; }
.hl-strip-bar { margin-top: 6px; }
.hl-token-strip { font-family: var(--jp-code-font-family, monospace); max-height: 12em;
  overflow: auto; max-width: 100%; }
.hl-colored-tokens { max-width: 100%; }
.hl-painted-strip { position: relative; z-index: 0; }
.hl-painted-strip .hl-token { margin: 0; padding: 1px 3px; border-radius: 0; }
.hl-strip-canvas { position: absolute; left: 0; top: 0; z-index: -1; pointer-events: none; }
.hl-tooltip { position: fixed; left: 0; top: 0; z-index: 10000; pointer-events: none;
  will-change: transform; contain: layout paint; padding: 3px 6px;
  border-radius: 4px; font-family: var(--jp-code-font-family, monospace); font-size: 11px;
  white-space: pre; background: ${FG}; color: var(--jp-layout-color0, var(--vscode-editor-background, var(--hl-background, #fff)));
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); }
.hl-legend { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; font-size: 11px;
  margin: 4px 0; color: ${MUTED}; }
.hl-legend-bar { width: 120px; height: 10px; border: 1px solid ${BORDER}; image-rendering: auto; }
.hl-legend-label { color: ${FG}; }
.hl-legend-swatch { display: inline-block; width: 10px; height: 10px; border: 1px solid ${BORDER}; }
.hl-axis { position: relative; font-family: var(--jp-code-font-family, monospace); font-size: 10px;
  color: ${MUTED}; flex: none; contain: strict; }
.hl-axis-label { position: absolute; white-space: pre; }
.hl-axis-columns:not(.hl-axis-vertical) .hl-axis-label { overflow: hidden;
  text-overflow: ellipsis; }
.hl-axis-rows { min-width: 7em; max-width: 12em; }
.hl-axis-rows .hl-axis-label { right: 2px; text-align: right; max-width: 12em; }
.hl-axis-columns { height: 1.4em; }
.hl-axis-columns .hl-axis-label { top: 0; text-align: center; }
.hl-axis-columns.hl-axis-vertical { height: 6.5em; }
.hl-axis-vertical .hl-axis-label { writing-mode: vertical-rl; height: 6.5em; top: 0;
  text-align: start; }
.hl-axis-focus-box { position: absolute; left: 0; top: 0; right: 0; bottom: 0; z-index: 1;
  pointer-events: none; contain: strict; }
.hl-axis-focus { color: ${FG}; font-weight: 600; background: ${BG}; white-space: pre;
  overflow: hidden; text-overflow: ellipsis; will-change: transform; contain: strict; }
.hl-axis-focus-box { font-family: var(--jp-code-font-family, monospace); font-size: 10px; }
.hl-axis-focus-rows .hl-axis-focus { margin-right: 2px; text-align: right; }
.hl-axis-focus-columns .hl-axis-focus { height: 100%; text-align: center; }
.hl-axis-focus-vertical .hl-axis-focus { writing-mode: vertical-rl; text-align: start; }
.hl-axis-title { font-size: 11px; color: ${MUTED}; }
.hl-frame { max-width: 100%; max-height: 640px; overflow: auto; }
.hl-zoom { display: inline-flex; gap: 2px; }
.hl-zoom-button { font-size: 11px; padding: 0 6px; }
.hl-plot { display: grid; grid-template-columns: auto auto; align-items: start; width: max-content; }
.hl-plot-corner { position: sticky; left: 0; top: 0; z-index: 3; font-size: 10px; color: ${MUTED};
  background: var(--jp-layout-color0, var(--vscode-editor-background, var(--hl-background, #fff)));
  align-self: stretch; display: flex; align-items: flex-end; justify-content: flex-end; padding: 0 2px; }
.hl-plot-top { position: sticky; top: 0; z-index: 2;
  background: var(--jp-layout-color0, var(--vscode-editor-background, var(--hl-background, #fff))); }
.hl-plot-left { position: sticky; left: 0; z-index: 2;
  background: var(--jp-layout-color0, var(--vscode-editor-background, var(--hl-background, #fff))); }
.hl-lens-scroll { max-width: 100%; overflow: auto; max-height: 36em; }
.hl-lens { border-collapse: separate; border-spacing: 0; table-layout: fixed;
  font-family: var(--jp-code-font-family, monospace); font-size: 11px; }
.hl-lens col.hl-col-label { width: 11em; }
.hl-lens td.hl-section .hl-legend { position: sticky; left: 11.5em; display: inline-flex; }
.hl-lens th, .hl-lens td { border-right: 1px solid ${BORDER}; border-bottom: 1px solid ${BORDER};
  padding: 1px 3px; white-space: pre; overflow: hidden; text-overflow: ellipsis; }
.hl-lens thead th { position: sticky; top: 0; z-index: 2; background: ${BG}; }
.hl-lens th.hl-row-label { position: sticky; left: 0; z-index: 1; background: ${BG}; }
.hl-lens thead th.hl-corner { left: 0; z-index: 3; color: ${MUTED}; font-weight: normal; }
.hl-lens td.hl-strip-cell { padding: 0; }
.hl-lens .hl-strip-labels { font-size: 9px; padding: 0 3px; vertical-align: top; }
.hl-lens .hl-section { font-weight: 600; padding-top: 6px; border-bottom: none; }
.hl-lens tr.hl-final th { font-weight: 700; }
.hl-residual .hl-topk-item { cursor: pointer; }
.hl-lens td { cursor: pointer; }
.hl-lens td.hl-selected { outline: 2px solid ${ACCENT}; outline-offset: -2px; }
.hl-row-label { color: ${MUTED}; font-weight: normal; text-align: right; }
.hl-topk { font-family: var(--jp-code-font-family, monospace); margin: 2px 0 8px; }
.hl-prob { color: ${MUTED}; }
.hl-patching .hl-prompt { font-family: var(--jp-code-font-family, monospace); line-height: 1.9; }
.hl-patching .hl-prompt-label { display: inline-block; min-width: 6em; opacity: 0.7; }
.hl-patching .hl-token.hl-diff { text-decoration: underline; font-weight: 600; }
.hl-patching .hl-controls { display: flex; gap: 8px; align-items: center; margin: 6px 0; }
.hl-patching .hl-heat-row { display: flex; align-items: flex-start; gap: 16px; flex-wrap: wrap; }
.hl-patching .hl-side { position: sticky; top: 0; flex: 1 1 18em; min-width: 16em; }
.hl-patching .hl-predictions { flex-direction: column; gap: 8px; }
.hl-patching .hl-row-labels { font-size: 10px; text-align: right; opacity: 0.7; }
.hl-patching .hl-row-labels div { overflow: hidden; }
.hl-patching .hl-col-labels { display: flex; font-size: 10px; opacity: 0.7; line-height: 1.2; }
.hl-patching .hl-col-label { display: inline-block; overflow: hidden; white-space: pre;
  text-align: center; }
.hl-patching .hl-predictions { display: flex; gap: 24px; flex-wrap: wrap; margin-top: 6px; }
.hl-patching .hl-pred { min-width: 12em; }
.hl-patching .hl-pred-title { font-weight: 600; }
.hl-patching .hl-code { font-family: var(--jp-code-font-family, monospace); font-size: 11px;
  white-space: pre-wrap; margin: 6px 0; padding: 4px; border-left: 3px solid currentColor;
  opacity: 0.85; }
`;

const STYLE_ID = "hooklens-style";
/** How long a view waits to be attached before it stops looking for its root (~10 s). */
const MAX_FRAMES = 600;

function injectInto(root: Document | ShadowRoot): void {
  if (root.querySelector(`style#${STYLE_ID}`)) return;
  const isDocument = root.nodeType === Node.DOCUMENT_NODE;
  const doc = isDocument ? (root as Document) : (root.ownerDocument as Document);
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  (isDocument ? (root as Document).head : root).appendChild(style);
}

/**
 * Give the stylesheet to the tree `el` is in: its shadow root when it has one, else the
 * document. A host may attach `el` after render (marimo does, inside a shadow root): then the
 * check runs again each frame until `el` is attached.
 */
export function ensureStyle(el?: HTMLElement, doc: Document = document): void {
  if (!el) {
    injectInto(doc);
    return;
  }
  const place = (): boolean => {
    if (!el.isConnected) return false;
    const root = el.getRootNode();
    const inShadow = root.nodeType === Node.DOCUMENT_FRAGMENT_NODE && "host" in root;
    injectInto(inShadow ? (root as ShadowRoot) : (el.ownerDocument ?? doc));
    return true;
  };
  if (place()) return;
  let frames = 0;
  const retry = () => {
    if (!place() && ++frames < MAX_FRAMES) requestAnimationFrame(retry);
  };
  requestAnimationFrame(retry);
}
