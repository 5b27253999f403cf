/**
 * Requests to the kernel: id-matched request/response custom messages with binary buffers, an
 * error reply and a timeout. The kernel side is `hooklens/vis/_widget.py` (handlers) and
 * `hooklens/vis/_wire.py` (message shapes, whose kinds `traits.gen.ts` carries). In a standalone page the same client talks to `standalone.ts`'s model, which
 * answers from inlined replies.
 */

import { WIRE } from "./traits.gen";

export const REQUEST = WIRE.request;
export const RESPONSE = WIRE.response;
export const BUFFER_KEY = WIRE.bufferKey;

export interface RpcRequest {
  kind: typeof REQUEST;
  id: string;
  method: string;
  params: Record<string, unknown>;
}

export interface RpcResponse {
  kind: typeof RESPONSE;
  id: string | null;
  ok: boolean;
  result?: unknown;
  error?: { type: string; message: string };
}

/** The part of an anywidget model the client needs (anywidget's `AnyModel` satisfies it). */
export interface Messenger {
  send(content: any, callbacks?: any, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(eventName: "msg:custom", callback: (msg: any, buffers: DataView[]) => void): void;
  off(eventName?: string | null, callback?: ((...args: any[]) => void) | null): void;
}

export class RpcError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

export class RpcTimeout extends Error {
  constructor(method: string, ms: number) {
    super(
      `the kernel did not answer '${method}' within ${ms / 1000} s: is it busy or gone? ` +
        "(A notebook exported without a kernel shows this view only after `view.embed()`.)",
    );
    this.name = "RpcTimeout";
  }
}

/** Put binary buffers back where `{"$buffer": i}` placeholders are (inverse of pack_buffers). */
export function unpackBuffers(value: unknown, buffers: readonly DataView[]): unknown {
  if (Array.isArray(value)) return value.map((v) => unpackBuffers(v, buffers));
  // Only plain JSON objects hold placeholders; DataViews already in place are kept as they are.
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1 && entries[0][0] === BUFFER_KEY) {
      const buffer = buffers[entries[0][1] as number];
      if (buffer === undefined) throw new Error(`reply refers to missing buffer ${entries[0][1]}`);
      return buffer;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) out[k] = unpackBuffers(v, buffers);
    return out;
  }
  return value;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as object).sort()) {
      out[k] = sortKeys((value as Record<string, unknown>)[k]);
    }
    return out;
  }
  return value;
}

/** Canonical key of a request, equal to Python's `request_key` (sorted keys, no spaces). */
export function requestKey(method: string, params: Record<string, unknown>): string {
  return `${method}?${JSON.stringify(sortKeys(params))}`;
}

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface RpcOptions {
  /** Milliseconds before a request without reply is rejected with `RpcTimeout`. */
  timeoutMs?: number;
}

let clients = 0;

/**
 * One client per rendered view. Every view of a widget receives every reply, so ids carry a
 * per-client prefix and replies to other clients are ignored.
 */
export class RpcClient<M extends string = string> {
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private readonly timeoutMs: number;
  private readonly onMessage = (msg: any, buffers: DataView[]) => this.receive(msg, buffers ?? []);

  constructor(
    private readonly model: Messenger,
    options: RpcOptions = {},
  ) {
    clients += 1;
    this.prefix = `${clients}-${Math.random().toString(36).slice(2, 10)}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    model.on("msg:custom", this.onMessage);
  }

  /** Send `method(params)` to the kernel; resolves with the reply's result (buffers restored). */
  request<T = unknown>(method: M, params: Record<string, unknown> = {}): Promise<T> {
    this.next += 1;
    const id = `${this.prefix}:${this.next}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcTimeout(method, this.timeoutMs));
      }, this.timeoutMs);
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      const message: RpcRequest = { kind: REQUEST, id, method, params };
      this.model.send(message);
    });
  }

  /** Number of requests still waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  private receive(msg: any, buffers: DataView[]): void {
    if (msg === null || typeof msg !== "object" || msg.kind !== RESPONSE) return;
    const reply = msg as RpcResponse;
    const pending = reply.id === null ? undefined : this.pending.get(reply.id);
    if (pending === undefined) return; // another view's reply, or one that timed out
    this.pending.delete(reply.id as string);
    clearTimeout(pending.timer);
    if (reply.ok) {
      try {
        pending.resolve(unpackBuffers(reply.result, buffers));
      } catch (error) {
        pending.reject(error as Error);
      }
    } else {
      const error = reply.error ?? { type: "Error", message: "unknown error" };
      pending.reject(new RpcError(error.type, error.message));
    }
  }

  /** Stop listening and reject what is still pending (the view was removed). */
  dispose(): void {
    this.model.off("msg:custom", this.onMessage);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`view closed before '${pending.method}' (${id}) was answered`));
    }
    this.pending.clear();
  }
}
