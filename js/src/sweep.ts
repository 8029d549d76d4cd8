// Many models at once: every model's ID curve on relative depth with its interval band, and the
// working-space dimension against model quality (bits per byte) with intervals on both axes and
// the rank correlation. Clicking a model (curve, point or legend) sets `selected_model`.
// Model names are untrusted text: set with textContent only.

import type { View, ViewContext } from "./context";
import { h, svg } from "./dom";
import { getObjectList, getString, Subscriptions } from "./model";
import { categoricalHex, formatValue, linearScale, niceDomain, ticks, type LinearScale } from "./scales";

/** One model's curve (the `sweep_curves` trait). */
export interface SweepCurve {
  model: string;
  depth: number[];
  dimension: number[];
  lower: number[];
  upper: number[];
}

/** One model's point (the `sweep_points` trait): quality on x, working dimension on y. */
export interface SweepPoint {
  model: string;
  x: number;
  x_lower: number;
  x_upper: number;
  y: number;
  y_lower: number;
  y_upper: number;
}

const W = 360;
const H = 240;
const M = { left: 44, right: 12, top: 12, bottom: 34 };

const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(num) : []);

/** Curves from the trait, dropping malformed entries. */
export function readCurves(rows: Array<Record<string, unknown>>): SweepCurve[] {
  return rows
    .filter((r) => typeof r.model === "string")
    .map((r) => ({
      model: r.model as string,
      depth: nums(r.depth),
      dimension: nums(r.dimension),
      lower: nums(r.lower),
      upper: nums(r.upper),
    }));
}

/** Points from the trait, dropping malformed entries. */
export function readPoints(rows: Array<Record<string, unknown>>): SweepPoint[] {
  return rows
    .filter((r) => typeof r.model === "string")
    .map((r) => ({
      model: r.model as string,
      x: num(r.x),
      x_lower: num(r.x_lower),
      x_upper: num(r.x_upper),
      y: num(r.y),
      y_lower: num(r.y_lower),
      y_upper: num(r.y_upper),
    }));
}

/** Finite extent of some numbers, widened when empty or flat. */
export function extent(values: number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  return [lo, hi];
}

/** SVG path of a polyline through the finite points (gaps split it). */
export function linePath(xs: number[], ys: number[], sx: LinearScale, sy: LinearScale): string {
  let d = "";
  let open = false;
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    if (!Number.isFinite(xs[i]) || !Number.isFinite(ys[i])) {
      open = false;
      continue;
    }
    d += `${open ? "L" : "M"}${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)}`;
    open = true;
  }
  return d;
}

/** SVG path of the band between lower and upper (finite layers only). */
export function bandPath(c: SweepCurve, sx: LinearScale, sy: LinearScale): string {
  const idx = c.depth.map((_, i) => i).filter((i) => [c.depth[i], c.lower[i], c.upper[i]].every(Number.isFinite));
  if (idx.length < 2) return "";
  const top = idx.map((i) => `${sx(c.depth[i]).toFixed(1)},${sy(c.upper[i]).toFixed(1)}`);
  const bottom = idx.reverse().map((i) => `${sx(c.depth[i]).toFixed(1)},${sy(c.lower[i]).toFixed(1)}`);
  return `M${top.join("L")}L${bottom.join("L")}Z`;
}

export class SweepView implements View {
  readonly el: HTMLDivElement;
  private readonly curvesSvg: SVGSVGElement;
  private readonly pointsSvg: SVGSVGElement;
  private readonly legend: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly subs: Subscriptions;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    this.subs = new Subscriptions(ctx.model);
    this.el = h(doc, "div", "tdw-view tdw-sweep");
    this.el.dataset.view = "sweep";
    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Models";
    header.appendChild(title);
    const panels = h(doc, "div", "tdw-sweep-panels");
    this.curvesSvg = svg(doc, "svg", { viewBox: `0 0 ${W} ${H}`, class: "tdw-sweep-curves", role: "img" });
    this.pointsSvg = svg(doc, "svg", { viewBox: `0 0 ${W} ${H}`, class: "tdw-sweep-points", role: "img" });
    panels.append(this.curvesSvg, this.pointsSvg);
    this.legend = h(doc, "div", "tdw-sweep-legend");
    this.caption = h(doc, "div", "tdw-sweep-caption");
    this.el.append(header, panels, this.legend, this.caption);
    const names = ["sweep_curves", "sweep_points", "sweep_correlation", "selected_model", "x_label", "y_label"];
    this.subs.traits(names, () => this.update());
    this.update();
  }

  /** Set `selected_model` (a click on a curve, a point or a legend entry). */
  select(model: string): void {
    this.ctx.model.set("selected_model", model);
    this.ctx.model.save_changes();
  }

  update(): void {
    const model = this.ctx.model;
    const curves = readCurves(getObjectList(model, "sweep_curves"));
    const points = readPoints(getObjectList(model, "sweep_points"));
    const selected = getString(model, "selected_model", "");
    const colour = new Map<string, string>();
    [...curves.map((c) => c.model), ...points.map((p) => p.model)].forEach((m) => {
      if (!colour.has(m)) colour.set(m, categoricalHex(colour.size));
    });
    this.drawCurves(curves, colour, selected);
    this.drawPoints(points, colour, selected);
    this.legend.replaceChildren(
      ...[...colour.entries()].map(([name, hex]) => {
        const item = h(this.ctx.doc, "button", "tdw-sweep-item", { type: "button" });
        item.textContent = name;
        item.style.borderLeft = `10px solid ${hex}`;
        item.classList.toggle("tdw-selected", name === selected);
        item.addEventListener("click", () => this.select(name));
        return item;
      }),
    );
    const corr = model.get("sweep_correlation") as Record<string, unknown> | null;
    const rho = num(corr?.rho);
    this.caption.textContent = Number.isFinite(rho)
      ? `Spearman rho = ${formatValue(rho, 2)} [${formatValue(num(corr?.lower), 2)}, ${formatValue(num(corr?.upper), 2)}] ` +
        `over ${num(corr?.n)} models (95% bootstrap over models)`
      : "Rank correlation: needs at least three models with a quality.";
    this.el.dataset.models = String(colour.size);
  }

  private axes(root: SVGSVGElement, sx: LinearScale, sy: LinearScale, xLabel: string, yLabel: string): void {
    const doc = this.ctx.doc;
    for (const t of ticks(sx.domain[0], sx.domain[1], 4)) {
      const label = svg(doc, "text", { x: sx(t), y: H - M.bottom + 14, "text-anchor": "middle", class: "tdw-tick" });
      label.textContent = formatValue(t, 2);
      root.appendChild(label);
    }
    for (const t of ticks(sy.domain[0], sy.domain[1], 4)) {
      const label = svg(doc, "text", { x: M.left - 4, y: sy(t) + 3, "text-anchor": "end", class: "tdw-tick" });
      label.textContent = formatValue(t, 2);
      root.appendChild(label);
    }
    const xl = svg(doc, "text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle", class: "tdw-axis-label" });
    xl.textContent = xLabel;
    const yl = svg(doc, "text", { x: 10, y: M.top - 2, class: "tdw-axis-label" });
    yl.textContent = yLabel;
    root.append(xl, yl);
  }

  private drawCurves(curves: SweepCurve[], colour: Map<string, string>, selected: string): void {
    const doc = this.ctx.doc;
    const root = this.curvesSvg;
    root.replaceChildren();
    const ys = curves.flatMap((c) => [...c.lower, ...c.upper, ...c.dimension]);
    const sx = linearScale([0, 1], [M.left, W - M.right]);
    const sy = linearScale(niceDomain(...extent(ys)), [H - M.bottom, M.top]);
    this.axes(root, sx, sy, "relative depth", getString(this.ctx.model, "y_label", "intrinsic dimension"));
    for (const c of curves) {
      const hex = colour.get(c.model) ?? "#888";
      const band = svg(doc, "path", { d: bandPath(c, sx, sy), fill: hex, "fill-opacity": 0.15, class: "tdw-sweep-band" });
      const line = svg(doc, "path", {
        d: linePath(c.depth, c.dimension, sx, sy),
        fill: "none",
        stroke: hex,
        "stroke-width": c.model === selected ? 3 : 1.5,
        class: "tdw-sweep-line",
      });
      line.dataset.model = c.model;
      line.style.cursor = "pointer";
      line.addEventListener("click", () => this.select(c.model));
      const tip = svg(doc, "title");
      tip.textContent = c.model;
      line.appendChild(tip);
      root.append(band, line);
    }
  }

  private drawPoints(points: SweepPoint[], colour: Map<string, string>, selected: string): void {
    const doc = this.ctx.doc;
    const root = this.pointsSvg;
    root.replaceChildren();
    const shown = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    const sx = linearScale(niceDomain(...extent(shown.flatMap((p) => [p.x, p.x_lower, p.x_upper]))), [M.left, W - M.right]);
    const sy = linearScale(niceDomain(...extent(shown.flatMap((p) => [p.y, p.y_lower, p.y_upper]))), [H - M.bottom, M.top]);
    const model = this.ctx.model;
    this.axes(root, sx, sy, getString(model, "x_label", "bits per byte"), getString(model, "y_label", "working dimension"));
    for (const p of shown) {
      const hex = colour.get(p.model) ?? "#888";
      const g = svg(doc, "g", { class: "tdw-sweep-point" });
      g.dataset.model = p.model;
      if (Number.isFinite(p.x_lower) && Number.isFinite(p.x_upper)) {
        g.appendChild(svg(doc, "line", { x1: sx(p.x_lower), x2: sx(p.x_upper), y1: sy(p.y), y2: sy(p.y), stroke: hex, class: "tdw-xerr" }));
      }
      if (Number.isFinite(p.y_lower) && Number.isFinite(p.y_upper)) {
        g.appendChild(svg(doc, "line", { x1: sx(p.x), x2: sx(p.x), y1: sy(p.y_lower), y2: sy(p.y_upper), stroke: hex, class: "tdw-yerr" }));
      }
      g.appendChild(svg(doc, "circle", { cx: sx(p.x), cy: sy(p.y), r: p.model === selected ? 6 : 4, fill: hex }));
      const tip = svg(doc, "title");
      tip.textContent = p.model;
      g.appendChild(tip);
      g.style.cursor = "pointer";
      g.addEventListener("click", () => this.select(p.model));
      root.appendChild(g);
    }
  }

  dispose(): void {
    this.subs.dispose();
    this.el.remove();
  }
}
