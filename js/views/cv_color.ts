/**
 * Colours of the CircuitsVis views, on the shared colour maps (ui/colormap.ts): CircuitsVis'
 * signed scale (a value >= 0 drawn `value / max` of the way to the positive colour, a negative
 * one `value / min` of the way to the negative colour, blended towards the background), and the
 * per-head colours of `attention_patterns`.
 */
import { blend, cssRgb, luminance, type RGB } from "../ui/color";
import { type ColorScale, colorOf } from "../ui/colormap";
import { colorScale, readTheme } from "../ui/theme";

/** CircuitsVis' signed scale from `lo` (< 0, full negative) to `hi` in `el`'s theme; the scale
 * is also written to `el.dataset.colormap` so tests can read colours back into values. */
export function signedScale(el: HTMLElement, lo: number, hi: number): ColorScale {
  const scale = colorScale(readTheme(el), { kind: "diverging", lo: Math.min(lo, 0), hi });
  el.dataset.colormap = JSON.stringify(scale);
  return scale;
}

/** Paint `node`'s background with `value` on `scale` and pick a text colour that reads on it. */
export function paintValue(node: HTMLElement, scale: ColorScale, value: number): void {
  const rgb = colorOf(scale, value);
  node.style.background = cssRgb(rgb);
  node.style.color = textOn(rgb);
  node.dataset.value = String(value);
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

export { blend };

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

/** Black or white text, whichever reads on `rgb`. */
export function textOn(rgb: RGB): string {
  return luminance(rgb) < 0.3 ? "white" : "black";
}
