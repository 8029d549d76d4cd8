// anywidget entry point: one bundle for every view. `render` dispatches on the `_view` trait
// ("explorer", "curve", "scatter", "heatmap", "metrics", "controls", "sweep", "layer_detail").

import { ExportRegistry, TokenStore, type View, type ViewContext } from "./context";
import { ControlsView } from "./controls";
import { CurveView } from "./curve";
import { h } from "./dom";
import { ExplorerView } from "./explorer";
import { HeatmapView } from "./heatmap";
import { LayerDetailView } from "./layer_detail";
import { MetricsView } from "./metrics";
import { getString, type WidgetModel } from "./model";
import { ScatterView } from "./scatter";
import { SweepView } from "./sweep";
import { ensureStyles } from "./styles";
import { ThemeController } from "./theme";

export type ViewName = "explorer" | "curve" | "scatter" | "heatmap" | "metrics" | "controls" | "sweep" | "layer_detail";

const VIEWS: Record<ViewName, new (ctx: ViewContext) => View> = {
  explorer: ExplorerView,
  curve: CurveView,
  scatter: ScatterView,
  heatmap: HeatmapView,
  metrics: MetricsView,
  controls: ControlsView,
  sweep: SweepView,
  layer_detail: LayerDetailView,
};

/** What `render` leaves behind: the views and a cleanup (also returned to anywidget). */
export interface Rendered {
  root: HTMLDivElement;
  view: View | null;
  context: ViewContext;
  dispose: () => void;
}

/** Render the view named by `_view` (or `name`) into `el`. */
export function mount(model: WidgetModel, el: HTMLElement, name?: string): Rendered {
  const doc = el.ownerDocument;
  ensureStyles(el);
  const root = h(doc, "div", "tdw-root");
  el.appendChild(root);
  const theme = new ThemeController(model, root);
  const tokens = new TokenStore(model);
  const exporters = new ExportRegistry(model);
  const context: ViewContext = { model, doc, theme, tokens, exporters };
  const viewName = (name ?? getString(model, "_view", "explorer")) || "explorer";
  root.dataset.view = viewName;
  let view: View | null = null;
  const Ctor = (VIEWS as Record<string, (new (ctx: ViewContext) => View) | undefined>)[viewName];
  if (Ctor) {
    view = new Ctor(context);
    root.appendChild(view.el);
  } else {
    const msg = h(doc, "div", "tdw-unknown");
    msg.textContent = `tokendim-widgets: unknown view "${viewName}"; expected one of ${Object.keys(VIEWS).join(", ")}.`;
    root.appendChild(msg);
  }
  const rendered: Rendered = {
    root,
    view,
    context,
    dispose: () => {
      view?.dispose();
      exporters.dispose();
      tokens.dispose();
      theme.dispose();
      root.remove();
    },
  };
  // The handle on the element lets browser tests and debugging reach the views.
  (root as HTMLDivElement & { __tdw?: Rendered }).__tdw = rendered;
  return rendered;
}

/** anywidget render hook (only the default export: anywidget warns about a named `render`). */
function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  return mount(model, el).dispose;
}

export default { render };
