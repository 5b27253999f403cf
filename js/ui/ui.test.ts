// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { columnAxis, labelStride, rowAxis, shorten } from "./axis";
import { blend, luminance, parseColor } from "./color";
import { type ColorScale, colorOf, normalize, rangeOf, valueOfColor } from "./colormap";
import { createLegend, formatTick, updateLegend } from "./legend";
import { colorScale, readTheme, tint } from "./theme";
import { Tooltip } from "./tooltip";
import { stepZoom } from "./zoom";

const base = {
  gamma: 1,
  background: [30, 30, 30],
  positive: [96, 165, 250],
  negative: [248, 113, 113],
  masked: [60, 60, 60],
  missing: [90, 90, 90],
} as const;
const seq: ColorScale = { ...base, kind: "sequential", lo: 0, hi: 2 } as unknown as ColorScale;
const div: ColorScale = { ...base, kind: "diverging", lo: -4, hi: 2 } as unknown as ColorScale;

describe("colours", () => {
  it("parses hex, rgb() and names", () => {
    expect(parseColor("#f00")).toEqual([255, 0, 0]);
    expect(parseColor("#2563eb")).toEqual([37, 99, 235]);
    expect(parseColor("rgb(1, 2, 3)")).toEqual([1, 2, 3]);
    expect(parseColor("rgba(4,5,6,0.5)")).toEqual([4, 5, 6]);
    expect(parseColor("Blue")).toEqual([0, 0, 255]);
    expect(parseColor("")).toBeNull();
  });
  it("blends and measures luminance", () => {
    expect(blend([0, 0, 0], [200, 100, 50], 0.5)).toEqual([100, 50, 25]);
    expect(blend([0, 0, 0], [200, 100, 50], 2)).toEqual([200, 100, 50]);
    expect(luminance([255, 255, 255])).toBeCloseTo(1);
    expect(luminance([30, 30, 30])).toBeLessThan(0.3);
  });
});

describe("colour maps", () => {
  it("normalises sequential values into [0, 1], clipped, with gamma", () => {
    expect(normalize(seq, 1)).toBe(0.5);
    expect(normalize(seq, 5)).toBe(1);
    expect(normalize(seq, -1)).toBe(0);
    expect(normalize({ ...seq, gamma: 0.5 }, 0.5)).toBeCloseTo(0.5);
    expect(Number.isNaN(normalize(seq, Number.NaN))).toBe(true);
  });
  it("centres the diverging map on 0 with separate ends (CircuitsVis min/max)", () => {
    expect(normalize(div, 1)).toBe(0.5);
    expect(normalize(div, -1)).toBe(-0.25);
    expect(normalize(div, 0)).toBe(0);
    expect(colorOf(div, 0)).toEqual([30, 30, 30]);
    expect(colorOf(div, -4)).toEqual([248, 113, 113]);
    expect(colorOf(div, Number.NaN)).toEqual([90, 90, 90]);
  });
  it("reads a colour back to its value", () => {
    for (const v of [0, 0.3, 1.7]) expect(valueOfColor(seq, colorOf(seq, v))).toBeCloseTo(v, 1);
    for (const v of [-3, -0.5, 0.4, 1.9]) {
      expect(valueOfColor(div, colorOf(div, v))).toBeCloseTo(v, 1);
    }
    const g = { ...seq, gamma: 0.5 };
    expect(valueOfColor(g, colorOf(g, 0.2))).toBeCloseTo(0.2, 1);
  });
  it("finds the range, optionally without the first column", () => {
    const values = [0.8, 0.1, 0.7, 0.2, -3, 0.05];
    expect(rangeOf(values, 0, 2, 3, "sequential")).toBeCloseTo(0.8);
    expect(rangeOf(values, 0, 2, 3, "diverging")).toBe(3);
    expect(rangeOf([0.8, 0.1, 0.7, 0.2], 0, 2, 2, "sequential", { skipFirstColumn: true })).toBe(
      0.2,
    );
    expect(rangeOf([0, 0], 0, 1, 2, "sequential")).toBe(1);
  });
});

describe("theme", () => {
  it("falls back to light colours in a bare page and blends opaque tints", () => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    const theme = readTheme(el);
    expect(theme.dark).toBe(false);
    expect(theme.backgroundRgb).toEqual([255, 255, 255]);
    expect(tint(theme, 0)).toBe("rgb(255, 255, 255)");
    expect(tint(theme, 1)).toBe(`rgb(${theme.positive.join(", ")})`);
  });
  it("follows the host's background variable (dark)", () => {
    const el = document.createElement("div");
    el.style.setProperty("--jp-layout-color0", "#111111");
    document.body.appendChild(el);
    const theme = readTheme(el);
    expect(theme.dark).toBe(true);
    const scale = colorScale(theme, { kind: "diverging", hi: 2, positiveColor: "red" });
    expect(scale.lo).toBe(-2);
    expect(scale.positive).toEqual([255, 0, 0]);
    expect(scale.background).toEqual([17, 17, 17]);
    expect(scale.masked).not.toEqual(scale.background);
    expect(scale.missing).not.toEqual(scale.masked);
  });
});

describe("legend", () => {
  it("shows the range and what the swatches mean", () => {
    const parent = document.createElement("div");
    const legend = createLegend(parent);
    updateLegend(legend, div, { label: "effect", masked: "masked", missing: "not swept" });
    expect(legend.querySelector(".hl-legend-lo")?.textContent).toBe("-4");
    expect(legend.querySelector(".hl-legend-hi")?.textContent).toBe("2");
    expect(legend.dataset.kind).toBe("diverging");
    expect(legend.textContent).toContain("not swept");
    expect(formatTick(25000)).toBe("2.5e+4");
    expect(formatTick(0.4512)).toBe("0.45");
  });
});

describe("axis labels", () => {
  it("thins labels closer than a line of text and can always show the hovered one", () => {
    expect(labelStride(20)).toBe(1);
    expect(labelStride(3)).toBe(4);
    const parent = document.createElement("div");
    const labels = Array.from({ length: 10 }, (_, i) => `${i} tok`);
    const axis = rowAxis(parent, labels, { cell: 4 });
    const shown = [...axis.element.children].filter((c) => !(c as HTMLElement).hidden);
    expect(shown.map((c) => c.textContent)).toEqual(["0 tok", "3 tok", "6 tok", "9 tok"]);
    const focus = parent.querySelector(".hl-axis-focus-rows .hl-axis-focus") as HTMLElement;
    const box = focus.parentElement as HTMLElement;
    expect(box.hidden).toBe(true);
    axis.highlight(4);
    expect(box.hidden).toBe(false);
    expect(focus.textContent).toBe("4 tok");
    expect(focus.style.transform).toBe("translateY(16px)");
    expect((axis.element.children[4] as HTMLElement).hidden).toBe(true); // thinning unchanged
    axis.highlight(-1);
    expect(box.hidden).toBe(true);
  });
  it("turns column labels vertical when cells are narrow, text kept whole in the title", () => {
    const parent = document.createElement("div");
    const axis = columnAxis(parent, ["<|im_start|>"], { cell: 14, maxChars: 6 });
    expect(axis.element.classList.contains("hl-axis-vertical")).toBe(true);
    const label = axis.element.children[0] as HTMLElement;
    expect(label.textContent).toBe("<|im_…");
    expect(label.title).toBe("<|im_start|>");
    expect(shorten("abc", 5)).toBe("abc");
  });
});

describe("tooltip", () => {
  it("shows text lines at the cursor at once, as text", () => {
    const parent = document.createElement("div");
    const tip = new Tooltip(parent);
    tip.show(10, 20, ["<b>x</b>", "0.5"]);
    expect(tip.element.hidden).toBe(false);
    expect(tip.element.querySelector("b")).toBeNull();
    expect(tip.text).toBe("<b>x</b>0.5");
    expect(tip.element.style.transform).toBe("translate(24px, 36px)");
    const first = tip.element.children[0];
    tip.show(10, 20, ["a"]); // fewer lines: the first element kept, re-texted
    expect(tip.text).toBe("a");
    expect(tip.element.children[0]).toBe(first);
    tip.move(30, 40);
    expect(tip.element.style.transform).toBe("translate(44px, 56px)");
    tip.hide();
    expect(tip.element.hidden).toBe(true);
  });
});

describe("zoom", () => {
  it("steps through levels within the canvas limit", () => {
    expect(stepZoom(3, 1, 100)).toBe(4);
    expect(stepZoom(3, -1, 100)).toBe(2);
    expect(stepZoom(1, -1, 100)).toBe(1);
    expect(stepZoom(12, 1, 1024)).toBe(16);
    expect(stepZoom(16, 1, 1024)).toBe(16);
  });
});
