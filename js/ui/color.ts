/**
 * Colours as RGB triples: parsing CSS colour strings (the colour arguments CircuitsVis takes),
 * blending, and CSS output. Pure functions, so they run in unit tests without a canvas.
 */

export type RGB = [number, number, number];

const NAMED: Record<string, RGB> = {
  black: [0, 0, 0],
  white: [255, 255, 255],
  red: [255, 0, 0],
  green: [0, 128, 0],
  blue: [0, 0, 255],
  orange: [255, 165, 0],
  purple: [128, 0, 128],
  gray: [128, 128, 128],
  grey: [128, 128, 128],
  yellow: [255, 255, 0],
  cyan: [0, 255, 255],
  magenta: [255, 0, 255],
  teal: [0, 128, 128],
  navy: [0, 0, 128],
  transparent: [0, 0, 0],
};

/** Any colour the host's CSS engine understands, read back through a 1x1 canvas. */
function parseWithCanvas(text: string): RGB | null {
  if (typeof document === "undefined") return null;
  const canvas = document.createElement("canvas");
  canvas.width = 1;
  canvas.height = 1;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = canvas.getContext("2d");
  } catch {
    return null;
  }
  if (!ctx) return null;
  // Two sentinels: an unknown colour leaves fillStyle unchanged, whichever it was.
  ctx.fillStyle = "#010203";
  ctx.fillStyle = text;
  const first = ctx.fillStyle;
  ctx.fillStyle = "#040506";
  ctx.fillStyle = text;
  if (first !== ctx.fillStyle) return null;
  ctx.fillRect(0, 0, 1, 1);
  const d = ctx.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2]];
}

/**
 * The RGB of a CSS colour string: `#rgb`, `#rrggbb`, `rgb()/rgba()`, common names, and (in a
 * browser) anything else the CSS engine accepts. Null when it is not a colour.
 */
export function parseColor(text: string): RGB | null {
  const value = text.trim().toLowerCase();
  if (value === "") return null;
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})([0-9a-f]{2})?$/.exec(value);
  if (hex) {
    const h = hex[1];
    if (h.length === 3) return [0, 1, 2].map((i) => Number.parseInt(h[i] + h[i], 16)) as RGB;
    return [0, 2, 4].map((i) => Number.parseInt(h.slice(i, i + 2), 16)) as RGB;
  }
  const rgb = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(value);
  if (rgb) return [rgb[1], rgb[2], rgb[3]].map((c) => Math.round(Number(c))) as RGB;
  if (value in NAMED) return [...NAMED[value]] as RGB;
  return parseWithCanvas(value);
}

/** `from` moved a fraction `t` (0..1) of the way to `to`, rounded to bytes. */
export function blend(from: RGB, to: RGB, t: number): RGB {
  const f = Math.max(0, Math.min(1, t));
  return [0, 1, 2].map((i) => Math.round(from[i] + (to[i] - from[i]) * f)) as RGB;
}

export function cssRgb(rgb: RGB): string {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/** Relative luminance in [0, 1] (sRGB, WCAG formula). */
export function luminance(rgb: RGB): number {
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
