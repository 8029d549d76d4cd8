// A WidgetModel whose traits live in the page: the base of the standalone export's static model
// (src/standalone.ts) and of the test / harness stand-in (dev/fake_model.ts).

import type { WidgetModel } from "./model";

export type Handler = (...args: any[]) => void;

export class LocalModel implements WidgetModel {
  readonly state: Record<string, unknown>;
  /** Messages the views sent (a kernel would have received them). */
  readonly sent: unknown[] = [];
  /** Number of save_changes calls. */
  saves = 0;
  private readonly handlers = new Map<string, Set<Handler>>();

  constructor(initial: Record<string, unknown> = {}) {
    this.state = { ...initial };
  }

  get(name: string): unknown {
    return this.state[name];
  }

  set(name: string, value: unknown): void {
    this.setMany({ [name]: value });
  }

  /** Set several traits, then fire their change events (as a kernel update does). */
  setMany(values: Record<string, unknown>): void {
    const changed = Object.keys(values).filter((k) => this.state[k] !== values[k]);
    for (const k of changed) this.state[k] = values[k];
    for (const k of changed) this.emit(`change:${k}`, this, values[k]);
    if (changed.length > 0) this.emit("change", this);
  }

  save_changes(): void {
    this.saves += 1;
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
  }

  /** Deliver a custom message as if Python had sent it. */
  receive(content: unknown): void {
    this.emit("msg:custom", content, []);
  }

  /** Number of listeners (leak checks in tests). */
  listenerCount(): number {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }

  protected emit(event: string, ...args: unknown[]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) handler(...args);
  }
}
