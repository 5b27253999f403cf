/**
 * A labelled heatmap: the canvas and its hover overlay inside a scrolling frame, row labels on
 * the left and column labels on top, both sticky so they stay in view while the map scrolls, and
 * axis titles. `setCell` rebuilds the labels for a new zoom.
 */
import { type Axis, columnAxis, rowAxis } from "./axis";

export interface PlotOptions {
  rowLabels: readonly string[];
  columnLabels: readonly string[];
  /** e.g. "query" / "layer". */
  rowTitle?: string;
  columnTitle?: string;
  className?: string;
  /** Most pixels the frame takes before it scrolls. */
  maxHeight?: number;
}

export interface Plot {
  element: HTMLElement;
  frame: HTMLElement;
  canvas: HTMLCanvasElement;
  overlay: HTMLCanvasElement;
  rows: Axis;
  columns: Axis;
  setCell(cell: number): void;
  /** New labels (another heatmap in the same plot); takes effect at the next `setCell`. */
  setLabels(rowLabels: readonly string[], columnLabels: readonly string[]): void;
  /** Bold the labels of the hovered row and column (-1: none). */
  highlight(row: number, col: number): void;
}

export function createPlot(parent: HTMLElement, options: PlotOptions): Plot {
  const element = document.createElement("div");
  element.className = `hl-plot-box ${options.className ?? ""}`.trim();
  parent.appendChild(element);
  if (options.columnTitle) {
    const title = document.createElement("div");
    title.className = "hl-axis-title hl-axis-title-columns";
    title.textContent = `${options.columnTitle} →`;
    element.appendChild(title);
  }
  const frame = document.createElement("div");
  frame.className = "hl-frame";
  if (options.maxHeight) frame.style.maxHeight = `${options.maxHeight}px`;
  element.appendChild(frame);
  const grid = document.createElement("div");
  grid.className = "hl-plot";
  frame.appendChild(grid);
  const corner = document.createElement("div");
  corner.className = "hl-plot-corner";
  corner.textContent = options.rowTitle ? `${options.rowTitle} ↓` : "";
  const top = document.createElement("div");
  top.className = "hl-plot-top";
  const left = document.createElement("div");
  left.className = "hl-plot-left";
  const stack = document.createElement("div");
  stack.className = "hl-heatmap-stack";
  const canvas = document.createElement("canvas");
  canvas.className = "hl-heatmap";
  const overlay = document.createElement("canvas");
  overlay.className = "hl-overlay";
  stack.append(canvas, overlay);
  grid.append(corner, top, left, stack);

  let rowLabels = options.rowLabels;
  let columnLabels = options.columnLabels;
  const plot: Plot = {
    element,
    frame,
    canvas,
    overlay,
    rows: rowAxis(left, [], { cell: 1 }),
    columns: columnAxis(top, [], { cell: 1 }),
    setCell(cell: number) {
      left.replaceChildren();
      top.replaceChildren();
      plot.rows = rowAxis(left, rowLabels, { cell });
      plot.columns = columnAxis(top, columnLabels, { cell });
    },
    setLabels(rows, columns) {
      rowLabels = rows;
      columnLabels = columns;
    },
    highlight(row: number, col: number) {
      plot.rows.highlight(row);
      plot.columns.highlight(col);
    },
  };
  return plot;
}
