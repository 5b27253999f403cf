import { describe, expect, it } from "vitest";
import { decodeTensor, halfToFloat } from "./codec";

describe("decodeTensor", () => {
  it("honours the byteOffset of a DataView into a larger buffer", () => {
    const backing = new ArrayBuffer(4 + 3 * 4);
    new Float32Array(backing, 4, 3).set([1.5, -2, 3.25]);
    const view = new DataView(backing, 4, 12);
    const tensor = decodeTensor({ data: view, dtype: "float32", shape: [3] });
    expect(Array.from(tensor.values)).toEqual([1.5, -2, 3.25]);
    expect(tensor.shape).toEqual([3]);
  });

  it("decodes unaligned float32 data", () => {
    const backing = new Uint8Array(1 + 8);
    const floats = new Uint8Array(new Float32Array([0.25, 7]).buffer);
    backing.set(floats, 1);
    const tensor = decodeTensor({
      data: new DataView(backing.buffer, 1, 8),
      dtype: "float32",
      shape: [2],
    });
    expect(Array.from(tensor.values)).toEqual([0.25, 7]);
  });

  it("widens float16 to float32", () => {
    // 0x3c00 = 1, 0xc000 = -2, 0x3555 ~ 0.33325, 0x0001 = smallest subnormal
    const halves = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001]);
    const tensor = decodeTensor({ data: halves.buffer, dtype: "float16", shape: [2, 2] });
    expect(tensor.values[0]).toBe(1);
    expect(tensor.values[1]).toBe(-2);
    expect(tensor.values[2]).toBeCloseTo(0.33325, 5);
    expect(tensor.values[3]).toBeCloseTo(2 ** -24, 30);
  });

  it("rejects a buffer whose size does not match the shape", () => {
    expect(() => decodeTensor({ data: new ArrayBuffer(8), dtype: "float32", shape: [3] })).toThrow(
      /needs 12 bytes, got 8/,
    );
  });
});

describe("halfToFloat", () => {
  it("handles infinities and NaN", () => {
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(halfToFloat(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });
});
