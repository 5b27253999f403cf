/**
 * Zoom of a heatmap: the cell size in canvas pixels, stepped through fixed levels, starting at
 * the size that fits the view but never below a legible minimum (the map then scrolls inside its
 * frame). The control is three buttons: −, fit, +.
 */
import { cellSize } from "./heatmap";

export const ZOOM_LEVELS = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40];

/** The next level up (`+1`) or down (`-1`) from `cell`, capped so `n * cell` <= 16384 px. */
export function stepZoom(cell: number, direction: 1 | -1, n: number): number {
  const cap = Math.max(1, Math.floor(16384 / Math.max(1, n)));
  const levels = ZOOM_LEVELS.filter((l) => l <= cap);
  if (direction > 0) return levels.find((l) => l > cell) ?? levels[levels.length - 1] ?? cell;
  return [...levels].reverse().find((l) => l < cell) ?? levels[0] ?? cell;
}

export interface ZoomOptions {
  /** Cells along the longer axis. */
  n: number;
  /** Pixels the map should fit in. */
  target: number;
  /** Smallest cell the first screen uses (legibility); the user may zoom out further. */
  min: number;
  max?: number;
}

export class Zoom {
  readonly element: HTMLElement;
  cell: number;
  readonly fit: number;

  constructor(
    parent: HTMLElement,
    private readonly options: ZoomOptions,
    private readonly onChange: (cell: number) => void,
  ) {
    this.fit = cellSize(options.n, options.target, options.max ?? 40, options.min);
    this.cell = this.fit;
    this.element = document.createElement("span");
    this.element.className = "hl-zoom";
    const button = (text: string, title: string, action: () => number) => {
      const b = document.createElement("button");
      b.className = "hl-zoom-button";
      b.textContent = text;
      b.title = title;
      b.addEventListener("click", () => this.set(action()));
      this.element.appendChild(b);
      return b;
    };
    button("−", "zoom out", () => stepZoom(this.cell, -1, options.n));
    button("fit", "cells sized to fit", () => this.fit);
    button("+", "zoom in", () => stepZoom(this.cell, 1, options.n));
    parent.appendChild(this.element);
  }

  set(cell: number): void {
    if (cell === this.cell) return;
    this.cell = cell;
    this.onChange(cell);
  }

  get n(): number {
    return this.options.n;
  }
}
