/**
 * Text that changes on every pointer move, changed in place: the element's one Text node gets new
 * `data` (no node removed and inserted, as `textContent =` does), and nothing happens when the
 * text is the same. Text only, never markup.
 */
export function setText(element: HTMLElement, text: string): void {
  const node = element.firstChild;
  if (node && node === element.lastChild && node.nodeType === Node.TEXT_NODE) {
    const textNode = node as Text;
    if (textNode.data !== text) textNode.data = text;
  } else if (element.textContent !== text) {
    element.textContent = text;
  }
}
