// The slice of the anywidget / ipywidgets model API that the views use, plus small helpers to
// subscribe to traits and to release every subscription when a view is removed.

/** A callback registered on the model. */
export type Listener = (...args: never[]) => void;

/** The model object anywidget hands to `render` (Backbone-like). */
export interface WidgetModel {
  get(name: string): unknown;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event?: string | null, callback?: ((...args: any[]) => void) | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

/** A message Python sends with `widget.send(...)`, as seen by `msg:custom` listeners. */
export interface CustomMessage {
  type?: string;
  [key: string]: unknown;
}

/**
 * Tracks the listeners one view registers so that `dispose` removes exactly those (and no
 * listener another view of the same model registered).
 */
export class Subscriptions {
  private readonly entries: Array<() => void> = [];

  constructor(private readonly model: WidgetModel) {}

  /** Call `callback` whenever any of the named traits changes. */
  traits(names: string[], callback: () => void): void {
    for (const name of names) {
      const event = `change:${name}`;
      const handler = (): void => callback();
      this.model.on(event, handler);
      this.entries.push(() => this.model.off(event, handler));
    }
  }

  /** Listen to a model event (for example `msg:custom`). */
  event(event: string, handler: (...args: any[]) => void): void {
    this.model.on(event, handler);
    this.entries.push(() => this.model.off(event, handler));
  }

  /** Listen to a DOM event; removed with the others. */
  dom(
    target: EventTarget,
    type: string,
    handler: (event: any) => void,
    options?: AddEventListenerOptions | boolean,
  ): void {
    target.addEventListener(type, handler, options);
    this.entries.push(() => target.removeEventListener(type, handler, options));
  }

  /** Run `cleanup` on dispose (observers, timers, animation frames). */
  add(cleanup: () => void): void {
    this.entries.push(cleanup);
  }

  dispose(): void {
    while (this.entries.length > 0) {
      const cleanup = this.entries.pop();
      try {
        cleanup?.();
      } catch {
        // A failing cleanup must not keep the others from running.
      }
    }
  }
}

/** Read a trait as a number, with a fallback when it is missing or not finite. */
export function getNumber(model: WidgetModel, name: string, fallback: number): number {
  const value = model.get(name);
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/** Read a trait as an integer. */
export function getInt(model: WidgetModel, name: string, fallback: number): number {
  return Math.trunc(getNumber(model, name, fallback));
}

/** Read a trait as a string. */
export function getString(model: WidgetModel, name: string, fallback = ""): string {
  const value = model.get(name);
  return typeof value === "string" ? value : fallback;
}

/** Read a trait as a boolean. */
export function getBool(model: WidgetModel, name: string, fallback = false): boolean {
  const value = model.get(name);
  return typeof value === "boolean" ? value : fallback;
}

/** Read a trait as a list of strings (non-strings are converted). */
export function getStringList(model: WidgetModel, name: string): string[] {
  const value = model.get(name);
  return Array.isArray(value) ? value.map((v) => String(v)) : [];
}

/** Read a trait as a list of plain objects. */
export function getObjectList(model: WidgetModel, name: string): Array<Record<string, unknown>> {
  const value = model.get(name);
  if (!Array.isArray(value)) return [];
  return value.filter(
    (v): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v),
  );
}

/**
 * Coalesces `save_changes` calls made while a pointer drags, so that scrubbing a slider or a
 * curve sends at most one update per `intervalMs` (and always the last value).
 */
export class ThrottledSaver {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private last = -Infinity;

  constructor(
    private readonly model: WidgetModel,
    private readonly intervalMs = 60,
  ) {}

  save(): void {
    const now = Date.now();
    const wait = this.last + this.intervalMs - now;
    if (wait <= 0) {
      this.flush();
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), wait);
    }
  }

  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.last = Date.now();
    this.model.save_changes();
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
