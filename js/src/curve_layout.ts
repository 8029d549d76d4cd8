// Pure layout of the ID-curve chart: scales, ticks, paths, peak markers and legend positions.
// Kept free of the DOM so it can be unit-tested and reused by the SVG export.

import {
  categoricalHex,
  formatTick,
  integerTicks,
  linearScale,
  niceDomain,
  tickStep,
  ticks,
  type LinearScale,
} from "./scales";

/** One curve as sent by Python in the `curves` trait. */
export interface CurveSpec {
  label: string;
  estimator: string;
  model: string;
  color: string | null;
  layers: number[];
  dimension: number[];
  lower: number[];
  upper: number[];
  peak_layer: number | null;
}

function numberList(value: unknown): number[] {
  if (!Array.isArray(value)) return [];
  // JSON has no NaN: Python sends null for a missing value.
  return value.map((v) => (typeof v === "number" ? v : v === null ? NaN : Number(v)));
}

/** Validate the `curves` trait; malformed entries are dropped, short arrays padded with NaN. */
export function parseCurves(value: unknown): CurveSpec[] {
  if (!Array.isArray(value)) return [];
  const out: CurveSpec[] = [];
  value.forEach((raw, i) => {
    if (typeof raw !== "object" || raw === null) return;
    const r = raw as Record<string, unknown>;
    const layers = numberList(r.layers);
    const n = layers.length;
    const pad = (list: number[]): number[] => {
      const l = list.slice(0, n);
      while (l.length < n) l.push(NaN);
      return l;
    };
    const dimension = pad(numberList(r.dimension));
    const lower = pad(numberList(r.lower));
    const upper = pad(numberList(r.upper));
    const peak = typeof r.peak_layer === "number" && Number.isFinite(r.peak_layer) ? r.peak_layer : null;
    out.push({
      label: typeof r.label === "string" && r.label.length > 0 ? r.label : `curve ${i + 1}`,
      estimator: typeof r.estimator === "string" ? r.estimator : "",
      model: typeof r.model === "string" ? r.model : "",
      color: typeof r.color === "string" && r.color.length > 0 ? r.color : null,
      layers,
      dimension,
      lower,
      upper,
      peak_layer: peak,
    });
  });
  return out;
}

export interface Tick {
  value: number;
  px: number;
  label: string;
}

export interface PointLayout {
  layer: number;
  value: number;
  lower: number;
  upper: number;
  x: number;
  y: number;
}

export interface SeriesLayout {
  label: string;
  color: string;
  /** SVG path data of the line (one sub-path per run of finite values). */
  line: string;
  /** SVG path data of the error band (closed polygons where lower and upper are finite). */
  band: string;
  points: PointLayout[];
  peak: PointLayout | null;
}

export interface LegendItem {
  label: string;
  color: string;
  x: number;
  y: number;
}

export interface Margin {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

export interface CurveLayout {
  width: number;
  height: number;
  margin: Margin;
  /** Plot area in pixels. */
  plot: { x0: number; x1: number; y0: number; y1: number };
  x: LinearScale;
  y: LinearScale;
  xTicks: Tick[];
  yTicks: Tick[];
  series: SeriesLayout[];
  /** All layers present in any curve (sorted, unique), or 0..n_layers-1 when no curve. */
  layers: number[];
  /** Pixel x of the current layer's rule, null when the layer is outside the axis. */
  layerX: number | null;
  legend: LegendItem[];
}

export interface LayoutOptions {
  width: number;
  height: number;
  layer: number;
  nLayers: number;
  /** Approximate width of one character of legend text, in pixels. */
  charWidth?: number;
}

const LEGEND_ROW = 18;

/** Lay out the chart for the given size. */
export function layoutCurves(curves: CurveSpec[], options: LayoutOptions): CurveLayout {
  const width = Math.max(120, options.width);
  const height = Math.max(100, options.height);
  const charWidth = options.charWidth ?? 6.5;
  const colors = curves.map((c, i) => c.color ?? categoricalHex(i));

  // Legend rows above the plot, only when several curves are overlaid.
  const legend: LegendItem[] = [];
  let legendRows = 0;
  if (curves.length > 1) {
    let x = 52;
    let row = 0;
    curves.forEach((c, i) => {
      const w = 22 + c.label.length * charWidth + 14;
      if (x + w > width - 8 && x > 52) {
        row += 1;
        x = 52;
      }
      legend.push({ label: c.label, color: colors[i], x, y: 12 + row * LEGEND_ROW });
      x += w;
    });
    legendRows = row + 1;
  }
  const margin: Margin = { top: 14 + legendRows * LEGEND_ROW, right: 16, bottom: 40, left: 52 };
  const plot = { x0: margin.left, x1: width - margin.right, y0: margin.top, y1: height - margin.bottom };

  // Domains.
  const layerSet = new Set<number>();
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of curves) {
    c.layers.forEach((layer, i) => {
      if (Number.isFinite(layer)) layerSet.add(layer);
      for (const v of [c.dimension[i], c.lower[i], c.upper[i]]) {
        if (Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    });
  }
  if (layerSet.size === 0) for (let l = 0; l < Math.max(1, options.nLayers); l++) layerSet.add(l);
  const layers = [...layerSet].sort((a, b) => a - b);
  let xMin = layers[0];
  let xMax = layers[layers.length - 1];
  if (options.nLayers > 0) {
    xMin = Math.min(xMin, 0);
    xMax = Math.max(xMax, options.nLayers - 1);
  }
  if (xMin === xMax) {
    xMin -= 0.5;
    xMax += 0.5;
  }
  if (!(lo <= hi)) {
    lo = 0;
    hi = 1;
  }
  const yDomain = niceDomain(lo, hi, 5);
  const x = linearScale([xMin, xMax], [plot.x0 + 6, plot.x1 - 6]);
  const y = linearScale(yDomain, [plot.y1, plot.y0]);

  const xTickCount = Math.max(2, Math.floor((plot.x1 - plot.x0) / 45));
  const xTicks: Tick[] = integerTicks(Math.ceil(xMin), Math.floor(xMax), xTickCount).map((v) => ({
    value: v,
    px: x(v),
    label: String(v),
  }));
  const yTickCount = Math.max(2, Math.floor((plot.y1 - plot.y0) / 40));
  const yStep = tickStep(yDomain[0], yDomain[1], yTickCount);
  const yTicks: Tick[] = ticks(yDomain[0], yDomain[1], yTickCount).map((v) => ({
    value: v,
    px: y(v),
    label: formatTick(v, yStep),
  }));

  const series: SeriesLayout[] = curves.map((c, i) => layoutSeries(c, colors[i], x, y));
  const layerX = Number.isFinite(options.layer) && options.layer >= xMin && options.layer <= xMax ? x(options.layer) : null;
  return { width, height, margin, plot, x, y, xTicks, yTicks, series, layers, layerX, legend };
}

function fmt(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function layoutSeries(c: CurveSpec, color: string, x: LinearScale, y: LinearScale): SeriesLayout {
  const order = c.layers.map((_, i) => i).sort((a, b) => c.layers[a] - c.layers[b]);
  const points: PointLayout[] = [];
  let line = "";
  let pen = false;
  let band = "";
  let upperRun: Array<[number, number]> = [];
  let lowerRun: Array<[number, number]> = [];
  const flushBand = (): void => {
    if (upperRun.length > 0) {
      const pts = [...upperRun, ...lowerRun.reverse()];
      band += `M${pts.map(([px, py]) => `${fmt(px)},${fmt(py)}`).join("L")}Z`;
    }
    upperRun = [];
    lowerRun = [];
  };
  for (const i of order) {
    const layer = c.layers[i];
    const v = c.dimension[i];
    const lo = c.lower[i];
    const hi = c.upper[i];
    const px = x(layer);
    if (Number.isFinite(v) && Number.isFinite(layer)) {
      const py = y(v);
      line += `${pen ? "L" : "M"}${fmt(px)},${fmt(py)}`;
      pen = true;
      points.push({ layer, value: v, lower: lo, upper: hi, x: px, y: py });
    } else {
      pen = false;
    }
    if (Number.isFinite(lo) && Number.isFinite(hi) && Number.isFinite(layer)) {
      upperRun.push([px, y(hi)]);
      lowerRun.push([px, y(lo)]);
    } else {
      flushBand();
    }
  }
  flushBand();
  let peak: PointLayout | null = null;
  if (c.peak_layer !== null) peak = points.find((p) => p.layer === c.peak_layer) ?? null;
  return { label: c.label, color, line, band, points, peak };
}

/** The layer nearest to pixel x (among the layers of the layout). */
export function nearestLayer(layout: CurveLayout, px: number): number {
  let best = layout.layers[0] ?? 0;
  let bestD = Infinity;
  for (const layer of layout.layers) {
    const d = Math.abs(layout.x(layer) - px);
    if (d < bestD) {
      bestD = d;
      best = layer;
    }
  }
  return best;
}
