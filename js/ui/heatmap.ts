/**
 * Canvas heatmaps: one rectangle of `cell` x `cell` pixels per value, drawn into one ImageData
 * (never one DOM node per value), in the colours of a `ColorScale` (colormap.ts). Masked cells
 * (`mask: "upper"`: key > query, causal attention) and missing ones (NaN: not computed yet,
 * hatched) are drawn differently from zero, which is the background.
 */
import type { RGB } from "./color";
import { type ColorScale, describeScale, LUT_STEPS, lookupTable, normalize } from "./colormap";

export type Mask = "none" | "upper";

export interface PaintOptions {
  mask?: Mask;
  /** Height of a cell in pixels when it differs from its width (`cell`). */
  cellHeight?: number;
}

const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** An opaque RGBA pixel as one 32-bit word of ImageData memory. */
export function packRgb(rgb: RGB): number {
  return LITTLE
    ? ((255 << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]) >>> 0
    : ((rgb[0] << 24) | (rgb[1] << 16) | (rgb[2] << 8) | 255) >>> 0;
}

/**
 * Side of a cell in canvas pixels: `n` cells fit about `target` pixels, but never below `min`
 * (then the heatmap scrolls) nor above `max`; `n * cell` stays under 16384 px (canvas limit).
 */
export function cellSize(n: number, target: number, max = 40, min = 1): number {
  const fit = Math.floor(target / Math.max(1, n));
  const cap = Math.max(1, Math.floor(16384 / Math.max(1, n)));
  return Math.max(1, Math.min(cap, Math.max(min, Math.min(max, fit))));
}

/**
 * Paint a `rows` x `cols` block of `values` (row-major, starting at `offset`) into `canvas`,
 * resizing it to `cols * cell` x `rows * cell` pixels. The scale travels in `data-colormap`.
 */
export function paintHeatmap(
  canvas: HTMLCanvasElement,
  values: ArrayLike<number>,
  offset: number,
  rows: number,
  cols: number,
  cell: number,
  scale: ColorScale,
  options: PaintOptions = {},
): void {
  const cellHeight = options.cellHeight ?? cell;
  const width = cols * cell;
  const height = rows * cellHeight;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  canvas.dataset.colormap = describeScale(scale);
  canvas.dataset.cell = String(cell);
  canvas.dataset.cellHeight = String(cellHeight);
  const ctx = canvas.getContext("2d");
  if (!ctx || width === 0 || height === 0) return;
  const image = ctx.createImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer);
  const table = lookupTable(scale, packRgb);
  const masked = packRgb(scale.masked);
  const missing = packRgb(scale.missing);
  const background = packRgb(scale.background);
  const upper = options.mask === "upper";
  const hatch = new Uint32Array(width);
  for (let r = 0; r < rows; r++) {
    const start = r * cellHeight * width;
    const base = offset + r * cols;
    let anyMissing = false;
    for (let c = 0; c < cols; c++) {
      let pixel: number;
      if (upper && c > r) pixel = masked;
      else {
        const t = normalize(scale, values[base + c]);
        if (Number.isNaN(t)) {
          pixel = missing;
          anyMissing = true;
        } else pixel = table[Math.round((t + 1) * LUT_STEPS)];
      }
      if (cell === 1) pixels[start + c] = pixel;
      else pixels.fill(pixel, start + c * cell, start + (c + 1) * cell);
    }
    for (let dy = 1; dy < cellHeight; dy++) {
      pixels.copyWithin(start + dy * width, start, start + width);
    }
    // Missing cells are hatched (stripes of `missing` on the background) when big enough.
    if (anyMissing && cell >= 4 && cellHeight >= 4) {
      for (let dy = 0; dy < cellHeight; dy++) {
        const rowStart = start + dy * width;
        hatch.set(pixels.subarray(rowStart, rowStart + width));
        for (let x = 0; x < width; x++) {
          if (hatch[x] === missing && (x + dy) % 4 >= 2) pixels[rowStart + x] = background;
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
}

/**
 * Max-pool a `rows` x `cols` block into `outRows` x `outCols` bins, keeping in each bin the value
 * of largest magnitude (its sign kept), so a thumbnail shows the strongest value of its pixels
 * instead of dropping them. With `mask: "upper"`, masked cells (c > r) take no part; a bin of
 * masked cells only is flagged in `masked`, a bin of missing (NaN) cells only is NaN.
 */
export function poolMax(
  values: ArrayLike<number>,
  offset: number,
  rows: number,
  cols: number,
  outRows: number,
  outCols: number,
  mask: Mask = "none",
): { values: Float32Array; masked: Uint8Array } {
  const out = new Float32Array(outRows * outCols);
  const seen = new Uint8Array(outRows * outCols);
  const hasFinite = new Uint8Array(outRows * outCols);
  for (let r = 0; r < rows; r++) {
    const br = Math.min(outRows - 1, Math.floor((r * outRows) / rows));
    const base = offset + r * cols;
    for (let c = 0; c < cols; c++) {
      if (mask === "upper" && c > r) continue;
      const bin = br * outCols + Math.min(outCols - 1, Math.floor((c * outCols) / cols));
      const v = values[base + c];
      seen[bin] = 1;
      if (!Number.isFinite(v)) continue;
      if (!hasFinite[bin] || Math.abs(v) > Math.abs(out[bin])) out[bin] = v;
      hasFinite[bin] = 1;
    }
  }
  const masked = new Uint8Array(outRows * outCols);
  for (let i = 0; i < out.length; i++) {
    if (!seen[i]) masked[i] = 1;
    else if (!hasFinite[i]) out[i] = Number.NaN;
  }
  return { values: out, masked };
}

/**
 * A thumbnail of at most `px` x `px` canvas pixels: max-pooled when the block is bigger, one
 * pixel (or more) per cell otherwise.
 */
export function paintThumbnail(
  canvas: HTMLCanvasElement,
  values: ArrayLike<number>,
  offset: number,
  rows: number,
  cols: number,
  px: number,
  scale: ColorScale,
  mask: Mask = "none",
): void {
  if (rows <= px && cols <= px) {
    const cell = Math.max(1, Math.floor(px / Math.max(rows, cols)));
    paintHeatmap(canvas, values, offset, rows, cols, cell, scale, { mask });
    return;
  }
  const outRows = Math.min(rows, px);
  const outCols = Math.min(cols, px);
  const pooled = poolMax(values, offset, rows, cols, outRows, outCols, mask);
  paintHeatmap(canvas, pooled.values, 0, outRows, outCols, 1, scale);
  // Bins of masked cells only: paint them as masked.
  const ctx = canvas.getContext("2d");
  if (!ctx || !pooled.masked.some((m) => m)) return;
  ctx.fillStyle = `rgb(${scale.masked.join(",")})`;
  for (let i = 0; i < pooled.masked.length; i++) {
    if (pooled.masked[i]) ctx.fillRect(i % outCols, Math.floor(i / outCols), 1, 1);
  }
}

/** The (row, col) under a mouse event on a canvas drawn with `cell`, or null outside it. */
export function cellAt(
  canvas: HTMLCanvasElement,
  clientX: number,
  clientY: number,
  cell: number,
  rows: number,
  cols: number,
  cellHeight = cell,
): [number, number] | null {
  const box = canvas.getBoundingClientRect();
  const sx = box.width > 0 ? canvas.width / box.width : 1;
  const sy = box.height > 0 ? canvas.height / box.height : 1;
  const col = Math.floor(((clientX - box.left) * sx) / cell);
  const row = Math.floor(((clientY - box.top) * sy) / cellHeight);
  if (row < 0 || col < 0 || row >= rows || col >= cols) return null;
  return [row, col];
}

function sizeOverlay(overlay: HTMLCanvasElement, width: number, height: number) {
  if (overlay.width !== width) overlay.width = width;
  if (overlay.height !== height) overlay.height = height;
  return overlay.getContext("2d");
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
  const ctx = sizeOverlay(overlay, width, height);
  if (!ctx) return;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.min(2, cell / 4));
  if (row >= 0) ctx.strokeRect(0.5, row * cell + 0.5, width - 1, Math.max(1, cell - 1));
  if (col >= 0) ctx.strokeRect(col * cell + 0.5, 0.5, Math.max(1, cell - 1), height - 1);
}

/**
 * Marks on an overlay: the selected cells as solid `accent` frames (2 px), the hovered cell as a
 * dashed `foreground` frame, so the two never look alike.
 */
export function paintMarks(
  overlay: HTMLCanvasElement,
  width: number,
  height: number,
  cell: number,
  selected: ReadonlyArray<readonly [number, number]>,
  hover: readonly [number, number] | null,
  colors: { accent: string; foreground: string },
): void {
  const ctx = sizeOverlay(overlay, width, height);
  if (!ctx) return;
  ctx.clearRect(0, 0, width, height);
  ctx.setLineDash([]);
  ctx.lineWidth = 2;
  ctx.strokeStyle = colors.accent;
  for (const [r, c] of selected) ctx.strokeRect(c * cell + 1, r * cell + 1, cell - 2, cell - 2);
  if (hover) {
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 2]);
    ctx.strokeStyle = colors.foreground;
    ctx.strokeRect(hover[1] * cell + 0.5, hover[0] * cell + 0.5, cell - 1, cell - 1);
    ctx.setLineDash([]);
  }
}
