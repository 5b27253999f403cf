/**
 * Colours of the CircuitsVis views: CircuitsVis' signed scale (a value >= 0 at `value / max`
 * of the positive colour, a negative one at `value / min` of the negative colour) and the
 * per-head colours of `attention_patterns`. Pure functions, so tests can recompute them.
 */

export type RGB = [number, number, number];

/** How strongly `value` is drawn, in [0, 1], on CircuitsVis' scale from `min` to `max`. */
export function signedFraction(value: number, min: number, max: number): number {
  const ratio = value >= 0 ? value / max : -value / -min;
  return Number.isFinite(ratio) ? Math.min(Math.max(ratio, 0), 1) : 0;
}

/** `value` as a translucent tint of `positive` (value >= 0) or `negative`. */
export function signedColor(
  value: number,
  min: number,
  max: number,
  negative: RGB,
  positive: RGB,
): string {
  const [r, g, b] = value >= 0 ? positive : negative;
  return `rgba(${r}, ${g}, ${b}, ${signedFraction(value, min, max).toFixed(3)})`;
}

/** Any CSS colour string as RGB (via the canvas' parser); `fallback` when it does not parse. */
export function parseColor(css: string, fallback: RGB): RGB {
  if (!css) return fallback;
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return fallback;
  ctx.fillStyle = "#010203";
  ctx.fillStyle = css;
  const text = String(ctx.fillStyle);
  if (text === "#010203" && css.replace(/\s/g, "").toLowerCase() !== "#010203") return fallback;
  const hex = /^#([0-9a-f]{6})$/i.exec(text);
  if (hex) {
    const n = Number.parseInt(hex[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const rgb = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(text);
  return rgb ? [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])] : fallback;
}

/** The colour of head `h` of `n`: hues spread evenly around the wheel (HSL 70% / 50%). */
export function headColor(h: number, n: number): RGB {
  const hue = (h * 360) / Math.max(n, 1);
  const s = 0.7;
  const l = 0.5;
  const k = (m: number) => (m + hue / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (m: number) => l - a * Math.max(-1, Math.min(k(m) - 3, Math.min(9 - k(m), 1)));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

/** `background` blended towards `color` by `t` in [0, 1]. */
export function blend(background: RGB, color: RGB, t: number): RGB {
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1);
  return [0, 1, 2].map((i) => background[i] + (color[i] - background[i]) * x) as RGB;
}

/** Several heads' colours as one: per channel the one furthest from the background. */
export function combine(background: RGB, colors: RGB[]): RGB {
  if (colors.length === 0) return background;
  return [0, 1, 2].map((i) =>
    colors.reduce(
      (best, c) => (Math.abs(c[i] - background[i]) > Math.abs(best - background[i]) ? c[i] : best),
      background[i],
    ),
  ) as RGB;
}

/** Black or white text, whichever reads on `rgb` (CircuitsVis' brightness rule). */
export function textOn(rgb: RGB): string {
  const brightness = (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000;
  return brightness < 128 ? "white" : "black";
}
