/**
 * The value under the cursor, drawn at once next to it (the browser's `title` tooltip waits about
 * a second and cannot be styled). One element per view, positioned `fixed`, never catching the
 * mouse; text only.
 */

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
    el.replaceChildren();
    for (const line of lines) {
      const div = document.createElement("div");
      div.textContent = line;
      el.appendChild(div);
    }
    el.hidden = false;
    // Below-right of the cursor, flipped to stay inside the window. The size is the one
    // measured after the previous frame: reading it now would force a layout on every move.
    const { width, height } = this.size;
    const vw = typeof window !== "undefined" ? window.innerWidth : 1e4;
    const vh = typeof window !== "undefined" ? window.innerHeight : 1e4;
    const x = clientX + 14 + width > vw ? clientX - 10 - width : clientX + 14;
    const y = clientY + 16 + height > vh ? clientY - 10 - height : clientY + 16;
    el.style.left = `${Math.max(0, x)}px`;
    el.style.top = `${Math.max(0, y)}px`;
    if (!this.measuring && typeof requestAnimationFrame === "function") {
      this.measuring = true;
      requestAnimationFrame(() => {
        this.measuring = false;
        this.size = { width: el.offsetWidth, height: el.offsetHeight };
      });
    }
  }

  private size = { width: 160, height: 48 };
  private measuring = false;

  hide(): void {
    this.element.hidden = true;
  }

  get text(): string {
    return this.element.textContent ?? "";
  }
}
