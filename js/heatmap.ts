/**
 * Canvas heatmaps: one rectangle of `cell` x `cell` pixels per value, drawn into one ImageData
 * (never one DOM node per value). A value is drawn in the theme's positive or negative colour
 * with alpha = |value| / scale, so the host background shows through (light and dark themes)
 * and a pixel's alpha reads back the value to 1/255 of the scale (what the browser tests check).
 */

export type RGB = [number, number, number];

export interface HeatmapColors {
  positive: RGB;
  negative: RGB;
}

/** Alpha byte (0-255) for `value` on a scale where |value| >= scale is opaque. */
export function alphaFor(value: number, scale: number): number {
  if (!Number.isFinite(value) || scale <= 0) return 0;
  return Math.round(Math.min(1, Math.abs(value) / scale) * 255);
}

/** Side of a cell in canvas pixels so that `n` cells fit about `target` pixels (1..max). */
export function cellSize(n: number, target: number, max = 40): number {
  return Math.max(1, Math.min(max, Math.floor(target / Math.max(1, n))));
}

/**
 * Paint a `rows` x `cols` block of `values` (row-major, starting at `offset`) into `canvas`,
 * resizing it to `cols * cell` x `rows * cell` pixels.
 */
export function paintHeatmap(
  canvas: HTMLCanvasElement,
  values: Float32Array,
  offset: number,
  rows: number,
  cols: number,
  cell: number,
  scale: number,
  colors: HeatmapColors,
): void {
  const width = cols * cell;
  const height = rows * cell;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext("2d");
  if (!ctx || width === 0 || height === 0) return;
  const image = ctx.createImageData(width, height);
  // One 32-bit write per pixel; ImageData is RGBA in memory, so build the word per endianness.
  const pixels = new Uint32Array(image.data.buffer);
  const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const word = (rgb: RGB, alpha: number) =>
    little
      ? ((alpha << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]) >>> 0
      : ((rgb[0] << 24) | (rgb[1] << 16) | (rgb[2] << 8) | alpha) >>> 0;
  const positive = new Uint32Array(256);
  const negative = new Uint32Array(256);
  for (let a = 0; a < 256; a++) {
    positive[a] = word(colors.positive, a);
    negative[a] = word(colors.negative, a);
  }
  for (let r = 0; r < rows; r++) {
    const start = r * cell * width;
    const base = offset + r * cols;
    for (let c = 0; c < cols; c++) {
      const value = values[base + c];
      const pixel = (value < 0 ? negative : positive)[alphaFor(value, scale)];
      if (cell === 1) {
        pixels[start + c] = pixel;
      } else {
        pixels.fill(pixel, start + c * cell, start + (c + 1) * cell);
      }
    }
    // The other pixel rows of this cell row are copies of the first.
    for (let dy = 1; dy < cell; dy++) {
      pixels.copyWithin(start + dy * width, start, start + width);
    }
  }
  ctx.putImageData(image, 0, 0);
}

/** The (row, col) under a mouse event on a canvas drawn with `cell`, or null outside it. */
export function cellAt(
  canvas: HTMLCanvasElement,
  clientX: number,
  clientY: number,
  cell: number,
  rows: number,
  cols: number,
): [number, number] | null {
  const box = canvas.getBoundingClientRect();
  const sx = box.width > 0 ? canvas.width / box.width : 1;
  const sy = box.height > 0 ? canvas.height / box.height : 1;
  const col = Math.floor(((clientX - box.left) * sx) / cell);
  const row = Math.floor(((clientY - box.top) * sy) / cell);
  if (row < 0 || col < 0 || row >= rows || col >= cols) return null;
  return [row, col];
}

/** Outline one row and one column (either may be -1) on an overlay canvas of the same size. */
export function paintCrosshair(
  overlay: HTMLCanvasElement,
  width: number,
  height: number,
  cell: number,
  row: number,
  col: number,
  color: string,
): void {
  if (overlay.width !== width) overlay.width = width;
  if (overlay.height !== height) overlay.height = height;
  const ctx = overlay.getContext("2d");
  if (!ctx) return;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.min(2, cell / 4));
  if (row >= 0) ctx.strokeRect(0.5, row * cell + 0.5, width - 1, Math.max(1, cell - 1));
  if (col >= 0) ctx.strokeRect(col * cell + 0.5, 0.5, Math.max(1, cell - 1), height - 1);
}

/** Largest |value| (1 when all are zero), the default colour scale of signed data. */
export function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m || 1;
}
