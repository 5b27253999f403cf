import { describe, expect, it } from "vitest";
import { LruCache } from "../views/common";
import type { ColorScale } from "./colormap";
import { cellAt, cellSize, paintHeatmap, poolMax } from "./heatmap";

describe("heatmap layout", () => {
  it("sizes cells to fit the target, within min and max", () => {
    expect(cellSize(6, 480)).toBe(40);
    expect(cellSize(16, 480)).toBe(30);
    expect(cellSize(512, 480)).toBe(1);
    expect(cellSize(0, 480)).toBe(40);
    expect(cellSize(566, 480, 40, 3)).toBe(3);
    // n * cell stays under the canvas limit, whatever the minimum asks.
    expect(cellSize(4000, 480, 40, 8)).toBe(4);
  });
});

describe("LruCache", () => {
  it("keeps the most recently used entries", () => {
    const cache = new LruCache<number, string>(2);
    cache.set(1, "a");
    cache.set(2, "b");
    cache.get(1);
    cache.set(3, "c");
    expect(cache.keys()).toEqual([1, 3]);
    expect(cache.get(2)).toBeUndefined();
  });
});

/** A canvas stand-in that keeps the ImageData it is given (happy-dom has no 2D context). */
function fakeCanvas() {
  let put: { data: Uint8ClampedArray; width: number } | undefined;
  const ctx = {
    createImageData: (w: number, h: number) => ({
      data: new Uint8ClampedArray(w * h * 4),
      width: w,
    }),
    putImageData: (image: { data: Uint8ClampedArray; width: number }) => {
      put = image;
    },
  };
  const canvas = {
    width: 0,
    height: 0,
    dataset: {} as Record<string, string>,
    getContext: () => ctx,
    getBoundingClientRect: () => ({ left: 10, top: 20, width: 0, height: 0 }),
  };
  return { canvas: canvas as unknown as HTMLCanvasElement, image: () => put };
}

const SCALE: ColorScale = {
  kind: "diverging",
  lo: -1,
  hi: 1,
  gamma: 1,
  background: [255, 255, 255],
  positive: [0, 0, 255],
  negative: [255, 0, 0],
  masked: [200, 200, 200],
  missing: [100, 100, 100],
};

describe("paintHeatmap", () => {
  it("blends each cell from the background towards the sign's colour, opaque", () => {
    const { canvas, image } = fakeCanvas();
    // 2 x 3 block starting at offset 1 of the array.
    const values = new Float32Array([9, 0, 0.5, 1, -1, -0.25, 0.75]);
    paintHeatmap(canvas, values, 1, 2, 3, 2, SCALE);
    expect([canvas.width, canvas.height]).toEqual([6, 4]);
    const data = image()?.data as Uint8ClampedArray;
    const px = (x: number, y: number) =>
      Array.from(data.slice((y * 6 + x) * 4, (y * 6 + x) * 4 + 4));
    expect(px(0, 0)).toEqual([255, 255, 255, 255]); // zero is the background
    expect(px(3, 1)).toEqual([128, 128, 255, 255]); // cell (0, 1) = 0.5
    expect(px(5, 0)).toEqual([0, 0, 255, 255]);
    expect(px(0, 2)).toEqual([255, 0, 0, 255]);
    expect(px(3, 3)).toEqual([255, 191, 191, 255]); // -0.25
    expect(JSON.parse(canvas.dataset.colormap ?? "{}").hi).toBe(1);
  });

  it("draws masked and missing cells differently from zero", () => {
    const { canvas, image } = fakeCanvas();
    const values = new Float32Array([0, 0, Number.NaN, 0]);
    paintHeatmap(canvas, values, 0, 2, 2, 1, SCALE, { mask: "upper" });
    const data = image()?.data as Uint8ClampedArray;
    const px = (i: number) => Array.from(data.slice(i * 4, i * 4 + 3));
    expect(px(0)).toEqual([255, 255, 255]);
    expect(px(1)).toEqual([200, 200, 200]); // key 1 > query 0: masked
    expect(px(2)).toEqual([100, 100, 100]); // NaN: not computed
    expect(px(3)).toEqual([255, 255, 255]);
  });

  it("maps mouse positions to cells", () => {
    const { canvas } = fakeCanvas();
    canvas.width = 30;
    canvas.height = 30;
    expect(cellAt(canvas, 10 + 25, 20 + 5, 10, 3, 3)).toEqual([0, 2]);
    expect(cellAt(canvas, 5, 5, 10, 3, 3)).toBeNull();
  });
});

describe("poolMax", () => {
  it("keeps the value of largest magnitude of each bin, sign included", () => {
    // 4 x 4 -> 2 x 2
    const values = new Float32Array([0.1, 0.2, 0, 0, 0.9, 0.3, 0, -0.7, 0, 0, 0, 0, 0, 0, 0.05, 0]);
    const pooled = poolMax(values, 0, 4, 4, 2, 2);
    expect(Array.from(pooled.values)).toEqual([
      Math.fround(0.9),
      Math.fround(-0.7),
      0,
      Math.fround(0.05),
    ]);
  });

  it("leaves masked cells out and flags bins that are all masked", () => {
    const values = new Float32Array([0.2, 9, 9, 9, 0.1, 0.3, 9, 9, 0, 0, 0.4, 9, 0, 0, 0, 0.5]);
    const pooled = poolMax(values, 0, 4, 4, 2, 2, "upper");
    expect(pooled.values[1]).toBe(0);
    expect(Array.from(pooled.masked)).toEqual([0, 1, 0, 0]);
    expect(pooled.values[0]).toBeCloseTo(0.3);
  });
});
