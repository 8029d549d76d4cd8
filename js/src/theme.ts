// Light / dark theme: resolves the `theme` trait ("auto" follows the host page: JupyterLab,
// VS Code, Colab, then the OS preference), sets a class on the view root (CSS variables do the
// rest) and gives canvas / WebGL code the concrete colours.

import { getString, Subscriptions, type WidgetModel } from "./model";
import { luminance, parseColor, type RGB } from "./scales";

export type ResolvedTheme = "light" | "dark";

/** Concrete colours for canvas drawing, read from the root's CSS variables. */
export interface Palette {
  bg: string;
  panel: string;
  fg: string;
  muted: string;
  grid: string;
  border: string;
  accent: string;
  selection: string;
  missing: string;
  font: string;
}

const FALLBACK: Record<ResolvedTheme, Palette> = {
  light: {
    bg: "#ffffff",
    panel: "#ffffff",
    fg: "#1f2328",
    muted: "#667085",
    grid: "#e4e7ec",
    border: "#d0d5dd",
    accent: "#2f6fdb",
    selection: "#e8590c",
    missing: "#8f959e",
    font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  },
  dark: {
    bg: "#111418",
    panel: "#181c22",
    fg: "#e6e9ee",
    muted: "#98a2b3",
    grid: "#2c323b",
    border: "#3a414c",
    accent: "#6ea8fe",
    selection: "#ffa94d",
    missing: "#6b7380",
    font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  },
};

/** The host page's theme, when it says one; null when it does not. */
export function detectHostTheme(doc: Document | null | undefined): ResolvedTheme | null {
  if (!doc) return null;
  const body = doc.body;
  // JupyterLab / Notebook 7 / Voila with a JupyterLab theme.
  const jpLight = body?.getAttribute("data-jp-theme-light");
  if (jpLight === "true") return "light";
  if (jpLight === "false") return "dark";
  // VS Code notebook webviews.
  if (body?.classList.contains("vscode-dark") || body?.classList.contains("vscode-high-contrast")) {
    return "dark";
  }
  if (body?.classList.contains("vscode-light")) return "light";
  // Colab marks the document element.
  const colab = doc.documentElement?.getAttribute("theme");
  if (colab === "dark" || colab === "light") return colab;
  // Any host that defines the JupyterLab layout colour: judge by its brightness.
  const view = doc.defaultView;
  if (view && body) {
    const raw = view.getComputedStyle(body).getPropertyValue("--jp-layout-color0");
    const rgb = parseColor(raw);
    if (rgb) return luminance(rgb) < 0.4 ? "dark" : "light";
  }
  return null;
}

/** The OS preference, light when unknown. */
export function preferredScheme(win: Window | null | undefined): ResolvedTheme {
  try {
    if (win?.matchMedia?.("(prefers-color-scheme: dark)").matches) return "dark";
  } catch {
    // matchMedia missing (test DOMs): light.
  }
  return "light";
}

/** Resolve a theme setting against the host page. */
export function resolveTheme(setting: string, doc: Document | null | undefined): ResolvedTheme {
  if (setting === "light" || setting === "dark") return setting;
  return detectHostTheme(doc) ?? preferredScheme(doc?.defaultView);
}

/** Keeps the root's theme classes in sync and notifies views that draw on canvas. */
export class ThemeController {
  resolved: ResolvedTheme = "light";
  private cached: Palette | null = null;
  private readonly listeners = new Set<() => void>();
  private readonly subs: Subscriptions;

  constructor(
    private readonly model: WidgetModel,
    private readonly root: HTMLElement,
  ) {
    this.subs = new Subscriptions(model);
    this.subs.traits(["theme"], () => this.refresh());
    const doc = root.ownerDocument;
    const win = doc?.defaultView;
    // JupyterLab switches theme by changing body attributes; VS Code by body classes.
    if (doc?.body && typeof MutationObserver !== "undefined") {
      const observer = new MutationObserver(() => this.refresh());
      observer.observe(doc.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
      if (doc.documentElement) {
        observer.observe(doc.documentElement, { attributes: true, attributeFilter: ["theme"] });
      }
      this.subs.add(() => observer.disconnect());
    }
    try {
      const query = win?.matchMedia?.("(prefers-color-scheme: dark)");
      if (query && typeof query.addEventListener === "function") {
        this.subs.dom(query, "change", () => this.refresh());
      }
    } catch {
      // No media queries: nothing to follow.
    }
    this.refresh(true);
  }

  /** The theme setting from the model. */
  get setting(): string {
    return getString(this.model, "theme", "auto") || "auto";
  }

  private refresh(initial = false): void {
    const setting = this.setting;
    const resolved = resolveTheme(setting, this.root.ownerDocument);
    this.resolved = resolved;
    this.root.classList.toggle("tdw-light", resolved === "light");
    this.root.classList.toggle("tdw-dark", resolved === "dark");
    this.root.classList.toggle("tdw-auto", setting !== "light" && setting !== "dark");
    this.cached = null;
    if (!initial) {
      // Even when light/dark is unchanged, host colours may have changed (another light theme).
      for (const listener of [...this.listeners]) listener();
    }
  }

  /** Register a callback run after the theme changed; returns its remover. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Concrete colours (CSS variables of the root, with fallbacks). */
  palette(): Palette {
    if (this.cached) return this.cached;
    const fallback = FALLBACK[this.resolved];
    const out: Palette = { ...fallback };
    const view = this.root.ownerDocument?.defaultView;
    if (view && this.root.isConnected) {
      const style = view.getComputedStyle(this.root);
      const read = (name: string, fb: string): string => {
        const value = style.getPropertyValue(name).trim();
        return value.length > 0 ? value : fb;
      };
      out.bg = read("--tdw-bg", fallback.bg);
      out.panel = read("--tdw-panel", fallback.panel);
      out.fg = read("--tdw-fg", fallback.fg);
      out.muted = read("--tdw-muted", fallback.muted);
      out.grid = read("--tdw-grid", fallback.grid);
      out.border = read("--tdw-border", fallback.border);
      out.accent = read("--tdw-accent", fallback.accent);
      out.selection = read("--tdw-selection", fallback.selection);
      out.missing = read("--tdw-missing", fallback.missing);
      out.font = read("--tdw-font", fallback.font);
      this.cached = out;
    }
    return out;
  }

  /** The panel colour as RGB (WebGL clear colour). */
  panelRgb(): RGB {
    return parseColor(this.palette().panel) ?? parseColor(FALLBACK[this.resolved].panel) ?? [255, 255, 255];
  }

  dispose(): void {
    this.listeners.clear();
    this.subs.dispose();
  }
}
