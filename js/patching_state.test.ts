import { describe, expect, it } from "vitest";
import {
  type Cell,
  filledCount,
  jsonValues,
  LatestQueue,
  nextSelection,
  progressText,
  selectionKey,
} from "./views/patching_state";

const a: Cell = { point: "resid_pre", row: 1, col: 4 };
const b: Cell = { point: "resid_pre", row: 0, col: 2 };
const c: Cell = { point: "mlp_out", row: 1, col: 4 };

/** A send function whose requests the test settles by hand. */
function manualSend() {
  const sent: string[] = [];
  const settles: Array<(ok: boolean) => void> = [];
  const send = (value: string) => {
    sent.push(value);
    return new Promise<void>((resolve, reject) => {
      settles.push((ok) => (ok ? resolve() : reject(new Error("kernel error"))));
    });
  };
  return { sent, settles, send };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("patch set", () => {
  it("a plain click patches one cell", () => {
    expect(nextSelection([a, b], c, false)).toEqual([c]);
  });

  it("shift-click adds a cell and removes it again", () => {
    const two = nextSelection([a], b, true);
    expect(two).toEqual([a, b]);
    expect(nextSelection(two, { ...a }, true)).toEqual([b]);
    // Same layer and position at another point is another cell.
    expect(nextSelection([a], c, true)).toEqual([a, c]);
  });

  it("keys ignore order", () => {
    expect(selectionKey([a, b])).toBe(selectionKey([b, a]));
    expect(selectionKey([a])).not.toBe(selectionKey([c]));
    expect(selectionKey([])).toBe("");
  });
});

describe("LatestQueue", () => {
  it("sends at once when idle and queues while a request is in flight", async () => {
    const { sent, settles, send } = manualSend();
    const states: boolean[] = [];
    const queue = new LatestQueue(send, (s) => states.push(s.queued));
    expect(queue.push("one")).toBe("sent");
    expect(queue.push("two")).toBe("queued");
    expect(queue.push("three")).toBe("queued"); // replaces "two": it contains that click
    expect(sent).toEqual(["one"]);
    expect(queue.state).toEqual({ inFlight: true, queued: true });
    settles[0](true);
    await tick();
    expect(sent).toEqual(["one", "three"]);
    settles[1](true);
    await tick();
    expect(queue.state).toEqual({ inFlight: false, queued: false });
    expect(states[states.length - 1]).toBe(false);
  });

  it("a failed request does not stop what waits", async () => {
    const { sent, settles, send } = manualSend();
    const queue = new LatestQueue(send);
    queue.push("one");
    queue.push("two");
    settles[0](false);
    await tick();
    expect(sent).toEqual(["one", "two"]);
  });

  it("a send that throws still frees the queue", async () => {
    let calls = 0;
    const queue = new LatestQueue<string>(() => {
      calls += 1;
      if (calls === 1) throw new Error("boom");
      return Promise.resolve();
    });
    queue.push("one");
    await tick();
    expect(queue.push("two")).toBe("sent");
  });
});

describe("sweep display", () => {
  it("describes progress", () => {
    expect(progressText("running", "z", 3, 8)).toBe("sweeping z: 3/8 cells");
    expect(progressText("waiting", "z", 3, 8)).toMatch(/^sweeping z: 3\/8 cells, waiting/);
    expect(progressText("cancelled", "z", 3, 8)).toBe("cancelled z at 3/8 cells");
    expect(progressText("idle", "z", 0, 0)).toMatch(/no sweep yet/);
  });

  it("writes NaN cells as null and counts filled cells", () => {
    const values = new Float32Array([0.5, Number.NaN, -1]);
    expect(jsonValues(values)).toEqual([0.5, null, -1]);
    expect(filledCount(values)).toBe(2);
  });
});
