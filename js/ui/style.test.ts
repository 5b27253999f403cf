// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { ensureStyle } from "./style";

describe("ensureStyle", () => {
  it("puts the stylesheet in the document once for views in the document", () => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    ensureStyle(el);
    ensureStyle(el);
    expect(document.head.querySelectorAll("style#hooklens-style").length).toBe(1);
  });

  it("puts it in the shadow root of a view rendered inside one (marimo), once per root", () => {
    const host = document.createElement("div");
    document.body.appendChild(host);
    const shadow = host.attachShadow({ mode: "open" });
    const first = document.createElement("div");
    const second = document.createElement("div");
    shadow.append(first, second);
    ensureStyle(first);
    ensureStyle(second);
    const styles = shadow.querySelectorAll("style#hooklens-style");
    expect(styles.length).toBe(1);
    expect(styles[0]?.textContent).toContain(".hooklens");
  });

  it("waits until a view attached after render is in its tree", async () => {
    const host = document.createElement("div");
    document.body.appendChild(host);
    const shadow = host.attachShadow({ mode: "open" });
    const el = document.createElement("div");
    ensureStyle(el);
    await new Promise((resolve) => requestAnimationFrame(resolve));
    await new Promise((resolve) => requestAnimationFrame(resolve));
    shadow.appendChild(el);
    await new Promise((resolve) => requestAnimationFrame(resolve));
    expect(shadow.querySelectorAll("style#hooklens-style").length).toBe(1);
  });
});
