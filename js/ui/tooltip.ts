/**
 * The value under the cursor, drawn at once next to it (the browser's `title` tooltip waits about
 * a second and cannot be styled). One element per view, positioned `fixed` and moved by a
 * transform, never catching the mouse; text only.
 */
import { setText } from "./text";

export class Tooltip {
  readonly element: HTMLDivElement;

  constructor(parent: HTMLElement) {
    this.element = document.createElement("div");
    this.element.className = "hl-tooltip";
    this.element.hidden = true;
    this.element.setAttribute("role", "tooltip");
    parent.appendChild(this.element);
  }

  /** Show `lines` at the cursor position of `event` (client coordinates). */
  show(clientX: number, clientY: number, lines: readonly string[]): void {
    const el = this.element;
    // The line elements stay while their number does; only their text changes (and only where
    // it did), so a move re-lays out the tooltip's own text and nothing else.
    while (this.lines.length < lines.length) {
      this.lines.push(el.appendChild(document.createElement("div")));
    }
    while (this.lines.length > lines.length) this.lines.pop()?.remove();
    lines.forEach((text, i) => {
      setText(this.lines[i], text);
    });
    if (el.hidden) el.hidden = false;
    this.move(clientX, clientY);
    if (!this.measuring && typeof requestAnimationFrame === "function") {
      this.measuring = true;
      requestAnimationFrame(() => {
        this.measuring = false;
        this.size = {
          width: el.offsetWidth,
          height: el.offsetHeight,
          vw: window.innerWidth,
          vh: window.innerHeight,
        };
      });
    }
  }

  /** Follow the cursor without changing the text. */
  move(clientX: number, clientY: number): void {
    // Below-right of the cursor, flipped to stay inside the window. The size is the one
    // (and the window's) measured after the previous frame: reading them now could force a
    // layout on every move.
    const { width, height, vw, vh } = this.size;
    const x = clientX + 14 + width > vw ? clientX - 10 - width : clientX + 14;
    const y = clientY + 16 + height > vh ? clientY - 10 - height : clientY + 16;
    // Moved by a transform: no layout, and the compositor moves its layer.
    this.element.style.transform = `translate(${Math.max(0, x)}px, ${Math.max(0, y)}px)`;
  }

  private readonly lines: HTMLDivElement[] = [];
  private size = {
    width: 160,
    height: 48,
    vw: typeof window !== "undefined" ? window.innerWidth : 1e4,
    vh: typeof window !== "undefined" ? window.innerHeight : 1e4,
  };
  private measuring = false;

  hide(): void {
    if (!this.element.hidden) this.element.hidden = true;
  }

  get text(): string {
    return this.element.textContent ?? "";
  }
}
