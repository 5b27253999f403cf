/**
 * Standalone pages (`hooklens/vis/export.py`): no kernel, no widget manager. A small in-page
 * model holds the inlined state and answers requests from the inlined replies, so the views run
 * unchanged.
 */
import type { AnyModel } from "@anywidget/types";
import {
  REQUEST,
  RESPONSE,
  type RpcRequest,
  type RpcResponse,
  requestKey,
  unpackBuffers,
} from "./rpc";

/** What `export_payload` writes (mirror of hooklens/vis/export.py). */
export interface StandalonePayload {
  version: number;
  state: Record<string, unknown>;
  responses: Record<string, Omit<RpcResponse, "id" | "kind"> & Partial<RpcResponse>>;
  /** Base64 buffers; `{"$buffer": i}` placeholders in state and replies index this list. */
  buffers: string[];
}

export function base64ToDataView(text: string): DataView {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new DataView(bytes.buffer);
}

type Handler = (...args: any[]) => void;

/** An `AnyModel` backed by inlined data; `send` answers requests like the kernel would. */
export function createStaticModel(payload: StandalonePayload): AnyModel<any> {
  const buffers = payload.buffers.map(base64ToDataView);
  const state = unpackBuffers(payload.state, buffers) as Record<string, unknown>;
  const listeners = new Map<string, Set<Handler>>();
  const emit = (event: string, ...args: unknown[]) => {
    for (const handler of [...(listeners.get(event) ?? [])]) handler(...args);
  };

  const answer = (request: RpcRequest): [RpcResponse, DataView[]] => {
    const stored = payload.responses[requestKey(request.method, request.params ?? {})];
    if (stored === undefined) {
      const message = `'${request.method}' with ${JSON.stringify(request.params)} is not in this exported page`;
      return [
        { kind: RESPONSE, id: request.id, ok: false, error: { type: "NotExported", message } },
        [],
      ];
    }
    // Placeholders index the page's buffer list, which is passed along as the reply's buffers.
    return [{ ...stored, kind: RESPONSE, id: request.id } as RpcResponse, buffers];
  };

  const model = {
    get: (key: string) => state[key],
    set: (key: string, value: unknown) => {
      if (state[key] === value) return;
      state[key] = value;
      emit(`change:${key}`);
    },
    on: (event: string, handler: Handler) => {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event)?.add(handler);
    },
    off: (event?: string | null, handler?: Handler | null) => {
      if (!event) {
        listeners.clear();
      } else if (!handler) {
        listeners.delete(event);
      } else {
        listeners.get(event)?.delete(handler);
      }
    },
    save_changes: () => {},
    send: (content: any) => {
      if (content?.kind !== REQUEST) return;
      const [reply, replyBuffers] = answer(content as RpcRequest);
      // Asynchronous like a real kernel, so views never depend on a synchronous answer.
      setTimeout(() => emit("msg:custom", reply, replyBuffers), 0);
    },
    widget_manager: {
      get_model: () => Promise.reject(new Error("no widget manager in a standalone page")),
    },
  };
  return model as unknown as AnyModel<any>;
}

/**
 * `model` answering requests from its `embedded_replies` trait (filled by Python's
 * `view.embed()`), for static notebook exports where no kernel answers. Requests it has no
 * reply for still go to the kernel, if there is one.
 */
export function withEmbeddedReplies(model: AnyModel<any>): AnyModel<any> {
  // Read at every request: the kernel keeps the first screen's replies current (a finished
  // sweep, another layer), and a view rendered later must not answer from an older copy.
  const replies = () => (model.get("embedded_replies") ?? {}) as Record<string, RpcResponse>;
  const local = new Set<Handler>();
  const proxy = Object.create(model) as AnyModel<any>;
  proxy.on = ((event: string, handler: Handler) => {
    if (event === "msg:custom") local.add(handler);
    model.on(event, handler);
  }) as AnyModel<any>["on"];
  proxy.off = ((event?: string | null, handler?: Handler | null) => {
    if (event === "msg:custom" && handler) local.delete(handler);
    model.off(event, handler);
  }) as AnyModel<any>["off"];
  proxy.send = (content: any, callbacks?: any, buffers?: any) => {
    const stored =
      content?.kind === REQUEST
        ? replies()[requestKey(content.method, content.params ?? {})]
        : undefined;
    if (stored === undefined) {
      model.send(content, callbacks, buffers);
      return;
    }
    // Buffers already sit in place (DataViews) inside the trait value.
    const reply = { ...stored, kind: RESPONSE, id: content.id };
    setTimeout(() => {
      for (const handler of [...local]) handler(reply, []);
    }, 0);
  };
  return proxy;
}
