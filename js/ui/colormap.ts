/**
 * Colour maps, blended towards the background (never transparency, so small and negative values
 * stay visible on dark themes too):
 *
 * - sequential (probabilities, norms, attention): `t = ((v - lo) / (hi - lo)) ** gamma`, drawn
 *   `blend(background, positive, t)`;
 * - diverging (patching effects, contributions, logit differences), centred on 0:
 *   `t = (v / hi) ** gamma` for v > 0 towards `positive`, `(v / lo) ** gamma` for v < 0 towards
 *   `negative` (lo < 0). CircuitsVis' min_value / max_value meanings.
 *
 * Values beyond the range are clipped to full colour. A non-finite value (a cell not computed
 * yet) gets `missing`, a masked one (the upper triangle of causal attention) `masked`: both
 * differ from the background, which is what zero looks like. Because colours are linear blends,
 * a pixel reads back to its value (`valueOfColor`), which is how the browser tests compare
 * pixels with data; canvases carry their scale in `data-colormap` (JSON of `ColorScale`).
 */
import { blend, type RGB } from "./color";

export type ColormapKind = "sequential" | "diverging";

export interface ColorScale {
  kind: ColormapKind;
  /** Value drawn as the background (sequential) / at full negative colour (diverging, < 0). */
  lo: number;
  /** Value at full positive colour. */
  hi: number;
  /** Exponent applied to the normalised magnitude; < 1 lifts small values. */
  gamma: number;
  background: RGB;
  positive: RGB;
  negative: RGB;
  /** Colour of a masked cell. */
  masked: RGB;
  /** Colour of a non-finite value (not computed yet). */
  missing: RGB;
}

/** Signed normalised value in [-1, 1] (sequential: [0, 1]); NaN stays NaN. */
export function normalize(scale: ColorScale, value: number): number {
  if (!Number.isFinite(value)) return Number.NaN;
  if (scale.kind === "sequential") {
    const span = scale.hi - scale.lo;
    const t = span > 0 ? (value - scale.lo) / span : value > scale.lo ? 1 : 0;
    return Math.max(0, Math.min(1, t)) ** scale.gamma;
  }
  if (value >= 0) {
    const t = scale.hi > 0 ? value / scale.hi : value > 0 ? 1 : 0;
    return Math.min(1, t) ** scale.gamma;
  }
  const t = scale.lo < 0 ? value / scale.lo : 1;
  return -(Math.min(1, t) ** scale.gamma);
}

/** The colour of `value`. */
export function colorOf(scale: ColorScale, value: number): RGB {
  const t = normalize(scale, value);
  if (Number.isNaN(t)) return scale.missing;
  return t >= 0
    ? blend(scale.background, scale.positive, t)
    : blend(scale.background, scale.negative, -t);
}

/** Inverse of `colorOf` for an unclipped colour (tests and the legend's read-out). */
export function valueOfColor(scale: ColorScale, rgb: RGB): number {
  const along = (to: RGB) => {
    // The channel that moves most gives the finest reading.
    let best = 0;
    for (let i = 1; i < 3; i++) {
      if (Math.abs(to[i] - scale.background[i]) > Math.abs(to[best] - scale.background[best])) {
        best = i;
      }
    }
    const span = to[best] - scale.background[best];
    return span === 0 ? 0 : (rgb[best] - scale.background[best]) / span;
  };
  const tPos = Math.max(0, Math.min(1, along(scale.positive)));
  if (scale.kind === "sequential")
    return scale.lo + tPos ** (1 / scale.gamma) * (scale.hi - scale.lo);
  const tNeg = Math.max(0, Math.min(1, along(scale.negative)));
  const dist = (a: RGB, b: RGB) =>
    Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]);
  const pos = blend(scale.background, scale.positive, tPos);
  const neg = blend(scale.background, scale.negative, tNeg);
  return dist(pos, rgb) <= dist(neg, rgb)
    ? tPos ** (1 / scale.gamma) * scale.hi
    : tNeg ** (1 / scale.gamma) * scale.lo;
}

/** How a view chooses the range of its colour scale. */
export interface RangeOptions {
  /** Leave column 0 (the first token, an attention sink) out of the range; it may clip. */
  skipFirstColumn?: boolean;
}

/**
 * Largest finite value (sequential) or largest |value| (diverging) of a `rows x cols` block at
 * `offset`; 1 when there is none (or all are 0). With `skipFirstColumn` column 0 is left out
 * unless it is the only column.
 */
export function rangeOf(
  values: ArrayLike<number>,
  offset: number,
  rows: number,
  cols: number,
  kind: ColormapKind,
  options: RangeOptions = {},
): number {
  const first = options.skipFirstColumn && cols > 1 ? 1 : 0;
  let m = 0;
  for (let r = 0; r < rows; r++) {
    const base = offset + r * cols;
    for (let c = first; c < cols; c++) {
      const v = values[base + c];
      if (!Number.isFinite(v)) continue;
      const a = kind === "diverging" ? Math.abs(v) : v;
      if (a > m) m = a;
    }
  }
  return m || 1;
}

/** Steps of the lookup table per unit of t: finer than a colour byte, so no value is lost. */
export const LUT_STEPS = 1024;

/** Packed colours over t in [-1, 1]: index `Math.round((t + 1) * LUT_STEPS)`. */
export function lookupTable(scale: ColorScale, pack: (rgb: RGB) => number): Uint32Array {
  const table = new Uint32Array(2 * LUT_STEPS + 1);
  for (let i = 0; i <= 2 * LUT_STEPS; i++) {
    const t = i / LUT_STEPS - 1;
    const rgb =
      t >= 0
        ? blend(scale.background, scale.positive, t)
        : blend(scale.background, scale.negative, -t);
    table[i] = pack(rgb);
  }
  return table;
}

/** The JSON a canvas carries in `data-colormap` so tests can read its pixels back. */
export function describeScale(scale: ColorScale): string {
  return JSON.stringify(scale);
}
