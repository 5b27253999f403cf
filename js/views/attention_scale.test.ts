import { describe, expect, it } from "vitest";
import { headScale } from "./attention";

describe("attention scales", () => {
  // One head, 3 tokens: a sink on key 0.
  const values = new Float32Array([1, 0, 0, 0.8, 0.2, 0, 0.6, 0.1, 0.3]);
  it("skip_first: 0 to the largest value outside key 0", () => {
    const s = headScale(values, 0, 3, "skip_first", { min: -1, max: 1 });
    expect([s.kind, s.lo, s.hi]).toEqual(["sequential", 0, Math.fround(0.3)]);
    expect(s.values).toBe(values);
  });
  it("per_row: each row over its own largest value outside key 0", () => {
    const s = headScale(values, 0, 3, "per_row", { min: -1, max: 1 });
    expect(s.hi).toBe(1);
    expect(s.values[4]).toBeCloseTo(1); // row 1: 0.2 / 0.2
    expect(s.values[3]).toBeCloseTo(4); // the sink clips above 1
    expect(s.values[8]).toBeCloseTo(1); // row 2: 0.3 / 0.3
    expect(s.values[7]).toBeCloseTo(1 / 3);
  });
  it("fixed: CircuitsVis' min_value / max_value, diverging", () => {
    const s = headScale(values, 0, 3, "fixed", { min: -0.5, max: 0.5 });
    expect([s.kind, s.lo, s.hi]).toEqual(["diverging", -0.5, 0.5]);
  });
});
