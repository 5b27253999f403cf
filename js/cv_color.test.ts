import { describe, expect, it } from "vitest";
import { blend, combine, headColor, signedColor, signedFraction } from "./views/cv_color";

describe("CircuitsVis' signed scale", () => {
  it("scales positives by max and negatives by min, clamped", () => {
    expect(signedFraction(2, -4, 8)).toBe(0.25);
    expect(signedFraction(-1, -4, 8)).toBe(0.25);
    expect(signedFraction(16, -4, 8)).toBe(1);
    expect(signedFraction(-1, 2, 8)).toBe(0); // no negative range: drawn blank
    expect(signedFraction(0, 0, 0)).toBe(0);
    expect(signedColor(-2, -4, 8, [1, 2, 3], [4, 5, 6])).toBe("rgba(1, 2, 3, 0.500)");
  });
});

describe("head colours", () => {
  it("spreads hues and mixes heads by the colour furthest from the background", () => {
    expect(headColor(0, 3)).toEqual([217, 38, 38]);
    expect(new Set([0, 1, 2].map((h) => headColor(h, 3).join())).size).toBe(3);
    expect(blend([255, 255, 255], [0, 100, 200], 0.5)).toEqual([127.5, 177.5, 227.5]);
    expect(combine([255, 255, 255], [[200, 250, 10], [100, 255, 50]])).toEqual([100, 250, 10]);
    expect(combine([0, 0, 0], [])).toEqual([0, 0, 0]);
  });
});
