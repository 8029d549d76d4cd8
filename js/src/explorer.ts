// The composed dashboard: controls on top, curve and metrics on the left, the scatter on the
// right, the heatmap across the bottom; one column when the output area is narrow (a
// ResizeObserver on the explorer itself, so it follows the output area, not the window).

import type { View, ViewContext } from "./context";
import { ControlsView } from "./controls";
import { CurveView } from "./curve";
import { h, observeSize } from "./dom";
import { HeatmapView } from "./heatmap";
import { MetricsView } from "./metrics";
import { ScatterView } from "./scatter";

/** Below this width (CSS pixels) the explorer stacks its views in one column. */
export const NARROW_WIDTH = 960;

export class ExplorerView implements View {
  readonly el: HTMLDivElement;
  readonly controls: ControlsView;
  readonly curve: CurveView;
  readonly metrics: MetricsView;
  readonly scatter: ScatterView;
  readonly heatmap: HeatmapView;
  private readonly stopObserving: () => void;

  constructor(ctx: ViewContext) {
    const doc = ctx.doc;
    this.el = h(doc, "div", "tdw-explorer");
    this.el.dataset.view = "explorer";
    const top = h(doc, "div", "tdw-area tdw-area-controls");
    const left = h(doc, "div", "tdw-area tdw-area-left");
    const right = h(doc, "div", "tdw-area tdw-area-right");
    const bottom = h(doc, "div", "tdw-area tdw-area-bottom");
    this.el.append(top, left, right, bottom);
    this.controls = new ControlsView(ctx);
    this.curve = new CurveView(ctx);
    this.metrics = new MetricsView(ctx);
    this.scatter = new ScatterView(ctx);
    this.heatmap = new HeatmapView(ctx);
    top.appendChild(this.controls.el);
    left.append(this.curve.el, this.metrics.el);
    right.appendChild(this.scatter.el);
    bottom.appendChild(this.heatmap.el);
    this.stopObserving = observeSize(this.el, () => {
      const w = this.el.clientWidth;
      if (w > 0) this.el.classList.toggle("tdw-narrow", w < NARROW_WIDTH);
    });
  }

  dispose(): void {
    this.stopObserving();
    for (const view of [this.controls, this.curve, this.metrics, this.scatter, this.heatmap]) view.dispose();
    this.el.remove();
  }
}
