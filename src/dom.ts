/**
 * Building the panel's DOM.  Every string a job, a process or the server
 * gives is set with `textContent` (or as an attribute value), never parsed
 * as HTML: a job named `<img src=x onerror=alert(1)>` shows as those
 * characters.
 */

export interface IElementOptions {
  className?: string;
  text?: string;
  title?: string;
  attrs?: { [name: string]: string };
}

/** A new element with its class, text and attributes; no HTML parsing. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: IElementOptions = {},
  children: Node[] = []
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (options.className) {
    el.className = options.className;
  }
  if (options.text !== undefined) {
    el.textContent = options.text;
  }
  if (options.title !== undefined) {
    el.title = options.title;
  }
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    el.setAttribute(name, value);
  }
  for (const child of children) {
    el.appendChild(child);
  }
  return el;
}

/** Sets an element's text only when it changed (no needless layout work). */
export function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) {
    el.textContent = text;
  }
}

/** `1.2 s`, `3 min 04 s`, `2 h 05 min`: a duration in seconds, for people. */
export function formatElapsed(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes % 60).padStart(2, '0')} min`;
}
