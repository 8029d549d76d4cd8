// The ID-curve view: dimension against layer, drawn as SVG by hand (no plotting library, no
// network). Click or drag on the plot to pick the nearest layer.

import type { View, ViewContext } from "./context";
import { button, download, FrameScheduler, h, observeSize, setAttrs, svg, syncChildren, Tooltip } from "./dom";
import { layoutCurves, nearestLayer, parseCurves, type CurveLayout, type CurveSpec } from "./curve_layout";
import { serializeSvg, svgToPng } from "./export_image";
import { getInt, getString, Subscriptions, ThrottledSaver } from "./model";
import { formatValue } from "./scales";
import { markStale } from "./stale";

const HEIGHT = 300;

export class CurveView implements View {
  readonly el: HTMLDivElement;
  readonly svgEl: SVGSVGElement;
  private readonly subs: Subscriptions;
  private readonly frame: FrameScheduler;
  private readonly saver: ThrottledSaver;
  private readonly tooltip: Tooltip;
  private readonly body: HTMLDivElement;
  private readonly empty: HTMLDivElement;
  private readonly g: Record<
    | "bg"
    | "embedding"
    | "grid"
    | "xAxis"
    | "yAxis"
    | "bands"
    | "lines"
    | "points"
    | "peaks"
    | "peakLabels"
    | "strip"
    | "legend"
    | "rule",
    SVGGElement
  >;
  private readonly xLabel: SVGTextElement;
  private readonly yLabel: SVGTextElement;
  private readonly hover: SVGLineElement;
  private readonly hit: SVGRectElement;
  private curves: CurveSpec[] = [];
  /** Labels of curves switched off in the legend. */
  readonly hidden = new Set<string>();
  private layout: CurveLayout | null = null;
  private dragging = false;
  private width = 0;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    const model = ctx.model;
    this.subs = new Subscriptions(model);
    this.saver = new ThrottledSaver(model, 80);
    this.el = h(doc, "div", "tdw-view tdw-curve");
    this.el.dataset.view = "curve";
    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Intrinsic dimension by layer";
    const tools = h(doc, "div", "tdw-tools");
    const png = button(doc, "PNG", "Download the chart as PNG");
    const svgBtn = button(doc, "SVG", "Download the chart as SVG");
    tools.append(png, svgBtn);
    header.append(title, tools);
    this.body = h(doc, "div", "tdw-curve-body");
    this.svgEl = svg(doc, "svg", { class: "tdw-curve-svg", role: "img", tabindex: "0" });
    this.svgEl.setAttribute("aria-label", "Intrinsic dimension by layer; arrow keys change the layer");
    const group = (name: string): SVGGElement => {
      const el = svg(doc, "g", { class: `tdw-c-${name}` });
      this.svgEl.appendChild(el);
      return el;
    };
    this.g = {
      bg: group("bg"),
      embedding: group("embedding"),
      grid: group("grid"),
      bands: group("bands"),
      rule: group("rule"),
      lines: group("lines"),
      points: group("points"),
      peaks: group("peaks"),
      peakLabels: group("peak-labels"),
      strip: group("strip"),
      xAxis: group("x-axis"),
      yAxis: group("y-axis"),
      legend: group("legend"),
    };
    this.g.bg.appendChild(svg(doc, "rect", { x: 0, y: 0 }));
    const embTitle = svg(doc, "title");
    embTitle.textContent = "The embedding layer's output: shown, but not searched for the working-space peak";
    const embRect = svg(doc, "rect");
    embRect.appendChild(embTitle);
    this.g.embedding.append(embRect, svg(doc, "text", { "font-size": 10, class: "tdw-c-embedding-note" }));
    const stripLabel = svg(doc, "text", { "font-size": 9, "text-anchor": "end", class: "tdw-c-strip-label" });
    stripLabel.textContent = "p(peak)";
    this.g.strip.append(stripLabel, svg(doc, "g"));
    this.xLabel = svg(doc, "text", { "text-anchor": "middle", "font-size": 12 });
    this.xLabel.textContent = "layer";
    this.yLabel = svg(doc, "text", { "text-anchor": "middle", "font-size": 12 });
    this.g.xAxis.appendChild(this.xLabel);
    this.g.yAxis.appendChild(this.yLabel);
    this.g.rule.append(svg(doc, "line", { class: "tdw-c-rule-line" }), svg(doc, "text", { "font-size": 11 }));
    this.hover = svg(doc, "line", { "stroke-dasharray": "3 3", "data-export": "skip", visibility: "hidden" });
    this.svgEl.appendChild(this.hover);
    this.hit = svg(doc, "rect", { fill: "transparent", class: "tdw-c-hit", "data-export": "skip" });
    this.svgEl.appendChild(this.hit);
    this.empty = h(doc, "div", "tdw-empty");
    this.empty.textContent = "No curve yet: run an analysis to see the dimension of each layer.";
    this.body.append(this.svgEl, this.empty);
    this.el.append(header, this.body);
    this.tooltip = new Tooltip(this.body);
    this.frame = new FrameScheduler(doc.defaultView, () => this.draw());

    this.subs.traits(["curves"], () => {
      this.curves = parseCurves(model.get("curves"));
      this.frame.request();
    });
    this.subs.traits(["layer", "n_layers", "curve_ylabel"], () => this.frame.request());
    this.subs.add(ctx.theme.onChange(() => this.frame.request()));
    this.subs.add(
      observeSize(this.body, () => {
        const w = this.body.clientWidth;
        if (w !== this.width) {
          this.width = w;
          this.frame.request();
        }
      }),
    );
    this.subs.dom(png, "click", () => void this.exportImage("png").then((d) => download(doc, "tokendim-curve.png", d, "image/png")));
    this.subs.dom(svgBtn, "click", () =>
      void this.exportImage("svg").then((d) => download(doc, "tokendim-curve.svg", d, "image/svg+xml")),
    );
    this.subs.add(ctx.exporters.register("curve", (format) => this.exportImage(format)));
    const toggle = (event: Event): void => {
      const item = (event.target as Element | null)?.closest?.("[data-label]");
      const label = item?.getAttribute("data-label");
      if (label === null || label === undefined) return;
      if (this.hidden.has(label)) this.hidden.delete(label);
      else this.hidden.add(label);
      this.frame.now();
    };
    this.subs.dom(this.g.legend, "click", toggle);
    this.subs.dom(this.g.legend, "keydown", (event: KeyboardEvent) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      event.stopPropagation();
      toggle(event);
    });
    this.subs.add(markStale(model, this.el, ["curves"], () => this.curves.length > 0));
    this.bindPointer();
    this.curves = parseCurves(model.get("curves"));
    this.frame.request();
  }

  private bindPointer(): void {
    const model = this.ctx.model;
    const pick = (event: PointerEvent | MouseEvent): number | null => {
      if (!this.layout) return null;
      const rect = this.svgEl.getBoundingClientRect();
      return nearestLayer(this.layout, event.clientX - rect.left);
    };
    const setLayer = (layer: number, immediate: boolean): void => {
      if (getInt(model, "layer", -1) !== layer) {
        model.set("layer", layer);
        if (immediate) this.saver.flush();
        else this.saver.save();
      }
    };
    this.subs.dom(this.hit, "pointerdown", (event: PointerEvent) => {
      if (event.button !== 0) return;
      const layer = pick(event);
      if (layer === null) return;
      this.dragging = true;
      try {
        this.hit.setPointerCapture?.(event.pointerId);
      } catch {
        // Synthetic events have no active pointer to capture.
      }
      setLayer(layer, false);
      event.preventDefault();
    });
    this.subs.dom(this.hit, "pointermove", (event: PointerEvent) => {
      const layer = pick(event);
      if (layer === null) return;
      if (this.dragging) setLayer(layer, false);
      this.showHover(layer, event);
    });
    const end = (event: PointerEvent): void => {
      if (!this.dragging) return;
      this.dragging = false;
      const layer = pick(event);
      if (layer !== null) model.set("layer", layer);
      this.saver.flush();
    };
    this.subs.dom(this.hit, "pointerup", end);
    this.subs.dom(this.hit, "pointercancel", end);
    this.subs.dom(this.hit, "pointerleave", () => {
      this.hover.setAttribute("visibility", "hidden");
      this.tooltip.hide();
    });
    this.subs.dom(this.svgEl, "keydown", (event: KeyboardEvent) => {
      if (!this.layout || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
      const layers = this.layout.layers;
      const current = getInt(model, "layer", layers[0] ?? 0);
      let idx = layers.indexOf(current);
      if (idx < 0) idx = layers.findIndex((l) => l > current);
      idx = event.key === "ArrowLeft" ? Math.max(0, idx - 1) : Math.min(layers.length - 1, idx + 1);
      if (layers[idx] !== undefined) setLayer(layers[idx], true);
      event.preventDefault();
    });
  }

  private showHover(layer: number, event: PointerEvent): void {
    if (!this.layout) return;
    const x = this.layout.x(layer);
    setAttrs(this.hover, { x1: x, x2: x, y1: this.layout.plot.y0, y2: this.layout.plot.y1, visibility: "visible" });
    const lines = [`layer ${layer}`];
    if (this.layout.embedding.layers.includes(layer)) lines.push("embeddings: not searched for the peak");
    for (const s of this.layout.series) {
      if (s.hidden) continue;
      const p = s.points.find((q) => q.layer === layer);
      if (!p) continue;
      const band = Number.isFinite(p.lower) && Number.isFinite(p.upper) ? ` [${formatValue(p.lower)}, ${formatValue(p.upper)}]` : "";
      const method = band && s.intervalMethod ? ` (95% interval: ${s.intervalMethod})` : "";
      lines.push(`${s.label}${s.control ? " (control)" : ""}: ${formatValue(p.value)}${band}${method}`);
    }
    const strip = this.layout.strip;
    if (strip) {
      const cell = strip.cells.find((c) => c.layer === layer);
      if (cell) lines.push(`peak here in ${(cell.probability * 100).toFixed(0)}% of bootstrap replicates`);
    }
    const rect = this.body.getBoundingClientRect();
    this.tooltip.show(event.clientX - rect.left, event.clientY - rect.top, null, lines);
  }

  /** Redraw in place for the current size, data, layer and theme. */
  draw(): void {
    const doc = this.el.ownerDocument;
    const width = this.body.clientWidth || this.width || 480;
    const height = HEIGHT;
    const model = this.ctx.model;
    const layout = layoutCurves(this.curves, {
      width,
      height,
      layer: getInt(model, "layer", NaN),
      nLayers: getInt(model, "n_layers", 0),
      hidden: this.hidden,
    });
    this.layout = layout;
    const hasData = this.curves.length > 0;
    const pal = this.ctx.theme.palette();
    this.empty.hidden = this.curves.length > 0;
    this.el.dataset.curves = String(this.curves.length);
    setAttrs(this.svgEl, {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      "font-family": pal.font,
    });
    const { plot } = layout;
    setAttrs(this.g.bg.firstElementChild as SVGRectElement, { width, height, fill: pal.panel });
    setAttrs(this.hit, { x: plot.x0, y: plot.y0, width: Math.max(0, plot.x1 - plot.x0), height: Math.max(0, plot.y1 - plot.y0) });
    setAttrs(this.hover, { stroke: pal.muted });

    // Grid and y axis.
    const gridLines = syncChildren(this.g.grid, layout.yTicks.length, () => svg(doc, "line"));
    layout.yTicks.forEach((t, i) =>
      setAttrs(gridLines[i], { x1: plot.x0, x2: plot.x1, y1: t.px, y2: t.px, stroke: pal.grid, "stroke-width": 1 }),
    );
    this.axisLabels(this.g.yAxis, layout.yTicks.map((t) => ({ x: plot.x0 - 6, y: t.px + 4, text: t.label, anchor: "end" })), pal.muted);
    this.axisLabels(
      this.g.xAxis,
      layout.xTicks.map((t) => ({ x: t.px, y: plot.y1 + 16 + (layout.strip ? layout.strip.height + 8 : 0), text: t.label, anchor: "middle" })),
      pal.muted,
    );
    setAttrs(this.xLabel, { x: (plot.x0 + plot.x1) / 2, y: height - 6, fill: pal.fg });
    const ylabel = getString(model, "curve_ylabel", "") || "intrinsic dimension";
    if (this.yLabel.textContent !== ylabel) this.yLabel.textContent = ylabel;
    const cy = (plot.y0 + plot.y1) / 2;
    setAttrs(this.yLabel, { x: 14, y: cy, transform: `rotate(-90 14 ${cy})`, fill: pal.fg });
    // Axis baseline.
    const base = this.g.xAxis.querySelector("line.tdw-c-base") ?? this.g.xAxis.appendChild(svg(doc, "line", { class: "tdw-c-base" }));
    setAttrs(base, { x1: plot.x0, x2: plot.x1, y1: plot.y1, y2: plot.y1, stroke: pal.border });

    // Series: bands, lines, points.
    const n = layout.series.length;
    const bands = syncChildren(this.g.bands, n, () => svg(doc, "path"));
    const lines = syncChildren(this.g.lines, n, () => svg(doc, "path", { fill: "none" }));
    const pointGroups = syncChildren(this.g.points, n, () => svg(doc, "g"));
    const radius = layout.layers.length > 60 ? 1.5 : 2.8;
    layout.series.forEach((s, i) => {
      const vis = s.hidden ? "hidden" : "visible";
      setAttrs(bands[i], { d: s.band || "M0,0", fill: s.color, "fill-opacity": s.control ? 0.1 : 0.18, stroke: "none", visibility: vis });
      setAttrs(lines[i], {
        d: s.line || "M0,0",
        stroke: s.color,
        "stroke-width": s.control ? 1.6 : 2,
        "stroke-linejoin": "round",
        "stroke-dasharray": s.control ? "6 4" : "none",
        visibility: vis,
        "data-kind": s.control ? "control" : "curve",
      });
      pointGroups[i].setAttribute("visibility", vis);
      const circles = syncChildren(pointGroups[i], s.points.length, () => svg(doc, "circle"));
      s.points.forEach((p, k) => {
        const embedding = layout.embedding.layers.includes(p.layer);
        setAttrs(circles[k], {
          cx: p.x.toFixed(1),
          cy: p.y.toFixed(1),
          r: embedding ? radius + 1 : radius,
          fill: embedding ? pal.panel : s.color,
          stroke: embedding ? s.color : pal.panel,
          "stroke-width": embedding ? 1.5 : 1,
        });
      });
    });

    // The embedding layer: a shaded column and its note.
    const [embRect, embText] = Array.from(this.g.embedding.children) as [SVGRectElement, SVGTextElement];
    const emb = layout.embedding;
    if (hasData && emb.layers.length > 0) {
      setAttrs(embRect, { x: emb.x0, y: plot.y0, width: Math.max(1, emb.x1 - emb.x0), height: plot.y1 - plot.y0, fill: pal.grid, "fill-opacity": 0.6, visibility: "visible" });
      if (emb.note) {
        setAttrs(embText, { x: emb.note.box[0] + 2, y: emb.note.y, fill: pal.muted, visibility: "visible" });
        if (embText.textContent !== emb.note.text) embText.textContent = emb.note.text;
      } else embText.setAttribute("visibility", "hidden");
    } else {
      embRect.setAttribute("visibility", "hidden");
      embText.setAttribute("visibility", "hidden");
    }

    // Peaks: one triangle marker per visible curve; the labels placed without overlaps.
    const peaks = hasData ? layout.series.filter((s) => s.peak !== null && !s.hidden) : [];
    const peakGroups = syncChildren(this.g.peaks, peaks.length, () => {
      const g = svg(doc, "g");
      g.append(svg(doc, "path"), svg(doc, "title"));
      return g;
    });
    peaks.forEach((s, i) => {
      const p = s.peak!;
      const [path, title] = Array.from(peakGroups[i].children) as [SVGPathElement, SVGTitleElement];
      const top = p.y - 7;
      setAttrs(path, { d: `M${p.x - 5},${top - 8}L${p.x + 5},${top - 8}L${p.x},${top}Z`, fill: s.color, stroke: pal.panel });
      const tip = `${s.label}: working-space peak at layer ${p.layer} (${formatValue(p.value)})`;
      if (title.textContent !== tip) title.textContent = tip;
    });
    const labels = hasData ? layout.peakLabels : [];
    const labelEls = syncChildren(this.g.peakLabels, labels.length, () => svg(doc, "text", { "font-size": 10, "text-anchor": "middle" }));
    labels.forEach((l, i) => {
      setAttrs(labelEls[i], { x: l.x, y: l.y, fill: layout.series[l.series].color, "font-weight": 600 });
      if (labelEls[i].textContent !== l.text) labelEls[i].textContent = l.text;
    });

    // Working-layer probability strip under the plot.
    const [stripLabel, stripCells] = Array.from(this.g.strip.children) as [SVGTextElement, SVGGElement];
    const strip = hasData ? layout.strip : null;
    const cells = syncChildren(stripCells, strip ? strip.cells.length : 0, () => {
      const r = svg(doc, "rect");
      r.appendChild(svg(doc, "title"));
      return r;
    });
    if (strip) {
      const color = layout.series[strip.series].color;
      strip.cells.forEach((c, i) => {
        setAttrs(cells[i], { x: c.x, y: strip.y, width: c.width, height: strip.height, fill: c.probability > 0 ? color : pal.grid, "fill-opacity": c.probability > 0 ? 0.15 + 0.85 * c.probability : 0.5 });
        const tip = `layer ${c.layer}: peak here in ${(c.probability * 100).toFixed(0)}% of bootstrap replicates`;
        const t = cells[i].firstElementChild as SVGTitleElement;
        if (t.textContent !== tip) t.textContent = tip;
      });
      setAttrs(stripLabel, { x: plot.x0 - 4, y: strip.y + strip.height - 1, fill: pal.muted, visibility: "visible" });
    } else stripLabel.setAttribute("visibility", "hidden");

    // Current layer rule.
    const [rule, ruleText] = Array.from(this.g.rule.children) as [SVGLineElement, SVGTextElement];
    if (layout.layerX === null || !hasData) {
      rule.setAttribute("visibility", "hidden");
      ruleText.setAttribute("visibility", "hidden");
    } else {
      setAttrs(rule, {
        x1: layout.layerX,
        x2: layout.layerX,
        y1: plot.y0,
        y2: plot.y1,
        stroke: pal.accent,
        "stroke-width": 2,
        "stroke-opacity": 0.8,
        visibility: "visible",
      });
      const label = `layer ${getInt(model, "layer", 0)}`;
      const right = layout.layerX > plot.x1 - 60;
      setAttrs(ruleText, {
        x: layout.layerX + (right ? -4 : 4),
        y: plot.y0 + 10,
        "text-anchor": right ? "end" : "start",
        fill: pal.accent,
        visibility: "visible",
      });
      if (ruleText.textContent !== label) ruleText.textContent = label;
    }

    // Legend.
    const items = syncChildren(this.g.legend, layout.legend.length, () => {
      const g = svg(doc, "g", { class: "tdw-c-legend-item", role: "button", tabindex: "0" });
      g.append(svg(doc, "rect", { height: 14, fill: "transparent" }), svg(doc, "line", { "stroke-width": 3 }), svg(doc, "text", { "font-size": 11 }), svg(doc, "title"));
      return g;
    });
    layout.legend.forEach((item, i) => {
      const [hit, swatch, text, title] = Array.from(items[i].children) as [SVGRectElement, SVGLineElement, SVGTextElement, SVGTitleElement];
      items[i].setAttribute("data-label", item.label);
      items[i].setAttribute("data-hidden", item.hidden ? "1" : "0");
      items[i].setAttribute("opacity", item.hidden ? "0.4" : "1");
      setAttrs(hit, { x: item.x - 2, y: item.y - 11, width: item.width + 4 });
      setAttrs(swatch, { x1: item.x, x2: item.x + 14, y1: item.y - 3, y2: item.y - 3, stroke: item.color, "stroke-dasharray": item.control ? "4 2" : "none" });
      setAttrs(text, { x: item.x + 20, y: item.y, fill: pal.fg, "text-decoration": item.hidden ? "line-through" : "none" });
      if (text.textContent !== item.text) text.textContent = item.text;
      const tip = `${item.hidden ? "Show" : "Hide"} ${item.label}${item.control ? " (null control)" : ""}`;
      if (title.textContent !== tip) title.textContent = tip;
    });
  }

  private axisLabels(
    group: SVGGElement,
    labels: Array<{ x: number; y: number; text: string; anchor: string }>,
    color: string,
  ): void {
    const doc = this.el.ownerDocument;
    const texts = Array.from(group.querySelectorAll("text.tdw-c-tick"));
    while (texts.length > labels.length) texts.pop()!.remove();
    while (texts.length < labels.length) {
      const t = svg(doc, "text", { class: "tdw-c-tick", "font-size": 11 });
      group.appendChild(t);
      texts.push(t);
    }
    labels.forEach((l, i) => {
      setAttrs(texts[i], { x: l.x, y: l.y, "text-anchor": l.anchor, fill: color });
      if (texts[i].textContent !== l.text) texts[i].textContent = l.text;
    });
  }

  /** The chart as PNG data URL or SVG text. */
  async exportImage(format: "png" | "svg"): Promise<string> {
    this.frame.now();
    const text = serializeSvg(this.svgEl);
    if (format === "svg") return text;
    const width = Number(this.svgEl.getAttribute("width")) || 480;
    return svgToPng(this.el.ownerDocument, text, width, HEIGHT, 2);
  }

  dispose(): void {
    this.frame.cancel();
    this.saver.cancel();
    this.subs.dispose();
    this.el.remove();
  }
}
