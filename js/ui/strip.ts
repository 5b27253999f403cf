/**
 * Token backgrounds painted on one canvas behind a strip of token spans. Recolouring a strip of
 * 1024 tokens is then one small canvas paint, not a style change on every span (each a style
 * recalc, and a repaint and re-raster of the strip's text). The spans stay the text (and what a
 * pointer hits); the canvas under them holds their colours, at each span's box, remeasured when
 * the strip's size (and so its wrapping) changes. The canvas is the size of the strip's visible
 * area and follows its scrolling: a hover paints (and hands the compositor) only what is in view.
 *
 * A painted strip's spans have no margin: the gap between two tokens is 1px of their own padding
 * that the painter leaves unpainted (`GAP`), so the strip lays out as `.hl-token`'s 1px margin
 * would. Gaps between the spans' boxes cost the compositor: with them, each hover's frame spent
 * several milliseconds deciding the strip's layers at 1024 tokens.
 */

/** Unpainted padding on each side of a painted span (its margin's place). */
const GAP = 1;

export class StripPainter {
  readonly canvas: HTMLCanvasElement;
  private boxes: Float64Array | null = null;
  private colours: readonly string[] = [];
  private focus = -1;
  private accent = "";
  private readonly observer: ResizeObserver | undefined;
  /** The strip's scroll offset (left, top) when the canvas was last placed. */
  private scroll: [number, number] = [0, 0];
  private scrollFrame = false;

  constructor(
    private readonly strip: HTMLElement,
    private readonly spans: readonly HTMLElement[],
  ) {
    strip.classList.add("hl-painted-strip");
    this.canvas = document.createElement("canvas");
    this.canvas.className = "hl-strip-canvas";
    this.canvas.width = 0;
    this.canvas.height = 0;
    strip.prepend(this.canvas);
    const remeasure = () => {
      this.boxes = null;
      this.repaint();
    };
    if (typeof ResizeObserver === "function") {
      this.observer = new ResizeObserver(remeasure);
      this.observer.observe(strip);
    }
    // The canvas covers what is in view (a strip of 1024 tokens scrolls): a scroll moves it and
    // paints what came into view, once per frame.
    strip.addEventListener(
      "scroll",
      () => {
        if (this.scrollFrame) return;
        this.scrollFrame = true;
        requestAnimationFrame(() => {
          this.scrollFrame = false;
          this.scrolled();
          this.repaint();
        });
      },
      { passive: true },
    );
    // Web fonts arriving later change the spans' widths without resizing the strip.
    if (typeof document !== "undefined") document.fonts?.ready.then(remeasure, () => {});
  }

  /**
   * Paint span `i` in `colours[i]` (any CSS colour; "" leaves it unpainted) and outline span
   * `focus` (-1: none) in `accent`, an outline drawn here too: toggling a CSS outline on one span
   * would repaint the whole strip's text.
   */
  paint(colours: readonly string[], focus = -1, accent = ""): void {
    this.colours = colours;
    this.focus = focus;
    this.accent = accent;
    this.repaint();
  }

  /** The colour span `i` is painted in ("" when none). */
  colourOf(i: number): string {
    return this.colours[i] ?? "";
  }

  dispose(): void {
    this.observer?.disconnect();
  }

  /** Each span's box (left, top, width, height) in the strip's content coordinates; the canvas
   * sized to the strip's visible area. */
  private measure(): Float64Array {
    const boxes = new Float64Array(this.spans.length * 4);
    this.spans.forEach((span, i) => {
      boxes[4 * i] = span.offsetLeft;
      boxes[4 * i + 1] = span.offsetTop;
      boxes[4 * i + 2] = span.offsetWidth;
      boxes[4 * i + 3] = span.offsetHeight;
    });
    const width = this.strip.clientWidth;
    const height = this.strip.clientHeight;
    if (this.canvas.width !== width) this.canvas.width = width;
    if (this.canvas.height !== height) this.canvas.height = height;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.scrolled();
    return boxes;
  }

  /** Keep the canvas over the strip's visible area (it scrolls with the content otherwise). */
  private scrolled(): void {
    this.scroll = [this.strip.scrollLeft, this.strip.scrollTop];
    this.canvas.style.transform = `translate(${this.scroll[0]}px, ${this.scroll[1]}px)`;
  }

  private repaint(): void {
    if (this.colours.length === 0) return;
    if (!this.boxes) this.boxes = this.measure();
    const boxes = this.boxes;
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    // Only the spans in view, in the canvas' coordinates; one fill style per colour (strips
    // repeat few colours), plain rectangles.
    const [left, top] = this.scroll;
    const inView = (i: number) =>
      boxes[4 * i + 2] > 0 &&
      boxes[4 * i + 1] < top + height &&
      boxes[4 * i + 1] + boxes[4 * i + 3] > top &&
      boxes[4 * i] < left + width &&
      boxes[4 * i] + boxes[4 * i + 2] > left;
    const byColour = new Map<string, number[]>();
    for (let i = 0; i < this.spans.length; i++) {
      const colour = this.colours[i];
      if (!colour || !inView(i)) continue;
      const list = byColour.get(colour);
      if (list) list.push(i);
      else byColour.set(colour, [i]);
    }
    for (const [colour, list] of byColour) {
      ctx.fillStyle = colour;
      for (const i of list) {
        const [x, y, w, h] = [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]];
        ctx.fillRect(x - left + GAP, y - top + GAP, w - 2 * GAP, h - 2 * GAP);
      }
    }
    const f = this.focus;
    if (f >= 0 && f < this.spans.length && this.accent && inView(f)) {
      ctx.strokeStyle = this.accent;
      ctx.lineWidth = 1;
      const [x, y, w, h] = [boxes[4 * f], boxes[4 * f + 1], boxes[4 * f + 2], boxes[4 * f + 3]];
      ctx.strokeRect(x - left + GAP - 0.5, y - top + GAP - 0.5, w - 2 * GAP + 1, h - 2 * GAP + 1);
    }
  }
}
