// One layer in detail (the `layer_detail` view): GRIDE's ID against neighbour rank, the
// correlation integral's local slope with its fitting window (drag an edge or type the radii:
// Python refits from the counts it keeps; the slope is previewed here while dragging), the ID
// against the number of points, and one estimate per prompt (a click selects that prompt's
// tokens in every linked view). Prompt text is untrusted: set with textContent only.

import type { View, ViewContext } from "./context";
import { h, svg } from "./dom";
import { getInt, getObjectList, Subscriptions, ThrottledSaver } from "./model";
import { formatTick, formatValue, linearScale, niceDomain, ticks, type LinearScale } from "./scales";

const W = 360;
const H = 220;
const M = { left: 42, right: 10, top: 14, bottom: 36 };
const X0 = M.left;
const X1 = W - M.right;
const Y0 = H - M.bottom;
const Y1 = M.top;

const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(num) : []);

/** One scale of the GRIDE curve (the `scale_curve` trait). */
export interface ScalePoint {
  n1: number;
  n2: number;
  radius: number;
  dimension: number;
  lower: number;
  upper: number;
  method: string;
}

/** One sample size of the convergence panel (the `convergence` trait). */
export interface SizePoint {
  n: number;
  dimension: number;
  lower: number;
  upper: number;
  estimator: string;
}

/** One prompt's estimate (the `prompts` trait). */
export interface PromptPoint {
  prompt: number;
  nTokens: number;
  dimension: number;
  lower: number;
  upper: number;
  text: string;
}

/** The correlation integral on its radius grid (the `correlation` trait). */
export interface Correlation {
  radii: number[];
  curve: number[];
  slope: number[];
  defaultWindow: [number, number];
  nCounted: number;
}

export function readScales(rows: Array<Record<string, unknown>>): ScalePoint[] {
  return rows
    .map((r) => ({
      n1: num(r.n1),
      n2: num(r.n2),
      radius: num(r.radius),
      dimension: num(r.dimension),
      lower: num(r.lower),
      upper: num(r.upper),
      method: typeof r.interval_method === "string" ? r.interval_method : "",
    }))
    .filter((p) => p.n1 > 0);
}

export function readSizes(rows: Array<Record<string, unknown>>): SizePoint[] {
  return rows
    .map((r) => ({
      n: num(r.n),
      dimension: num(r.dimension),
      lower: num(r.lower),
      upper: num(r.upper),
      estimator: typeof r.estimator === "string" ? r.estimator : "",
    }))
    .filter((p) => p.n > 0);
}

export function readPrompts(rows: Array<Record<string, unknown>>): PromptPoint[] {
  return rows
    .map((r) => ({
      prompt: num(r.prompt),
      nTokens: num(r.n_tokens),
      dimension: num(r.dimension),
      lower: num(r.lower),
      upper: num(r.upper),
      text: typeof r.text === "string" ? r.text : "",
    }))
    .filter((p) => Number.isInteger(p.prompt));
}

export function readCorrelation(value: unknown): Correlation | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const radii = nums(v.radii);
  if (radii.length < 2) return null;
  const w = nums(v.default_window);
  return {
    radii,
    curve: nums(v.curve),
    slope: nums(v.slope),
    defaultWindow: [w[0] ?? Number.NaN, w[1] ?? Number.NaN],
    nCounted: num(v.n_counted),
  };
}

/** A log10 scale: positive values to pixels, with its inverse. */
export interface LogScale {
  (value: number): number;
  invert(pixel: number): number;
  domain: [number, number];
}

export function logScale(domain: [number, number], range: [number, number]): LogScale {
  const inner = linearScale([Math.log10(domain[0]), Math.log10(domain[1])], range);
  const scale = ((v: number) => inner(Math.log10(v))) as LogScale;
  scale.invert = (px: number) => Math.pow(10, inner.invert(px));
  scale.domain = domain;
  return scale;
}

/** Round radii (1, 2, 5 x 10^k) inside [lo, hi] for a log axis; ends when there are too few. */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  if (!(lo > 0 && hi > lo)) return out;
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, e);
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  const chosen = out.length > 6 ? out.filter((v) => Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9) : out;
  return chosen.length >= 2 ? chosen : [lo, hi];
}

/**
 * The correlation dimension in [lo, hi] as Python fits it: the least-squares slope of log C on
 * log r over the grid radii inside the window with C > 0. Null with fewer than three.
 */
export function windowSlope(
  radii: number[],
  curve: number[],
  lo: number,
  hi: number,
): { dimension: number; intercept: number; n: number } | null {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < Math.min(radii.length, curve.length); i++) {
    if (radii[i] >= lo && radii[i] <= hi && curve[i] > 0) {
      xs.push(Math.log(radii[i]));
      ys.push(Math.log(curve[i]));
    }
  }
  if (xs.length < 3) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const dimension = sxy / sxx;
  return { dimension, intercept: my - dimension * mx, n: xs.length };
}

/** Keep a dragged window inside the grid, ordered, and at least 1% wide. */
export function clampWindow(lo: number, hi: number, bounds: [number, number]): [number, number] {
  let a = Math.min(Math.max(lo, bounds[0]), bounds[1]);
  let b = Math.min(Math.max(hi, bounds[0]), bounds[1]);
  if (a > b) [a, b] = [b, a];
  if (b < a * 1.01) {
    b = Math.min(bounds[1], a * 1.01);
    a = Math.min(a, b / 1.01);
  }
  return [a, b];
}

/** Counts of `values` in `bins` equal bins over [lo, hi] (the last bin holds hi). */
export function histogram(values: number[], lo: number, hi: number, bins: number): number[] {
  const out = new Array<number>(bins).fill(0);
  const width = (hi - lo) / bins;
  for (const v of values) {
    if (!Number.isFinite(v) || v < lo || v > hi || !(width > 0)) continue;
    out[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1;
  }
  return out;
}

/** Finite extent, widened when empty or flat. */
function extent(values: number[]): [number, number] {
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

/** A deterministic jitter in [-1, 1] for a prompt (the strip's vertical offset). */
export function jitter(i: number): number {
  const x = Math.sin(i * 12.9898 + 78.233) * 43758.5453;
  return 2 * (x - Math.floor(x)) - 1;
}

const STYLE = `
.tdw-root .tdw-ld-panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px; }
.tdw-root .tdw-ld-panel { border: 1px solid var(--tdw-border); border-radius: 4px; padding: 4px 6px; min-width: 0; position: relative; }
.tdw-root .tdw-ld-panel-title { font-weight: 600; font-size: 12px; display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.tdw-root .tdw-ld-panel svg { width: 100%; height: auto; display: block; }
.tdw-root .tdw-ld text { fill: var(--tdw-fg); font-size: 10px; }
.tdw-root .tdw-ld .tdw-ld-axis { stroke: var(--tdw-border); }
.tdw-root .tdw-ld .tdw-ld-grid { stroke: var(--tdw-grid); }
.tdw-root .tdw-ld .tdw-ld-line { fill: none; stroke: var(--tdw-accent); stroke-width: 1.6; }
.tdw-root .tdw-ld .tdw-ld-band { fill: var(--tdw-accent); fill-opacity: 0.18; stroke: none; }
.tdw-root .tdw-ld .tdw-ld-err { stroke: var(--tdw-accent); stroke-width: 1.2; }
.tdw-root .tdw-ld .tdw-ld-dot { fill: var(--tdw-accent); stroke: var(--tdw-panel); stroke-width: 0.8; }
.tdw-root .tdw-ld .tdw-ld-prompt { fill: var(--tdw-accent); fill-opacity: 0.75; cursor: pointer; }
.tdw-root .tdw-ld .tdw-ld-prompt:hover { fill-opacity: 1; }
.tdw-root .tdw-ld .tdw-ld-prompt.tdw-ld-selected { fill: var(--tdw-selection); fill-opacity: 1; stroke: var(--tdw-fg); stroke-width: 1; }
.tdw-root .tdw-ld .tdw-ld-bar { fill: var(--tdw-muted); fill-opacity: 0.35; }
.tdw-root .tdw-ld .tdw-ld-window { fill: var(--tdw-accent); fill-opacity: 0.1; }
.tdw-root .tdw-ld .tdw-ld-edge { stroke: var(--tdw-fg); stroke-width: 1.5; stroke-dasharray: 3 2; pointer-events: none; }
.tdw-root .tdw-ld .tdw-ld-handle { fill: transparent; cursor: ew-resize; touch-action: none; }
.tdw-root .tdw-ld .tdw-ld-handle:hover + .tdw-ld-edge, .tdw-root .tdw-ld .tdw-ld-edge.tdw-ld-dragging { stroke-width: 3; }
.tdw-root .tdw-ld .tdw-ld-fit { stroke: var(--tdw-selection); stroke-width: 2; }
.tdw-root .tdw-ld .tdw-ld-fitband { fill: var(--tdw-selection); fill-opacity: 0.2; }
.tdw-root .tdw-ld-caption { font-size: 11px; color: var(--tdw-muted); min-height: 1.4em; }
.tdw-root .tdw-ld-inputs { display: flex; gap: 6px; align-items: center; font-size: 11px; flex-wrap: wrap; }
.tdw-root .tdw-ld-inputs input { width: 6.5em; font: inherit; color: var(--tdw-fg); background: var(--tdw-bg); border: 1px solid var(--tdw-border); border-radius: 3px; padding: 1px 4px; }
.tdw-root .tdw-ld-inputs button { font: inherit; color: var(--tdw-fg); background: none; border: 1px solid var(--tdw-border); border-radius: 3px; cursor: pointer; }
.tdw-root .tdw-ld-status { font-size: 11px; color: var(--tdw-muted); font-weight: 400; }
.tdw-root .tdw-ld-status[data-state='error'] { color: var(--tdw-error-fg); }
`;

type PanelName = "scale" | "correlation" | "convergence" | "prompts";

interface Panel {
  root: HTMLDivElement;
  status: HTMLSpanElement;
  svg: SVGSVGElement;
  caption: HTMLDivElement;
}

export class LayerDetailView implements View {
  readonly el: HTMLDivElement;
  readonly panels: Record<PanelName, Panel>;
  readonly loInput: HTMLInputElement;
  readonly hiInput: HTMLInputElement;
  private readonly title: HTMLDivElement;
  private readonly subs: Subscriptions;
  private readonly saver: ThrottledSaver;
  /** The window shown: the model's, or the one being dragged. */
  win: [number, number] | null = null;
  private dragging: "lo" | "hi" | null = null;
  /** The radius scale of the last drawing of the correlation panel (drags invert it). */
  rScale: LogScale | null = null;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    this.subs = new Subscriptions(ctx.model);
    this.saver = new ThrottledSaver(ctx.model, 80);
    this.el = h(doc, "div", "tdw-view tdw-ld");
    this.el.dataset.view = "layer_detail";
    const style = h(doc, "style");
    style.textContent = STYLE;
    const header = h(doc, "div", "tdw-view-header");
    this.title = h(doc, "div", "tdw-view-title");
    header.appendChild(this.title);
    const grid = h(doc, "div", "tdw-ld-panels");
    const make = (name: PanelName, label: string, help: string): Panel => {
      const root = h(doc, "div", "tdw-ld-panel");
      root.dataset.panel = name;
      const head = h(doc, "div", "tdw-ld-panel-title", { title: help });
      const text = h(doc, "span");
      text.textContent = label;
      const status = h(doc, "span", "tdw-ld-status");
      head.append(text, status);
      const plot = svg(doc, "svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
      const caption = h(doc, "div", "tdw-ld-caption");
      root.append(head, plot, caption);
      grid.appendChild(root);
      return { root, status, svg: plot, caption };
    };
    this.panels = {
      scale: make(
        "scale",
        "ID against scale (GRIDE)",
        "GRIDE's estimate from the ratio of the n2-th to the n1-th neighbour distance, n2 = 2 n1. " +
          "n1 = 1 is TwoNN; larger n1 read the dimension over larger neighbourhoods. A flat curve: " +
          "the estimate does not depend on the scale. Band: 95% interval resampling whole prompts.",
      ),
      correlation: make(
        "correlation",
        "Correlation integral: local slope",
        "d log C / d log r of the correlation integral C(r) (the fraction of pairs closer than r). " +
          "A plateau is a scaling range; its height is the dimension. The shaded window is where the " +
          "Grassberger-Procaccia slope is fitted: drag its edges or type the radii. Orange: the " +
          "fitted slope and its 95% interval (bootstrap over prompts).",
      ),
      convergence: make(
        "convergence",
        "ID against number of points",
        "The layer's estimate on N, N/2, N/4, ... distinct points (seeded subsamples). Estimators " +
          "are biased low at small N: a value still rising with N says more points would raise it. " +
          "Bars: 95% intervals resampling whole prompts.",
      ),
      prompts: make(
        "prompts",
        "ID per prompt",
        "One TwoNN estimate (maximum likelihood) per prompt, from that prompt's tokens alone. Bars: " +
          "histogram of the estimates; dots: one per prompt. Click a dot to select that prompt's " +
          "tokens in every view (click it again to clear).",
      ),
    };
    // Window fields under the correlation plot.
    const inputs = h(doc, "div", "tdw-ld-inputs");
    const field = (label: string): HTMLInputElement => {
      const wrap = h(doc, "label");
      wrap.textContent = `${label} `;
      const input = h(doc, "input", "", { type: "number", step: "any", min: "0", "aria-label": label });
      wrap.appendChild(input);
      inputs.appendChild(wrap);
      return input;
    };
    this.loInput = field("r min");
    this.hiInput = field("r max");
    const reset = h(doc, "button", "", { type: "button", title: "Back to the estimator's window (10th to 20th neighbour)" });
    reset.textContent = "default";
    inputs.appendChild(reset);
    this.panels.correlation.root.insertBefore(inputs, this.panels.correlation.caption);
    this.el.append(style, header, grid);

    const commit = (): void => {
      // A field left as shown keeps its exact value (the text is rounded).
      const read = (input: HTMLInputElement, current: number | undefined): number =>
        current !== undefined && input.value === formatValue(current, 4) ? current : Number(input.value);
      const lo = read(this.loInput, this.win?.[0]);
      const hi = read(this.hiInput, this.win?.[1]);
      if (lo > 0 && hi > lo) this.setWindow([lo, hi], true);
      else this.fillInputs();
    };
    for (const input of [this.loInput, this.hiInput]) {
      this.subs.dom(input, "change", commit);
      this.subs.dom(input, "keydown", (e: KeyboardEvent) => {
        // Keep Enter (and the rest) from reaching JupyterLab's notebook shortcuts.
        e.stopPropagation();
        if (e.key === "Enter") commit();
      });
    }
    this.subs.dom(reset, "click", () => {
      const c = readCorrelation(this.ctx.model.get("correlation"));
      if (c) this.setWindow(c.defaultWindow, true);
    });
    this.subs.dom(doc, "pointermove", (e: PointerEvent) => this.onDrag(e));
    this.subs.dom(doc, "pointerup", () => this.endDrag());
    this.subs.add(() => this.saver.cancel());

    this.subs.traits(["layer", "n_layers", "panel_status"], () => this.drawHeader());
    this.subs.traits(["scale_curve"], () => this.drawScale());
    this.subs.traits(["correlation", "window_fit"], () => this.drawCorrelation());
    this.subs.traits(["window"], () => {
      if (this.dragging === null) this.win = this.modelWindow();
      this.drawCorrelation();
    });
    this.subs.traits(["convergence"], () => this.drawConvergence());
    this.subs.traits(["prompts", "selected_prompts", "prompt_note"], () => this.drawPrompts());
    this.win = this.modelWindow();
    this.update();
  }

  update(): void {
    this.drawHeader();
    this.drawScale();
    this.drawCorrelation();
    this.drawConvergence();
    this.drawPrompts();
  }

  private modelWindow(): [number, number] | null {
    const w = nums(this.ctx.model.get("window"));
    return w.length === 2 && w[0] > 0 && w[1] > w[0] ? [w[0], w[1]] : null;
  }

  /** Show a window; with `save`, send it to Python (which refits). */
  setWindow(w: [number, number], save: boolean): void {
    this.win = w;
    this.drawCorrelation();
    if (save) {
      this.ctx.model.set("window", [w[0], w[1]]);
      if (this.dragging === null) this.saver.flush();
      else this.saver.save();
    }
  }

  private fillInputs(): void {
    const doc = this.ctx.doc;
    const w = this.win;
    for (const [input, v] of [
      [this.loInput, w?.[0]],
      [this.hiInput, w?.[1]],
    ] as Array<[HTMLInputElement, number | undefined]>) {
      if (doc.activeElement === input) continue;
      input.value = v === undefined ? "" : formatValue(v, 4);
    }
  }

  private drawHeader(): void {
    const model = this.ctx.model;
    const layer = getInt(model, "layer", -1);
    const n = getInt(model, "n_layers", 0);
    this.title.textContent = layer >= 0 ? `Layer ${layer} of ${n} in detail` : "Layer detail";
    this.el.dataset.layer = String(layer);
    const status = (model.get("panel_status") ?? {}) as Record<string, unknown>;
    for (const [name, panel] of Object.entries(this.panels) as Array<[PanelName, Panel]>) {
      const s = typeof status[name] === "string" ? (status[name] as string) : "";
      panel.root.dataset.status = s.startsWith("error") ? "error" : s;
      panel.status.dataset.state = s.startsWith("error") ? "error" : s;
      panel.status.textContent = s === "ready" || s === "" ? "" : s === "computing" ? "computing…" : s;
    }
  }

  private frame(root: SVGSVGElement, sx: (v: number) => number, xt: number[], xfmt: (v: number) => string, sy: LinearScale, xLabel: string, yLabel: string): void {
    const doc = this.ctx.doc;
    const yt = ticks(sy.domain[0], sy.domain[1], 4);
    const step = yt.length > 1 ? yt[1] - yt[0] : 1;
    for (const t of yt) {
      root.appendChild(svg(doc, "line", { x1: X0, x2: X1, y1: sy(t), y2: sy(t), class: "tdw-ld-grid" }));
      const label = svg(doc, "text", { x: X0 - 4, y: sy(t) + 3, "text-anchor": "end" });
      label.textContent = formatTick(t, step);
      root.appendChild(label);
    }
    for (const t of xt) {
      const label = svg(doc, "text", { x: sx(t), y: Y0 + 13, "text-anchor": "middle" });
      label.textContent = xfmt(t);
      root.appendChild(label);
    }
    root.appendChild(svg(doc, "line", { x1: X0, x2: X1, y1: Y0, y2: Y0, class: "tdw-ld-axis" }));
    root.appendChild(svg(doc, "line", { x1: X0, x2: X0, y1: Y0, y2: Y1, class: "tdw-ld-axis" }));
    const xl = svg(doc, "text", { x: (X0 + X1) / 2, y: H - 6, "text-anchor": "middle", class: "tdw-ld-xlabel" });
    xl.textContent = xLabel;
    const yl = svg(doc, "text", { x: 12, y: (Y0 + Y1) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(Y0 + Y1) / 2})`, class: "tdw-ld-ylabel" });
    yl.textContent = yLabel;
    root.append(xl, yl);
  }

  private tip(el: SVGElement, text: string): void {
    const title = svg(this.ctx.doc, "title");
    title.textContent = text;
    el.appendChild(title);
  }

  drawScale(): void {
    const doc = this.ctx.doc;
    const panel = this.panels.scale;
    const root = panel.svg;
    root.replaceChildren();
    const pts = readScales(getObjectList(this.ctx.model, "scale_curve"));
    panel.root.dataset.points = String(pts.length);
    if (pts.length === 0) {
      panel.caption.textContent = "";
      return;
    }
    const lx = pts.map((p) => Math.log2(p.n1));
    const sx = linearScale(lx.length > 1 ? [lx[0] - 0.3, lx[lx.length - 1] + 0.3] : [lx[0] - 1, lx[0] + 1], [X0, X1]);
    const sy = linearScale(niceDomain(...extent(pts.flatMap((p) => [p.lower, p.upper, p.dimension]))), [Y0, Y1]);
    this.frame(root, sx, lx, (v) => `${Math.round(2 ** v)}`, sy, "neighbour rank n1 (n2 = 2 n1)", "intrinsic dimension");
    const finite = pts.filter((p) => [p.lower, p.upper].every(Number.isFinite));
    if (finite.length > 1) {
      const top = finite.map((p) => `${sx(Math.log2(p.n1)).toFixed(1)},${sy(p.upper).toFixed(1)}`);
      const bottom = finite.map((p) => `${sx(Math.log2(p.n1)).toFixed(1)},${sy(p.lower).toFixed(1)}`).reverse();
      const band = svg(doc, "path", { d: `M${top.join("L")}L${bottom.join("L")}Z`, class: "tdw-ld-band" });
      this.tip(band, `95% interval (${pts[0].method || "resampled"}): whole prompts are resampled, since a prompt's tokens are not independent.`);
      root.appendChild(band);
    }
    const line = pts
      .filter((p) => Number.isFinite(p.dimension))
      .map((p, i) => `${i === 0 ? "M" : "L"}${sx(Math.log2(p.n1)).toFixed(1)},${sy(p.dimension).toFixed(1)}`)
      .join("");
    root.appendChild(svg(doc, "path", { d: line, class: "tdw-ld-line" }));
    for (const p of pts) {
      if (!Number.isFinite(p.dimension)) continue;
      const dot = svg(doc, "circle", { cx: sx(Math.log2(p.n1)), cy: sy(p.dimension), r: 3.5, class: "tdw-ld-dot" });
      this.tip(
        dot,
        `n1 = ${p.n1}, n2 = ${p.n2}: ID ${formatValue(p.dimension)} [${formatValue(p.lower)}, ${formatValue(p.upper)}] ` +
          `(95%, ${p.method}); mean distance to the ${p.n2}th neighbour ${formatValue(p.radius)}`,
      );
      root.appendChild(dot);
    }
    const first = pts[0];
    const last = pts[pts.length - 1];
    panel.caption.textContent =
      `n1 = ${first.n1}: ${formatValue(first.dimension)}, n1 = ${last.n1}: ${formatValue(last.dimension)} ` +
      `(radius ${formatValue(first.radius)} to ${formatValue(last.radius)})`;
  }

  drawCorrelation(): void {
    const doc = this.ctx.doc;
    const panel = this.panels.correlation;
    const root = panel.svg;
    root.replaceChildren();
    this.fillInputs();
    const c = readCorrelation(this.ctx.model.get("correlation"));
    if (c === null) {
      panel.caption.textContent = "";
      this.rScale = null;
      return;
    }
    // x: the radii where the slope is defined (C > 0 on both sides), y: 0 to the upper slopes.
    const idx = c.radii.map((_, i) => i).filter((i) => Number.isFinite(c.slope[i]) && c.curve[i] > 0);
    const shown = idx.length >= 2 ? idx : c.radii.map((_, i) => i);
    const rLo = c.radii[shown[0]];
    const rHi = c.radii[shown[shown.length - 1]];
    const sx = logScale([rLo, rHi], [X0, X1]);
    this.rScale = sx;
    const fit = (this.ctx.model.get("window_fit") ?? {}) as Record<string, unknown>;
    const slopes = idx.map((i) => c.slope[i]).sort((a, b) => a - b);
    const q95 = slopes.length ? slopes[Math.floor(0.95 * (slopes.length - 1))] : 1;
    const yTop = Math.max(q95, num(fit.upper) || 0) * 1.1;
    const sy = linearScale(niceDomain(0, yTop > 0 ? yTop : 1), [Y0, Y1]);
    const clampY = (v: number): number => Math.max(Y1, Math.min(Y0, sy(v)));
    this.frame(root, sx, logTicks(rLo, rHi), (v) => formatValue(v, 2), sy, "radius r (log scale)", "d log C / d log r");
    const w = this.win;
    const live = w ? windowSlope(c.radii, c.curve, w[0], w[1]) : null;
    // The fitted value: Python's when it matches the shown window, else the preview.
    const matches = w !== null && Math.abs(num(fit.r_min) - w[0]) <= 1e-6 * w[0] && Math.abs(num(fit.r_max) - w[1]) <= 1e-6 * w[1];
    if (w) {
      const a = Math.max(X0, Math.min(X1, sx(w[0])));
      const b = Math.max(X0, Math.min(X1, sx(w[1])));
      const rect = svg(doc, "rect", { x: a, y: Y1, width: Math.max(1, b - a), height: Y0 - Y1, class: "tdw-ld-window" });
      this.tip(rect, `fitting window r = ${formatValue(w[0])} to ${formatValue(w[1])}`);
      root.appendChild(rect);
      if (matches && Number.isFinite(num(fit.lower)) && Number.isFinite(num(fit.upper))) {
        const band = svg(doc, "rect", {
          x: a,
          y: clampY(num(fit.upper)),
          width: Math.max(1, b - a),
          height: Math.max(1, clampY(num(fit.lower)) - clampY(num(fit.upper))),
          class: "tdw-ld-fitband",
        });
        this.tip(band, "95% interval of the window's slope: replicates resample whole prompts (group bootstrap)");
        root.appendChild(band);
      }
      const value = matches ? num(fit.dimension) : live?.dimension ?? Number.NaN;
      if (Number.isFinite(value)) {
        const fl = svg(doc, "line", { x1: a, x2: b, y1: clampY(value), y2: clampY(value), class: "tdw-ld-fit" });
        this.tip(fl, `correlation dimension in the window: ${formatValue(value)}`);
        root.appendChild(fl);
      }
    }
    const d = shown
      .filter((i) => Number.isFinite(c.slope[i]))
      .map((i, k) => `${k === 0 ? "M" : "L"}${sx(c.radii[i]).toFixed(1)},${clampY(c.slope[i]).toFixed(1)}`)
      .join("");
    const line = svg(doc, "path", { d, class: "tdw-ld-line" });
    this.tip(line, "local slope d log C / d log r: a plateau is a scaling range, its height the dimension");
    root.appendChild(line);
    if (w) {
      for (const edge of ["lo", "hi"] as const) {
        const x = Math.max(X0, Math.min(X1, sx(edge === "lo" ? w[0] : w[1])));
        const handle = svg(doc, "rect", { x: x - 6, y: Y1, width: 12, height: Y0 - Y1, class: "tdw-ld-handle" });
        handle.dataset.edge = edge;
        this.tip(handle, `drag to move the window's ${edge === "lo" ? "lower" : "upper"} end`);
        const mark = svg(doc, "line", { x1: x, x2: x, y1: Y1, y2: Y0, class: "tdw-ld-edge" });
        mark.classList.toggle("tdw-ld-dragging", this.dragging === edge);
        handle.addEventListener("pointerdown", (e: PointerEvent) => this.startDrag(edge, e));
        root.append(handle, mark);
      }
    }
    panel.root.dataset.window = w ? `${w[0]},${w[1]}` : "";
    const dim = matches ? num(fit.dimension) : live?.dimension ?? Number.NaN;
    const err = typeof fit.error === "string" ? fit.error : "";
    if (err && !live) {
      panel.caption.textContent = err;
    } else if (Number.isFinite(dim)) {
      const interval = matches ? ` [${formatValue(num(fit.lower))}, ${formatValue(num(fit.upper))}] 95%` : " (preview)";
      const n = matches ? num(fit.n_radii) : live?.n ?? 0;
      panel.caption.textContent =
        `window ${formatValue(w?.[0] ?? Number.NaN)}–${formatValue(w?.[1] ?? Number.NaN)}: slope ${formatValue(dim)}${interval}, ` +
        `${n} radii; ${c.nCounted} points counted`;
    } else {
      panel.caption.textContent = "The window holds fewer than three radii with pairs: widen it.";
    }
    panel.root.dataset.fit = matches ? "python" : "preview";
  }

  private startDrag(edge: "lo" | "hi", e: PointerEvent): void {
    e.preventDefault();
    e.stopPropagation();
    this.dragging = edge;
  }

  /** Radius under a client x coordinate of the correlation plot. */
  radiusAt(clientX: number): number | null {
    const sx = this.rScale;
    if (!sx) return null;
    const rect = this.panels.correlation.svg.getBoundingClientRect();
    const px = rect.width > 0 ? ((clientX - rect.left) / rect.width) * W : clientX;
    return sx.invert(Math.max(X0, Math.min(X1, px)));
  }

  private onDrag(e: PointerEvent): void {
    if (this.dragging === null || this.win === null || this.rScale === null) return;
    const r = this.radiusAt(e.clientX);
    if (r === null) return;
    const [lo, hi] = this.win;
    const next = this.dragging === "lo" ? clampWindow(Math.min(r, hi / 1.01), hi, this.rScale.domain) : clampWindow(lo, Math.max(r, lo * 1.01), this.rScale.domain);
    this.setWindow(next, true);
  }

  private endDrag(): void {
    if (this.dragging === null) return;
    this.dragging = null;
    this.saver.flush();
    this.drawCorrelation();
  }

  drawConvergence(): void {
    const doc = this.ctx.doc;
    const panel = this.panels.convergence;
    const root = panel.svg;
    root.replaceChildren();
    const pts = readSizes(getObjectList(this.ctx.model, "convergence")).sort((a, b) => a.n - b.n);
    panel.root.dataset.points = String(pts.length);
    if (pts.length === 0) {
      panel.caption.textContent = "";
      return;
    }
    const lx = pts.map((p) => Math.log2(p.n));
    const sx = linearScale(lx.length > 1 ? [lx[0] - 0.3, lx[lx.length - 1] + 0.3] : [lx[0] - 1, lx[0] + 1], [X0, X1]);
    const sy = linearScale(niceDomain(...extent(pts.flatMap((p) => [p.lower, p.upper, p.dimension]))), [Y0, Y1]);
    this.frame(root, sx, lx, (v) => `${Math.round(2 ** v)}`, sy, "distinct points N (log scale)", "intrinsic dimension");
    const d = pts
      .filter((p) => Number.isFinite(p.dimension))
      .map((p, i) => `${i === 0 ? "M" : "L"}${sx(Math.log2(p.n)).toFixed(1)},${sy(p.dimension).toFixed(1)}`)
      .join("");
    root.appendChild(svg(doc, "path", { d, class: "tdw-ld-line" }));
    for (const p of pts) {
      const x = sx(Math.log2(p.n));
      const g = svg(doc, "g", { class: "tdw-ld-size" });
      if (Number.isFinite(p.lower) && Number.isFinite(p.upper)) {
        g.appendChild(svg(doc, "line", { x1: x, x2: x, y1: sy(p.lower), y2: sy(p.upper), class: "tdw-ld-err" }));
      }
      if (Number.isFinite(p.dimension)) g.appendChild(svg(doc, "circle", { cx: x, cy: sy(p.dimension), r: 3.5, class: "tdw-ld-dot" }));
      this.tip(g, `N = ${p.n}: ${p.estimator} ${formatValue(p.dimension)} [${formatValue(p.lower)}, ${formatValue(p.upper)}] (95%, prompts resampled)`);
      root.appendChild(g);
    }
    const big = pts[pts.length - 1];
    const half = pts.length > 1 ? pts[pts.length - 2] : null;
    panel.caption.textContent = half
      ? `${big.estimator}: ${formatValue(big.dimension)} at N = ${big.n}, ${formatValue(half.dimension)} at N = ${half.n}`
      : `${big.estimator}: ${formatValue(big.dimension)} at N = ${big.n}`;
  }

  drawPrompts(): void {
    const doc = this.ctx.doc;
    const panel = this.panels.prompts;
    const root = panel.svg;
    root.replaceChildren();
    const pts = readPrompts(getObjectList(this.ctx.model, "prompts"));
    const selected = new Set(nums(this.ctx.model.get("selected_prompts")));
    panel.root.dataset.prompts = String(pts.length);
    panel.root.dataset.selected = String(pts.filter((p) => selected.has(p.prompt)).length);
    const note = String(this.ctx.model.get("prompt_note") ?? "");
    if (pts.length === 0) {
      panel.caption.textContent = note;
      return;
    }
    const values = pts.map((p) => p.dimension);
    const [lo, hi] = niceDomain(...extent(values));
    const sx = linearScale([lo, hi], [X0, X1]);
    const bins = Math.max(5, Math.min(30, Math.round(Math.sqrt(pts.length) * 1.5)));
    const counts = histogram(values, lo, hi, bins);
    // Histogram above, strip of prompts below (the bottom quarter of the plot).
    const stripTop = Y0 - (Y0 - Y1) * 0.28;
    const sy = linearScale([0, Math.max(1, ...counts) * 1.1], [stripTop - 4, Y1]);
    const xt = ticks(lo, hi, 5);
    const xStep = xt.length > 1 ? xt[1] - xt[0] : 1;
    this.frame(root, sx, xt, (v) => formatTick(v, xStep), sy, "intrinsic dimension of the prompt", "prompts");
    const bw = (X1 - X0) / bins;
    counts.forEach((n, b) => {
      if (n === 0) return;
      const bar = svg(doc, "rect", { x: X0 + b * bw + 0.5, y: sy(n), width: Math.max(1, bw - 1), height: sy(0) - sy(n), class: "tdw-ld-bar" });
      this.tip(bar, `${n} prompt(s) with ID ${formatValue(lo + b * ((hi - lo) / bins))} to ${formatValue(lo + (b + 1) * ((hi - lo) / bins))}`);
      root.appendChild(bar);
    });
    const mid = (stripTop + Y0) / 2;
    const half = (Y0 - stripTop) / 2 - 4;
    for (const p of pts) {
      if (!Number.isFinite(p.dimension)) continue;
      const isSel = selected.has(p.prompt);
      const dot = svg(doc, "circle", {
        cx: sx(p.dimension),
        cy: mid + jitter(p.prompt) * half,
        r: isSel ? 5 : 3.2,
        class: `tdw-ld-prompt${isSel ? " tdw-ld-selected" : ""}`,
      });
      dot.dataset.prompt = String(p.prompt);
      this.tip(
        dot,
        `prompt ${p.prompt} (${p.nTokens} tokens): ID ${formatValue(p.dimension)} [${formatValue(p.lower)}, ${formatValue(p.upper)}]` +
          `${p.text ? ` — ${p.text}` : ""}\n${isSel ? "click to clear the selection" : "click to select its tokens"}`,
      );
      dot.addEventListener("click", () => this.selectPrompt(isSel ? null : p.prompt));
      root.appendChild(dot);
    }
    const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
    const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : Number.NaN;
    panel.caption.textContent = `${pts.length} prompts, median ${formatValue(median)}. ${note}`;
  }

  /** Ask Python to select a prompt's tokens in the session (null clears). */
  selectPrompt(prompt: number | null): void {
    this.ctx.model.send({ type: "select_prompt", prompt });
  }

  dispose(): void {
    this.dragging = null;
    this.subs.dispose();
    this.el.remove();
  }
}

