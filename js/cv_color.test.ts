import { describe, expect, it } from "vitest";
import { blend, combine, headColor, textOn } from "./views/cv_color";

describe("head colours", () => {
  it("spreads hues and mixes heads by the colour furthest from the background", () => {
    expect(headColor(0, 3)).toEqual([217, 38, 38]);
    expect(new Set([0, 1, 2].map((h) => headColor(h, 3).join())).size).toBe(3);
    expect(blend([255, 255, 255], [0, 100, 200], 0.5)).toEqual([128, 178, 228]);
    expect(
      combine(
        [255, 255, 255],
        [
          [200, 250, 10],
          [100, 255, 50],
        ],
      ),
    ).toEqual([100, 250, 10]);
    expect(combine([0, 0, 0], [])).toEqual([0, 0, 0]);
    expect(textOn([20, 20, 20])).toBe("white");
    expect(textOn([250, 250, 250])).toBe("black");
  });
});
