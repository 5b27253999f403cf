/**
 * The click-to-patch view's state logic, kept free of the DOM so it can be unit-tested: which
 * cells form the patch set after a click, and a request queue that keeps at most one patch
 * request in flight without ever dropping the newest click.
 */

import type { Cell } from "../traits.gen";

export type { Cell };

export function cellKey(cell: Cell): string {
  return `${cell.point}:${cell.row}:${cell.col}`;
}

/** Order-independent key of a patch set (for "is this the set I show?"). */
export function selectionKey(cells: readonly Cell[]): string {
  return cells.map(cellKey).sort().join("|");
}

/**
 * The patch set after a click on `cell`: a plain click patches that cell alone; a shift-click
 * adds it to the set, or removes it when it is already there.
 */
export function nextSelection(current: readonly Cell[], cell: Cell, additive: boolean): Cell[] {
  const one = { point: cell.point, row: cell.row, col: cell.col };
  if (!additive) return [one];
  const key = cellKey(one);
  return current.some((c) => cellKey(c) === key)
    ? current.filter((c) => cellKey(c) !== key)
    : [...current, one];
}

export interface QueueState {
  inFlight: boolean;
  queued: boolean;
}

/**
 * At most one request in flight. A value pushed while one is in flight waits (clicks during a
 * sweep are sent at once: the kernel runs them between two of the sweep's batches); a newer push replaces a waiting one, which is safe because a
 * patch set already contains the clicks before it. When the request in flight settles (either
 * way), the waiting value is sent. Nothing pushed is ever dropped without a newer value taking
 * its place.
 */
export class LatestQueue<T> {
  private inFlight = false;
  private waiting: { value: T } | undefined;

  constructor(
    private readonly send: (value: T) => Promise<unknown>,
    private readonly onChange: (state: QueueState) => void = () => {},
  ) {}

  get state(): QueueState {
    return { inFlight: this.inFlight, queued: this.waiting !== undefined };
  }

  /** Send `value` now if nothing is in flight; else let it wait. */
  push(value: T): "sent" | "queued" {
    this.waiting = { value };
    const sent = this.pump();
    this.onChange(this.state);
    return sent ? "sent" : "queued";
  }

  private pump(): boolean {
    if (this.inFlight || this.waiting === undefined) return false;
    const { value } = this.waiting;
    this.waiting = undefined;
    this.inFlight = true;
    const settle = () => {
      this.inFlight = false;
      this.pump();
      this.onChange(this.state);
    };
    let pending: Promise<unknown>;
    try {
      pending = this.send(value);
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(settle, settle);
    return true;
  }
}

/** Text of the sweep progress indicator. */
export function progressText(status: string, point: string, done: number, total: number): string {
  const count = `${done}/${total} cells`;
  switch (status) {
    case "running":
      return `sweeping ${point}: ${count}`;
    case "waiting":
      return `sweeping ${point}: ${count}, waiting for another call on the model`;
    case "done":
      return `swept ${point}: ${count}`;
    case "cancelled":
      return `cancelled ${point} at ${count}`;
    case "error":
      return `sweep of ${point} failed at ${count}`;
    default:
      return "no sweep yet: click a cell to patch it, or run the sweep";
  }
}

/** Values for `el.dataset` (JSON has no NaN: cells not computed yet are null). */
export function jsonValues(values: Float32Array): Array<number | null> {
  return Array.from(values, (v) => (Number.isFinite(v) ? v : null));
}

/** Finite cells among `values`. */
export function filledCount(values: Float32Array): number {
  let n = 0;
  for (const v of values) if (Number.isFinite(v)) n += 1;
  return n;
}
