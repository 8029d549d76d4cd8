// What the views of one rendered widget share: the model, the theme, the decoded tokens and the
// export registry (so that one `export` message from Python gets exactly one reply).

import { Subscriptions, type CustomMessage, type WidgetModel } from "./model";
import type { ThemeController } from "./theme";
import { TokenTable } from "./tokens";

/** Token traits every token-aware view reads. */
export const TOKEN_TRAITS = ["n_tokens", "token_text", "token_offsets", "token_prompt", "token_position"];

/** Decoded tokens, rebuilt when a token trait changes (views subscribe with onChange). */
export class TokenStore {
  private table: TokenTable | null = null;
  private readonly listeners = new Set<() => void>();
  private readonly subs: Subscriptions;

  constructor(private readonly model: WidgetModel) {
    this.subs = new Subscriptions(model);
    this.subs.traits(TOKEN_TRAITS, () => {
      this.table = null;
      for (const listener of [...this.listeners]) listener();
    });
  }

  get(): TokenTable {
    if (this.table === null) {
      this.table = new TokenTable({
        n_tokens: this.model.get("n_tokens"),
        token_text: this.model.get("token_text") as never,
        token_offsets: this.model.get("token_offsets") as never,
        token_prompt: this.model.get("token_prompt") as never,
        token_position: this.model.get("token_position") as never,
      });
    }
    return this.table;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    this.listeners.clear();
    this.subs.dispose();
  }
}

/** An image export: a data URL (PNG) or SVG text. */
export type ExportFormat = "png" | "svg";
export type Exporter = (format: ExportFormat) => Promise<string>;

/** Answers `{type: "export", view, format, request_id}` messages for the views rendered here. */
export class ExportRegistry {
  private readonly exporters = new Map<string, Exporter>();
  private readonly subs: Subscriptions;

  constructor(private readonly model: WidgetModel) {
    this.subs = new Subscriptions(model);
    this.subs.event("msg:custom", (msg: CustomMessage) => {
      if (msg && msg.type === "export") void this.handle(msg);
    });
  }

  register(view: string, exporter: Exporter): () => void {
    this.exporters.set(view, exporter);
    return () => {
      if (this.exporters.get(view) === exporter) this.exporters.delete(view);
    };
  }

  /** Names of the views that can export. */
  views(): string[] {
    return [...this.exporters.keys()];
  }

  async export(view: string, format: ExportFormat): Promise<string> {
    const exporter = this.exporters.get(view);
    if (!exporter) throw new Error(`no view "${view}" is rendered here; views: ${this.views().join(", ")}`);
    return exporter(format);
  }

  private async handle(msg: CustomMessage): Promise<void> {
    const requestId = msg.request_id ?? null;
    const format: ExportFormat = msg.format === "svg" ? "svg" : "png";
    // A missing view means "the only chart here" (standalone views).
    let view = typeof msg.view === "string" && msg.view.length > 0 ? msg.view : "";
    if (view === "" && this.exporters.size === 1) view = this.views()[0];
    if (!this.exporters.has(view)) {
      // Every rendering of a model shows the same view, so no other one can answer better.
      this.model.send({
        type: "export_result",
        request_id: requestId,
        view,
        format,
        data: null,
        error:
          this.exporters.size === 0
            ? `this view ("${view || "?"}") has no image export; export from a curve, scatter or heatmap view`
            : `view "${view}" cannot export here; available: ${this.views().join(", ")}`,
      });
      return;
    }
    try {
      const data = await this.export(view, format);
      this.model.send({ type: "export_result", request_id: requestId, view, format, data });
    } catch (err) {
      this.model.send({
        type: "export_result",
        request_id: requestId,
        view,
        format,
        data: null,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  dispose(): void {
    this.exporters.clear();
    this.subs.dispose();
  }
}

/** Everything a view needs. */
export interface ViewContext {
  model: WidgetModel;
  /** The document the views live in (the page, or an iframe's). */
  doc: Document;
  theme: ThemeController;
  tokens: TokenStore;
  exporters: ExportRegistry;
}

/** A rendered view. */
export interface View {
  readonly el: HTMLElement;
  dispose(): void;
}
