// A stand-in for the anywidget model (get / set / on / off / save_changes / send) so views can be
// rendered in unit tests and in the standalone harness page without Jupyter.

import type { WidgetModel } from "../src/model";

type Handler = (...args: any[]) => void;

export class FakeModel implements WidgetModel {
  readonly state: Record<string, unknown>;
  /** Messages the views sent to "Python". */
  readonly sent: unknown[] = [];
  /** How many times save_changes was called, and the trait values at each call. */
  saves = 0;
  readonly saved: Array<Record<string, unknown>> = [];
  /** Called after every save_changes (a harness can play the Python side here). */
  onSave: ((model: FakeModel) => void) | null = null;
  /** Called after every send. */
  onSend: ((content: unknown, model: FakeModel) => void) | null = null;
  private readonly handlers = new Map<string, Set<Handler>>();

  constructor(initial: Record<string, unknown> = {}) {
    this.state = { ...initial };
  }

  get(name: string): unknown {
    return this.state[name];
  }

  set(name: string, value: unknown): void {
    if (this.state[name] === value) return;
    this.state[name] = value;
    this.emit(`change:${name}`, this, value);
    this.emit("change", this);
  }

  /** Set several traits at once and then fire their change events (like a kernel update). */
  setMany(values: Record<string, unknown>): void {
    const changed = Object.keys(values).filter((k) => this.state[k] !== values[k]);
    for (const k of changed) this.state[k] = values[k];
    for (const k of changed) this.emit(`change:${k}`, this, values[k]);
    if (changed.length > 0) this.emit("change", this);
  }

  save_changes(): void {
    this.saves += 1;
    this.saved.push({ ...this.state });
    this.onSave?.(this);
  }

  on(event: string, callback: Handler): void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(callback);
  }

  off(event?: string | null, callback?: Handler | null): void {
    if (!event) {
      this.handlers.clear();
      return;
    }
    if (!callback) {
      this.handlers.delete(event);
      return;
    }
    this.handlers.get(event)?.delete(callback);
  }

  send(content: unknown): void {
    this.sent.push(content);
    this.onSend?.(content, this);
  }

  /** Deliver a custom message from "Python". */
  receive(content: unknown): void {
    this.emit("msg:custom", content, []);
  }

  /** Number of listeners (leak checks in tests). */
  listenerCount(): number {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }

  private emit(event: string, ...args: unknown[]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) handler(...args);
  }
}
