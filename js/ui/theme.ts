/**
 * Colours that follow the host's theme. JupyterLab and VS Code both expose CSS variables; we read
 * them at draw time. A bare page (a standalone export, marimo) follows `prefers-color-scheme`.
 * `watchTheme` calls back when the host switches theme, so views redraw their canvases.
 */
import { blend, cssRgb, luminance, parseColor, type RGB } from "./color";
import type { ColormapKind, ColorScale } from "./colormap";

function cssVar(el: Element, names: string[]): string {
  const style = getComputedStyle(el);
  for (const name of names) {
    const value = style.getPropertyValue(name).trim();
    if (value) return value;
  }
  return "";
}

export interface Theme {
  dark: boolean;
  foreground: string;
  background: string;
  backgroundRgb: RGB;
  foregroundRgb: RGB;
  /** RGB a full positive value is drawn in. */
  positive: RGB;
  /** RGB a full negative value is drawn in. */
  negative: RGB;
  /** Outline of the selected cell(s). */
  accent: string;
}

const LIGHT_BG: RGB = [255, 255, 255];
const DARK_BG: RGB = [30, 30, 30];

function prefersDark(): boolean {
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
}

/** The host's theme as seen from `el`. */
export function readTheme(el: Element): Theme {
  const bgText = cssVar(el, [
    "--jp-layout-color0",
    "--vscode-editor-background",
    "--hl-background",
  ]);
  const parsedBg = bgText ? parseColor(bgText) : null;
  const backgroundRgb = parsedBg ?? (prefersDark() ? DARK_BG : LIGHT_BG);
  const dark = luminance(backgroundRgb) < 0.3;
  const fgText = cssVar(el, ["--jp-ui-font-color1", "--vscode-editor-foreground"]);
  const foregroundRgb =
    (fgText ? parseColor(fgText) : null) ?? (dark ? [220, 220, 220] : [31, 31, 31]);
  return {
    dark,
    foreground: cssRgb(foregroundRgb),
    background: cssRgb(backgroundRgb),
    backgroundRgb,
    foregroundRgb,
    // Lighter hues on dark so full colour keeps its contrast against the background.
    positive: dark ? [96, 165, 250] : [37, 99, 235],
    negative: dark ? [248, 113, 113] : [220, 38, 38],
    // Amber, not the host's brand colour (often blue, like positive values).
    accent: dark ? "#fbbf24" : "#d97706",
  };
}

/** Options of `colorScale` beyond the theme. */
export interface ScaleOptions {
  kind: ColormapKind;
  lo?: number;
  hi: number;
  gamma?: number;
  /** CSS colours overriding the theme's (CircuitsVis' positive_color / negative_color). */
  positiveColor?: string;
  negativeColor?: string;
}

/** A colour scale in the theme's colours (see colormap.ts). */
export function colorScale(theme: Theme, options: ScaleOptions): ColorScale {
  const lo = options.lo ?? (options.kind === "diverging" ? -options.hi : 0);
  return {
    kind: options.kind,
    lo,
    hi: options.hi,
    gamma: options.gamma ?? 1,
    background: theme.backgroundRgb,
    positive: (options.positiveColor && parseColor(options.positiveColor)) || theme.positive,
    negative: (options.negativeColor && parseColor(options.negativeColor)) || theme.negative,
    masked: blend(theme.backgroundRgb, theme.foregroundRgb, 0.14),
    missing: blend(theme.backgroundRgb, theme.foregroundRgb, 0.32),
  };
}

/** CSS background for a value in [-1, 1]: opaque, blended towards the background. */
export function tint(theme: Theme, value: number): string {
  const clamped = Math.max(-1, Math.min(1, Number.isFinite(value) ? value : 0));
  const to = clamped >= 0 ? theme.positive : theme.negative;
  return cssRgb(blend(theme.backgroundRgb, to, Math.abs(clamped)));
}

/**
 * Call `onChange` when the host's theme changes: JupyterLab and VS Code change attributes of
 * `<body>` (data-jp-theme-*, class), a bare page follows the OS scheme. Returns the disposer.
 */
export function watchTheme(el: Element, onChange: () => void): () => void {
  let last = readTheme(el).background;
  const check = () => {
    const now = readTheme(el).background;
    if (now === last) return;
    last = now;
    onChange();
  };
  const disposers: Array<() => void> = [];
  if (typeof MutationObserver !== "undefined" && typeof document !== "undefined") {
    const observer = new MutationObserver(() => {
      // JupyterLab swaps the theme's stylesheet after flipping the attribute: look again later.
      check();
      setTimeout(check, 250);
    });
    for (const node of [document.body, document.documentElement]) {
      if (node)
        observer.observe(node, {
          attributes: true,
          attributeFilter: [
            "class",
            "style",
            "data-jp-theme-light",
            "data-jp-theme-name",
            "data-theme",
          ],
        });
    }
    if (document.head) observer.observe(document.head, { childList: true, subtree: true });
    disposers.push(() => observer.disconnect());
  }
  if (typeof matchMedia === "function") {
    const query = matchMedia("(prefers-color-scheme: dark)");
    const listener = () => check();
    query.addEventListener?.("change", listener);
    disposers.push(() => query.removeEventListener?.("change", listener));
  }
  return () => {
    for (const dispose of disposers) dispose();
  };
}
