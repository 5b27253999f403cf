/**
 * The legend of a heatmap: a colour bar of its scale with the range at both ends (and 0 in the
 * middle of a diverging one), a caption saying what is shown and how the range was chosen, and
 * swatches for masked / missing cells when the map has them.
 */
import { cssRgb } from "./color";
import { type ColorScale, colorOf } from "./colormap";

export interface LegendOptions {
  /** What the colours mean, e.g. "attention" or "effect (normalised)". */
  label: string;
  /** How the range was chosen, e.g. "max excluding position 0; above it clipped". */
  note?: string;
  masked?: string;
  missing?: string;
}

const BAR_PX = 120;

/** Short number for a legend end. */
export function formatTick(value: number): string {
  if (value === 0) return "0";
  const a = Math.abs(value);
  if (a >= 1e4 || a < 1e-3) return value.toExponential(1);
  if (a >= 100) return value.toFixed(0);
  if (a >= 1) return value.toFixed(2).replace(/\.?0+$/, "");
  return String(Number(value.toPrecision(2)));
}

/** An empty legend element; fill it with `updateLegend` whenever the scale changes. */
export function createLegend(parent: HTMLElement): HTMLElement {
  const legend = document.createElement("div");
  legend.className = "hl-legend";
  parent.appendChild(legend);
  return legend;
}

export function updateLegend(legend: HTMLElement, scale: ColorScale, options: LegendOptions): void {
  legend.replaceChildren();
  const label = document.createElement("span");
  label.className = "hl-legend-label";
  label.textContent = options.label;
  legend.appendChild(label);
  const lo = document.createElement("span");
  lo.className = "hl-legend-lo";
  lo.textContent = formatTick(scale.lo);
  legend.appendChild(lo);
  const bar = document.createElement("canvas");
  bar.className = "hl-legend-bar";
  bar.width = BAR_PX;
  bar.height = 1;
  const ctx = bar.getContext("2d");
  if (ctx) {
    for (let x = 0; x < BAR_PX; x++) {
      const value = scale.lo + ((x + 0.5) / BAR_PX) * (scale.hi - scale.lo);
      ctx.fillStyle = cssRgb(colorOf(scale, value));
      ctx.fillRect(x, 0, 1, 1);
    }
  }
  legend.appendChild(bar);
  const hi = document.createElement("span");
  hi.className = "hl-legend-hi";
  hi.textContent = formatTick(scale.hi);
  legend.appendChild(hi);
  if (scale.gamma !== 1) {
    const gamma = document.createElement("span");
    gamma.className = "hl-legend-note";
    gamma.textContent = `γ ${formatTick(scale.gamma)}`;
    legend.appendChild(gamma);
  }
  for (const [text, rgb, cls] of [
    [options.masked, scale.masked, "hl-legend-masked"],
    [options.missing, scale.missing, "hl-legend-missing"],
  ] as const) {
    if (!text) continue;
    const swatch = document.createElement("span");
    swatch.className = `hl-legend-swatch ${cls}`;
    swatch.style.background = cssRgb(rgb);
    legend.appendChild(swatch);
    const name = document.createElement("span");
    name.className = "hl-legend-note";
    name.textContent = text;
    legend.appendChild(name);
  }
  if (options.note) {
    const note = document.createElement("span");
    note.className = "hl-legend-note";
    note.textContent = options.note;
    legend.appendChild(note);
  }
  legend.dataset.kind = scale.kind;
  legend.dataset.lo = String(scale.lo);
  legend.dataset.hi = String(scale.hi);
  legend.dataset.gamma = String(scale.gamma);
}
