/**
 * Colours that follow the host's theme. JupyterLab and VS Code both expose CSS variables; we
 * read them at draw time and fall back to light defaults in a bare page.
 */

function cssVar(el: Element, names: string[], fallback: string): string {
  const style = getComputedStyle(el);
  for (const name of names) {
    const value = style.getPropertyValue(name).trim();
    if (value) return value;
  }
  return fallback;
}

export interface Theme {
  foreground: string;
  background: string;
  /** RGB of the colour a value of +1 is drawn in. */
  positive: [number, number, number];
  /** RGB of the colour a value of -1 is drawn in. */
  negative: [number, number, number];
}

export function readTheme(el: Element): Theme {
  return {
    foreground: cssVar(el, ["--jp-ui-font-color1", "--vscode-editor-foreground"], "#1f1f1f"),
    background: cssVar(el, ["--jp-layout-color0", "--vscode-editor-background"], "#ffffff"),
    positive: [37, 99, 235],
    negative: [220, 38, 38],
  };
}

/** Background colour for a value in [-1, 1], as a translucent tint that reads on both themes. */
export function tint(theme: Theme, value: number): string {
  const clamped = Math.max(-1, Math.min(1, Number.isFinite(value) ? value : 0));
  const [r, g, b] = clamped >= 0 ? theme.positive : theme.negative;
  return `rgba(${r}, ${g}, ${b}, ${Math.abs(clamped).toFixed(3)})`;
}
