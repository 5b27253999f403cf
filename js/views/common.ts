/** Small DOM helpers shared by the views (text only: no view ever sets innerHTML). */

export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  parent?: HTMLElement,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  parent?.appendChild(node);
  return node;
}

/** Show an error next to the view (and in `el.dataset.error` for tests). */
export function showError(el: HTMLElement, box: HTMLElement, error: unknown): void {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  box.textContent = `hooklens: ${message}`;
  box.hidden = false;
  el.dataset.error = message;
}

export function clearError(el: HTMLElement, box: HTMLElement): void {
  box.hidden = true;
  box.textContent = "";
  delete el.dataset.error;
}

/** A value formatted for reading (exact enough to compare with the kernel). */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-4)
    ? value.toExponential(4)
    : value.toFixed(6);
}

/** Keep at most `capacity` entries, dropping the least recently used. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
    }
  }
  keys(): K[] {
    return [...this.map.keys()];
  }
}
