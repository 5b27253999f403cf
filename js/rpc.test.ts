import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decodeTensor } from "./codec";
import { type Messenger, RpcClient, RpcError, RpcTimeout, requestKey, unpackBuffers } from "./rpc";

/** A fake comm: records what the client sends and lets the test deliver replies. */
function fakeModel() {
  const handlers = new Set<(msg: any, buffers: DataView[]) => void>();
  const sent: any[] = [];
  const model: Messenger = {
    send: (content) => sent.push(content),
    on: (_event, cb) => handlers.add(cb),
    off: (_event, cb) => handlers.delete(cb as any),
  };
  const deliver = (msg: any, buffers: DataView[] = []) => {
    for (const h of [...handlers]) h(msg, buffers);
  };
  return { model, sent, deliver, handlers };
}

describe("unpackBuffers", () => {
  it("restores nested placeholders", () => {
    const a = new DataView(new ArrayBuffer(4));
    const out = unpackBuffers({ x: [{ $buffer: 0 }, 2], y: { z: "s" } }, [a]) as any;
    expect(out.x[0]).toBe(a);
    expect(out.x[1]).toBe(2);
    expect(out.y.z).toBe("s");
  });

  it("rejects a missing buffer", () => {
    expect(() => unpackBuffers({ $buffer: 3 }, [])).toThrow(/missing buffer 3/);
  });
});

describe("requestKey", () => {
  it("matches Python's request_key (sorted keys, no spaces)", () => {
    expect(requestKey("topk", { row: 1, position: 2 })).toBe('topk?{"position":2,"row":1}');
    expect(requestKey("grid", {})).toBe("grid?{}");
  });
});

describe("RpcClient", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("matches replies by id and decodes buffers", async () => {
    const { model, sent, deliver } = fakeModel();
    const client = new RpcClient(model);
    const first = client.request("attention", { layer: 1 });
    const second = client.request("attention", { layer: 2 });
    expect(sent.map((m) => m.params.layer)).toEqual([1, 2]);
    expect(sent[0].kind).toBe("hl:request");
    expect(sent[0].id).not.toBe(sent[1].id);
    const values = new Float32Array([0.5, 0.25]);
    // Answer out of order; the buffer is a window into a larger message buffer.
    const backing = new ArrayBuffer(16);
    new Float32Array(backing, 8, 2).set(values);
    deliver(
      {
        kind: "hl:response",
        id: sent[1].id,
        ok: true,
        result: { pattern: { data: { $buffer: 0 }, dtype: "float32", shape: [2] } },
      },
      [new DataView(backing, 8, 8)],
    );
    deliver({ kind: "hl:response", id: sent[0].id, ok: true, result: { layer: 1 } });
    const reply2 = (await second) as any;
    expect(Array.from(decodeTensor(reply2.pattern).values)).toEqual([0.5, 0.25]);
    expect(await first).toEqual({ layer: 1 });
    expect(client.inFlight).toBe(0);
  });

  it("ignores replies meant for another view of the same widget", async () => {
    const { model, sent, deliver } = fakeModel();
    const a = new RpcClient(model);
    const b = new RpcClient(model);
    const pa = a.request("x");
    const pb = b.request("x");
    deliver({ kind: "hl:response", id: sent[1].id, ok: true, result: "for b" });
    expect(a.inFlight).toBe(1);
    expect(await pb).toBe("for b");
    deliver({ kind: "hl:response", id: sent[0].id, ok: true, result: "for a" });
    expect(await pa).toBe("for a");
  });

  it("turns an error reply into RpcError", async () => {
    const { model, sent, deliver } = fakeModel();
    const client = new RpcClient(model);
    const p = client.request("attention", { layer: 9 });
    deliver({
      kind: "hl:response",
      id: sent[0].id,
      ok: false,
      error: { type: "RpcError", message: "layer must be in [0, 2)" },
    });
    await expect(p).rejects.toBeInstanceOf(RpcError);
    await expect(p).rejects.toThrow(/layer must be/);
  });

  it("times out and forgets the request", async () => {
    const { model, sent, deliver } = fakeModel();
    const client = new RpcClient(model, { timeoutMs: 1000 });
    const p = client.request("slow");
    const check = expect(p).rejects.toBeInstanceOf(RpcTimeout);
    vi.advanceTimersByTime(1001);
    await check;
    expect(client.inFlight).toBe(0);
    // A late reply is ignored rather than throwing.
    deliver({ kind: "hl:response", id: sent[0].id, ok: true, result: 1 });
  });

  it("dispose rejects pending requests and stops listening", async () => {
    const { model, handlers } = fakeModel();
    const client = new RpcClient(model);
    const p = client.request("x");
    client.dispose();
    await expect(p).rejects.toThrow(/view closed/);
    expect(handlers.size).toBe(0);
  });
});
