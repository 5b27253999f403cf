// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { decodeTensor } from "./codec";
import { renderStandalonePages } from "./index";
import { RpcClient } from "./rpc";
import {
  base64ToDataView,
  createStaticModel,
  type StandalonePayload,
  withEmbeddedReplies,
} from "./standalone";

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

const half = new Uint16Array([0x3c00, 0x3800, 0x0000, 0x3c00]); // 1, 0.5, 0, 1
const PAYLOAD: StandalonePayload = {
  version: 1,
  state: {
    view: "attention",
    tokens: ["<img src=x onerror=alert(1)>", "</script>"],
    n_layers: 1,
    n_heads: 1,
    layer: 0,
    head: 0,
    query: -1,
    key: -1,
    mode: "heads",
    head_names: ["H0"],
    max_value: 1,
    min_value: -1,
    color_scale: "skip_first",
    gamma: 1,
    positive_color: "",
    negative_color: "",
    mask_upper_tri: true,
    layer_labels: ["L0"],
    title: "",
  },
  responses: {
    'attention?{"layer":0}': {
      ok: true,
      result: { layer: 0, pattern: { data: { $buffer: 0 }, dtype: "float16", shape: [1, 2, 2] } },
    },
  },
  buffers: [b64(new Uint8Array(half.buffer))],
};

describe("static model", () => {
  it("decodes base64 buffers", () => {
    const view = base64ToDataView(b64(new Uint8Array([1, 2, 255])));
    expect([view.getUint8(0), view.getUint8(1), view.getUint8(2)]).toEqual([1, 2, 255]);
  });

  it("answers requests from inlined replies, and errors for the rest", async () => {
    const model = createStaticModel(PAYLOAD);
    const client = new RpcClient(model);
    const reply = (await client.request("attention", { layer: 0 })) as any;
    expect(Array.from(decodeTensor(reply.pattern).values)).toEqual([1, 0.5, 0, 1]);
    await expect(client.request("attention", { layer: 3 })).rejects.toThrow(/not in this exported/);
  });

  it("fires change events on set", () => {
    const model = createStaticModel(PAYLOAD);
    let changes = 0;
    model.on("change:head", () => changes++);
    model.set("head", 0);
    model.set("head", 1);
    expect(changes).toBe(1);
    expect(model.get("head")).toBe(1);
  });
});

describe("standalone page", () => {
  it("renders the inlined view, tokens as text", async () => {
    document.body.innerHTML = "";
    const host = document.createElement("div");
    const data = document.createElement("script");
    data.type = "application/hooklens+json";
    data.textContent = JSON.stringify(PAYLOAD);
    document.body.append(host, data);
    expect(renderStandalonePages(document)).toBe(1);
    expect(renderStandalonePages(document)).toBe(0); // rendered once
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(host.dataset.view).toBe("attention");
    expect(host.dataset.lastReply).toContain('"layer":0');
    expect(host.querySelector("img")).toBeNull();
    const tokens = [...host.querySelectorAll(".hl-token-strip .hl-token")].map(
      (s) => s.textContent,
    );
    expect(tokens).toEqual(["<img·src=x·onerror=alert(1)>", "</script>"]);
  });
});

describe("embedded replies", () => {
  it("answers from the embedded_replies trait and forwards the rest to the kernel", async () => {
    const sent: any[] = [];
    const base = createStaticModel({ ...PAYLOAD, responses: {} });
    const data = new DataView(new Uint16Array([0x3c00, 0, 0, 0x3c00]).buffer);
    base.set("embedded_replies", {
      'attention?{"layer":0}': {
        ok: true,
        result: { layer: 0, pattern: { data, dtype: "float16", shape: [1, 2, 2] } },
      },
    });
    const original = base.send;
    base.send = (content: any) => {
      sent.push(content);
      original(content);
    };
    const model = withEmbeddedReplies(base);
    const client = new RpcClient(model, { timeoutMs: 200 });
    const reply = (await client.request("attention", { layer: 0 })) as any;
    expect(Array.from(decodeTensor(reply.pattern).values)).toEqual([1, 0, 0, 1]);
    expect(sent).toEqual([]);
    await expect(client.request("attention", { layer: 1 })).rejects.toThrow(/not in this/);
    expect(sent.length).toBe(1);
    expect(model.get("layer")).toBe(0);
  });

  it("reads the replies at each request, so replies the kernel adds later are used", async () => {
    const base = createStaticModel({ ...PAYLOAD, responses: {} });
    const proxy = withEmbeddedReplies(base);
    const forwarded: any[] = [];
    const original = base.send;
    base.send = (content: any, ...rest: any[]) => {
      forwarded.push(content);
      return (original as any)(content, ...rest);
    };
    const data = new DataView(new Uint16Array([0x3c00]).buffer);
    base.set("embedded_replies", {
      'attention?{"layer":0}': {
        ok: true,
        result: { layer: 0, pattern: { data, dtype: "float16", shape: [1, 1, 1] } },
      },
    });
    const rpc = new RpcClient(proxy as any);
    const reply: any = await rpc.request("attention", { layer: 0 });
    expect(reply.layer).toBe(0);
    expect(forwarded).toEqual([]);
  });
});
