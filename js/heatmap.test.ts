import { describe, expect, it } from "vitest";
import { alphaFor, cellAt, cellSize, maxAbs, paintHeatmap } from "./heatmap";
import { LruCache } from "./views/common";

describe("heatmap layout", () => {
  it("encodes |value| / scale as alpha", () => {
    expect(alphaFor(0, 1)).toBe(0);
    expect(alphaFor(1, 1)).toBe(255);
    expect(alphaFor(0.5, 1)).toBe(128);
    expect(alphaFor(-2, 4)).toBe(128);
    expect(alphaFor(3, 1)).toBe(255);
    expect(alphaFor(Number.NaN, 1)).toBe(0);
  });

  it("sizes cells to fit the target, at least one pixel", () => {
    expect(cellSize(6, 480)).toBe(40);
    expect(cellSize(16, 480)).toBe(30);
    expect(cellSize(512, 480)).toBe(1);
    expect(cellSize(0, 480)).toBe(40);
  });

  it("scales signed data by its largest magnitude", () => {
    expect(maxAbs(new Float32Array([0.5, -3, 2]))).toBe(3);
    expect(maxAbs(new Float32Array([0, 0]))).toBe(1);
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
    getContext: () => ctx,
    getBoundingClientRect: () => ({ left: 10, top: 20, width: 0, height: 0 }),
  };
  return { canvas: canvas as unknown as HTMLCanvasElement, image: () => put };
}

describe("paintHeatmap", () => {
  const colors = {
    positive: [10, 20, 30] as [number, number, number],
    negative: [200, 0, 1] as [number, number, number],
  };

  it("writes RGBA per cell, alpha = |v| / scale, sign picks the colour", () => {
    const { canvas, image } = fakeCanvas();
    // 2 x 3 block starting at offset 1 of the array.
    const values = new Float32Array([9, 0, 0.5, 1, -1, -0.25, 0.75]);
    paintHeatmap(canvas, values, 1, 2, 3, 2, 1, colors);
    expect([canvas.width, canvas.height]).toEqual([6, 4]);
    const data = image()?.data as Uint8ClampedArray;
    const px = (x: number, y: number) =>
      Array.from(data.slice((y * 6 + x) * 4, (y * 6 + x) * 4 + 4));
    expect(px(0, 0)).toEqual([10, 20, 30, 0]);
    expect(px(3, 1)).toEqual([10, 20, 30, 128]); // cell (0, 1), second pixel row and column
    expect(px(5, 0)).toEqual([10, 20, 30, 255]);
    expect(px(0, 2)).toEqual([200, 0, 1, 255]);
    expect(px(3, 3)).toEqual([200, 0, 1, 64]);
    expect(px(5, 3)).toEqual([10, 20, 30, 191]);
  });

  it("maps mouse positions to cells", () => {
    const { canvas } = fakeCanvas();
    canvas.width = 30;
    canvas.height = 30;
    expect(cellAt(canvas, 10 + 25, 20 + 5, 10, 3, 3)).toEqual([0, 2]);
    expect(cellAt(canvas, 5, 5, 10, 3, 3)).toBeNull();
  });
});
