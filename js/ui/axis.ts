/**
 * Axis labels of a heatmap, as DOM text (tokenizer output is data: textContent only). Column
 * labels turn vertical when a cell is narrower than a label; labels are thinned to one every
 * `stride` cells when cells are smaller than a line of text, and the label of a hovered cell can
 * always be shown with `highlight` (one focus label laid over the others).
 */
import { setText } from "./text";

export interface AxisOptions {
  /** Pixels per cell along the axis. */
  cell: number;
  /** Smallest distance between two shown labels, in pixels (a line of text). */
  minSpacing?: number;
  /** Characters a label keeps before it is cut with "…" (its full text stays in `title`);
   * 14, or 10 for vertical column labels. */
  maxChars?: number;
}

/** Show one label every `stride` cells so labels are at least `minSpacing` pixels apart. */
export function labelStride(cell: number, minSpacing = 12): number {
  return Math.max(1, Math.ceil(minSpacing / Math.max(1, cell)));
}

export function shorten(text: string, maxChars: number): string {
  const chars = [...text];
  return chars.length <= maxChars ? text : `${chars.slice(0, Math.max(1, maxChars - 1)).join("")}…`;
}

export interface Axis {
  element: HTMLElement;
  /** Show the label at `index` (-1: none) in the focus label, even where thinning hid it. */
  highlight(index: number): void;
  stride: number;
}

function build(
  kind: "rows" | "columns",
  parent: HTMLElement,
  labels: readonly string[],
  options: AxisOptions,
): Axis {
  const { cell } = options;
  const stride = labelStride(cell, options.minSpacing);
  const element = document.createElement("div");
  element.className = `hl-axis hl-axis-${kind}`;
  const vertical = kind === "columns" && cell < 28;
  // Vertical labels run down a 6.5em band: 10 characters fit it whole.
  const maxChars = options.maxChars ?? (vertical ? 10 : 14);
  if (vertical) element.classList.add("hl-axis-vertical");
  const along = labels.length * cell;
  if (kind === "columns") element.style.width = `${along}px`;
  else element.style.height = `${along}px`;
  const items: HTMLElement[] = [];
  labels.forEach((text, i) => {
    const item = document.createElement("span");
    item.className = "hl-axis-label";
    item.textContent = shorten(text, maxChars);
    item.title = text;
    item.dataset.index = String(i);
    // A label takes the room of its `stride` cells (at least a line), so thinned labels are
    // whole and never overlap.
    const room = `${Math.max(cell * stride, 12)}px`;
    const pos = `${i * cell}px`;
    if (kind === "columns") {
      item.style.left = pos;
      item.style.width = vertical ? room : `${Math.max(cell * stride, cell)}px`;
      if (vertical) item.style.lineHeight = room;
    } else {
      item.style.top = pos;
      item.style.height = room;
      item.style.lineHeight = room;
    }
    if (i % stride !== 0) item.hidden = true;
    element.appendChild(item);
    items.push(item);
  });
  // The hovered label is one more element laid over its cell, moved by a transform and
  // re-texted: hovering changes neither the labels' visibility nor the layout of anything but
  // that label. It sits in a box of its own beside the axis (over it, in the parent, which is
  // positioned): a layout boundary, and a repaint that leaves the axis and its labels as painted.
  const focusBox = document.createElement("div");
  focusBox.className = `hl-axis-focus-box hl-axis-focus-${kind}`;
  if (vertical) focusBox.classList.add("hl-axis-focus-vertical");
  focusBox.hidden = true;
  const focus = document.createElement("div");
  focus.className = "hl-axis-focus";
  if (kind === "columns") {
    focus.style.width = items[0]?.style.width ?? `${cell}px`;
    if (vertical) focus.style.lineHeight = items[0]?.style.lineHeight ?? "";
  } else {
    focus.style.height = items[0]?.style.height ?? `${cell}px`;
    focus.style.lineHeight = focus.style.height;
  }
  focusBox.appendChild(focus);
  parent.append(element, focusBox);
  let current = -1;
  return {
    element,
    stride,
    highlight(index: number) {
      if (index === current) return;
      current = index;
      const shown = index >= 0 && index < labels.length;
      if (focusBox.hidden === shown) focusBox.hidden = !shown;
      if (!shown) return;
      setText(focus, items[index].textContent ?? "");
      focus.dataset.index = String(index);
      const at = `${index * cell}px`;
      focus.style.transform = kind === "columns" ? `translateX(${at})` : `translateY(${at})`;
    },
  };
}

/** Row labels (one per row of `cell` px), right-aligned, left of a heatmap; `parent` is
 * positioned (the hovered label is laid over the axis in it). */
export function rowAxis(
  parent: HTMLElement,
  labels: readonly string[],
  options: AxisOptions,
): Axis {
  return build("rows", parent, labels, options);
}

/** Column labels under or above a heatmap; vertical when cells are narrow. */
export function columnAxis(
  parent: HTMLElement,
  labels: readonly string[],
  options: AxisOptions,
): Axis {
  return build("columns", parent, labels, options);
}
