/**
 * Axis labels of a heatmap, as DOM text (tokenizer output is data: textContent only). Column
 * labels turn vertical when a cell is narrower than a label; labels are thinned to one every
 * `stride` cells when cells are smaller than a line of text, and the label of a hovered cell can
 * always be shown with `highlight`.
 */

export interface AxisOptions {
  /** Pixels per cell along the axis. */
  cell: number;
  /** Smallest distance between two shown labels, in pixels (a line of text). */
  minSpacing?: number;
  /** Characters a label keeps before it is cut with "…" (its full text stays in `title`). */
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
  /** Mark the label at `index` (-1: none), showing it even if thinning hid it. */
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
  const maxChars = options.maxChars ?? 14;
  const element = document.createElement("div");
  element.className = `hl-axis hl-axis-${kind}`;
  const vertical = kind === "columns" && cell < 28;
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
  parent.appendChild(element);
  let current = -1;
  return {
    element,
    stride,
    highlight(index: number) {
      if (current >= 0 && items[current]) {
        items[current].classList.remove("hl-axis-focus");
        items[current].hidden = current % stride !== 0;
      }
      current = index;
      if (index >= 0 && items[index]) {
        items[index].classList.add("hl-axis-focus");
        items[index].hidden = false;
      }
    },
  };
}

/** Row labels (one per row of `cell` px), right-aligned, left of a heatmap. */
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
