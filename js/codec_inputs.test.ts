import { describe, expect, it } from "vitest";
import { decodeTensor } from "./codec";

describe("decodeTensor inputs from different hosts", () => {
  it("accepts any typed-array view of the bytes (html-manager hands over other views)", () => {
    const bytes = new Uint8Array(new Float32Array([1.5, -2]).buffer);
    const asInt8 = new Int8Array(bytes.buffer);
    expect(
      Array.from(decodeTensor({ data: asInt8 as any, dtype: "float32", shape: [2] }).values),
    ).toEqual([1.5, -2]);
  });

  it("says what it got when the data is not bytes", () => {
    expect(() => decodeTensor({ data: { a: 1 } as any, dtype: "float32", shape: [1] })).toThrow(
      /must be bytes, got \[object Object\] with keys a/,
    );
  });
});
