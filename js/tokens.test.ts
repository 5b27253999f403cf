// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { tokenSpan, visibleToken } from "./tokens";

describe("visibleToken", () => {
  it("makes whitespace visible", () => {
    expect(visibleToken(" the\n")).toBe("·the⏎");
    expect(visibleToken("\t")).toBe("⇥");
    expect(visibleToken("")).toBe("∅");
  });
});

describe("tokenSpan", () => {
  it("renders markup-looking tokens as text", () => {
    const span = tokenSpan("<img src=x onerror=alert(1)>");
    expect(span.children.length).toBe(0);
    expect(span.textContent).toBe("<img·src=x·onerror=alert(1)>");
  });
});

describe("appendTokens", () => {
  it("breaks the line after a newline token", async () => {
    const { appendTokens } = await import("./tokens");
    const parent = document.createElement("div");
    const spans = appendTokens(parent, ["a", "\n", "b"]);
    expect(spans.map((s) => s.dataset.index)).toEqual(["0", "1", "2"]);
    expect([...parent.childNodes].map((n) => n.nodeName)).toEqual(["SPAN", "SPAN", "BR", "SPAN"]);
  });
});
