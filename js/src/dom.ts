// Small DOM helpers. Everything that may carry token text goes through textContent.

import { asInt32, encodeInt32, normaliseSelection } from "./codecs";
import type { WidgetModel } from "./model";
import type { TokenContext } from "./tokens";

export const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an HTML element with a class and optional attributes (never innerHTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className?: string,
  attrs?: Record<string, string>,
): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  if (className) el.className = className;
  if (attrs) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/** Create an SVG element with attributes. */
export function svg<K extends keyof SVGElementTagNameMap>(
  doc: Document,
  tag: K,
  attrs?: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const el = doc.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
  if (attrs) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Set attributes only when they changed (cheap in-place updates). */
export function setAttrs(el: Element, attrs: Record<string, string | number>): void {
  for (const [k, v] of Object.entries(attrs)) {
    const s = String(v);
    if (el.getAttribute(k) !== s) el.setAttribute(k, s);
  }
}

/** A small text button. */
export function button(doc: Document, label: string, title: string, className = "tdw-btn"): HTMLButtonElement {
  const b = h(doc, "button", className, { type: "button", title });
  b.textContent = label;
  return b;
}

/** Make `count` children of `parent` with the given tag, reusing existing ones. */
export function syncChildren<T extends Element>(parent: Element, count: number, make: () => T): T[] {
  while (parent.children.length > count) parent.lastElementChild?.remove();
  while (parent.children.length < count) parent.appendChild(make());
  return Array.from(parent.children) as T[];
}

/** The selected token rows of the model (sorted, unique, inside [0, n)). */
export function readSelection(model: WidgetModel, n: number): Int32Array {
  return normaliseSelection(asInt32(model.get("selected_tokens") as never), n);
}

/** Set `selected_tokens` (int32 bytes) and send it to Python. */
export function writeSelection(model: WidgetModel, indices: ArrayLike<number>): void {
  const sorted = Int32Array.from(indices).sort();
  model.set("selected_tokens", encodeInt32(sorted));
  model.save_changes();
}

/** A floating tooltip inside a positioned container; content built with textContent only. */
export class Tooltip {
  readonly el: HTMLDivElement;
  private readonly context: HTMLDivElement;
  private readonly lines: HTMLDivElement;

  constructor(private readonly container: HTMLElement) {
    const doc = container.ownerDocument;
    this.el = h(doc, "div", "tdw-tooltip", { role: "tooltip" });
    this.context = h(doc, "div", "tdw-tip-context");
    this.lines = h(doc, "div", "tdw-tip-lines");
    this.el.append(this.context, this.lines);
    this.el.hidden = true;
    container.appendChild(this.el);
  }

  /** Show the token context (may be null) and plain text lines near (x, y) in container pixels. */
  show(x: number, y: number, context: TokenContext | null, lines: string[]): void {
    renderContext(this.context, context);
    const rows = syncChildren(this.lines, lines.length, () => h(this.container.ownerDocument, "div", "tdw-tip-line"));
    rows.forEach((row, i) => {
      if (row.textContent !== lines[i]) row.textContent = lines[i];
    });
    this.el.hidden = false;
    // Keep inside the container: flip left / up when close to the right / bottom edge.
    const cw = this.container.clientWidth || 0;
    const ch = this.container.clientHeight || 0;
    const tw = this.el.offsetWidth || 0;
    const th = this.el.offsetHeight || 0;
    let left = x + 14;
    let top = y + 14;
    if (cw > 0 && left + tw > cw) left = Math.max(0, x - tw - 14);
    if (ch > 0 && top + th > ch) top = Math.max(0, y - th - 14);
    this.el.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
  }

  hide(): void {
    if (!this.el.hidden) this.el.hidden = true;
  }
}

/**
 * Fill `target` with the context line: one span per token, the hovered one emphasised, "…" where
 * the prompt goes on. Reuses the spans already there.
 */
export function renderContext(target: HTMLElement, context: TokenContext | null): void {
  if (context === null) {
    target.hidden = true;
    return;
  }
  target.hidden = false;
  const doc = target.ownerDocument;
  const pieces: Array<{ text: string; cls: string }> = [];
  if (context.truncatedBefore) pieces.push({ text: "…", cls: "tdw-ctx-more" });
  for (const p of context.pieces) pieces.push({ text: p.text, cls: p.focus ? "tdw-ctx-focus" : "tdw-ctx-token" });
  if (context.truncatedAfter) pieces.push({ text: "…", cls: "tdw-ctx-more" });
  const spans = syncChildren(target, pieces.length, () => h(doc, "span"));
  spans.forEach((span, i) => {
    if (span.className !== pieces[i].cls) span.className = pieces[i].cls;
    if (span.textContent !== pieces[i].text) span.textContent = pieces[i].text;
  });
}

/** Trigger a client-side download of a data URL or text. */
export function download(doc: Document, filename: string, data: string, mime: string): void {
  const a = h(doc, "a");
  let revoke: string | null = null;
  if (data.startsWith("data:")) {
    a.href = data;
  } else {
    const url = URL.createObjectURL(new Blob([data], { type: mime }));
    a.href = url;
    revoke = url;
  }
  a.download = filename;
  a.style.display = "none";
  doc.body.appendChild(a);
  a.click();
  a.remove();
  if (revoke !== null) {
    const url = revoke;
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}

/** Observe an element's size; falls back to window resize where ResizeObserver is missing. */
export function observeSize(el: HTMLElement, callback: () => void): () => void {
  if (typeof ResizeObserver !== "undefined") {
    const observer = new ResizeObserver(() => callback());
    observer.observe(el);
    return () => observer.disconnect();
  }
  const win = el.ownerDocument.defaultView;
  win?.addEventListener("resize", callback);
  return () => win?.removeEventListener("resize", callback);
}

/** Run `draw` at most once per animation frame. */
export class FrameScheduler {
  private handle: number | null = null;

  constructor(
    private readonly win: Window | null,
    private readonly draw: (time: number) => void,
  ) {}

  request(): void {
    if (this.handle !== null) return;
    const raf = this.win?.requestAnimationFrame?.bind(this.win);
    if (raf) {
      this.handle = raf((t) => {
        this.handle = null;
        this.draw(t);
      });
    } else {
      this.handle = setTimeout(() => {
        this.handle = null;
        this.draw(Date.now());
      }, 16) as unknown as number;
    }
  }

  /** Draw now (export, tests) and drop a pending request. */
  now(): void {
    this.cancel();
    this.draw(typeof performance !== "undefined" ? performance.now() : Date.now());
  }

  cancel(): void {
    if (this.handle === null) return;
    if (this.win?.cancelAnimationFrame) this.win.cancelAnimationFrame(this.handle);
    else clearTimeout(this.handle);
    this.handle = null;
  }
}
