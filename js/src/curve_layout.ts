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
  /** Per layer: share of bootstrap replicates whose peak is there (empty when unknown). */
  peak_probability: number[];
  verdict: string;
  /** Per layer: "embedding", "residual", "pre_norm", "final_norm", "synthetic" (may be empty). */
  layer_kinds: string[];
  /** "control" for null-control curves (drawn dashed), "curve" otherwise. */
  kind: "curve" | "control";
  interval_method: string;
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
      peak_probability: Array.isArray(r.peak_probability) ? pad(numberList(r.peak_probability)) : [],
      verdict: typeof r.verdict === "string" ? r.verdict : "",
      layer_kinds: Array.isArray(r.layer_kinds) ? r.layer_kinds.map((k) => String(k)) : [],
      kind: r.kind === "control" ? "control" : "curve",
      interval_method: typeof r.interval_method === "string" ? r.interval_method : "",
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
  control: boolean;
  /** Hidden from the legend (its line, band and marker are not drawn). */
  hidden: boolean;
  intervalMethod: string;
  /** SVG path data of the line (one sub-path per run of finite values). */
  line: string;
  /** SVG path data of the error band (closed polygons where lower and upper are finite). */
  band: string;
  points: PointLayout[];
  peak: PointLayout | null;
}

export interface LegendItem {
  label: string;
  /** The text shown: the label and, when known, "peak L". */
  text: string;
  color: string;
  control: boolean;
  hidden: boolean;
  x: number;
  y: number;
  width: number;
}

/** A text label placed on the chart: its anchor point and its box (x0, y0, x1, y1). */
export interface PlacedLabel {
  text: string;
  /** Index of the series. */
  series: number;
  x: number;
  y: number;
  box: [number, number, number, number];
}

/** One cell of the working-layer probability strip under the plot. */
export interface StripCell {
  layer: number;
  x: number;
  width: number;
  probability: number;
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
  /** Peak labels with their boxes, never overlapping one another or the embedding note. */
  peakLabels: PlacedLabel[];
  /** Layers of the embedding output (not searched for the peak), with the note's box. */
  embedding: { layers: number[]; x0: number; x1: number; note: PlacedLabel | null };
  /** Working-layer probability of the first visible curve that has one, under the plot. */
  strip: { series: number; y: number; height: number; cells: StripCell[] } | null;
}

export interface LayoutOptions {
  width: number;
  height: number;
  layer: number;
  nLayers: number;
  /** Approximate width of one character of legend text, in pixels. */
  charWidth?: number;
  /** Labels of curves hidden from the legend. */
  hidden?: ReadonlySet<string>;
}

export const EMBEDDING_NOTE = "embeddings: not searched for the peak";
const LABEL_HEIGHT = 12;
const STRIP_HEIGHT = 7;

function overlaps(a: [number, number, number, number], b: [number, number, number, number]): boolean {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

/**
 * Place labels near their anchors without overlaps: each label tries above its anchor, then
 * further up in steps of one label height, then below; a label that fits nowhere inside
 * `bounds` is left out (its text stays in the legend). `obstacles` are boxes to keep clear of.
 */
export function placeLabels(
  items: Array<{ text: string; series: number; x: number; y: number }>,
  bounds: { x0: number; x1: number; y0: number; y1: number },
  charWidth: number,
  obstacles: Array<[number, number, number, number]> = [],
): PlacedLabel[] {
  const placed: PlacedLabel[] = [];
  const taken = [...obstacles];
  const order = items.map((_, i) => i).sort((a, b) => items[a].y - items[b].y || items[a].x - items[b].x);
  for (const i of order) {
    const item = items[i];
    const w = item.text.length * charWidth + 4;
    let left = Math.min(Math.max(item.x - w / 2, bounds.x0), bounds.x1 - w);
    if (left < bounds.x0) left = bounds.x0;
    const offsets: number[] = [];
    for (let k = 0; k < 12; k++) offsets.push(-18 - k * LABEL_HEIGHT);
    for (let k = 0; k < 8; k++) offsets.push(8 + k * LABEL_HEIGHT);
    for (const dy of offsets) {
      const top = item.y + dy;
      const box: [number, number, number, number] = [left, top, left + w, top + LABEL_HEIGHT];
      if (top < bounds.y0 || top + LABEL_HEIGHT > bounds.y1) continue;
      if (taken.some((t) => overlaps(t, box))) continue;
      taken.push(box);
      placed.push({ text: item.text, series: item.series, x: left + w / 2, y: top + LABEL_HEIGHT - 2, box });
      break;
    }
  }
  return placed.sort((a, b) => a.series - b.series);
}

const LEGEND_ROW = 18;

/** Lay out the chart for the given size. */
export function layoutCurves(curves: CurveSpec[], options: LayoutOptions): CurveLayout {
  const width = Math.max(120, options.width);
  const height = Math.max(100, options.height);
  const charWidth = options.charWidth ?? 6.5;
  const colors = curves.map((c, i) => c.color ?? categoricalHex(i));

  const hidden = options.hidden ?? new Set<string>();
  const isHidden = curves.map((c) => hidden.has(c.label));
  // Legend rows above the plot, only when several curves are overlaid. Each entry also names
  // the curve's peak layer, so no information depends on a label inside the plot.
  const legend: LegendItem[] = [];
  let legendRows = 0;
  if (curves.length > 1) {
    let x = 52;
    let row = 0;
    curves.forEach((c, i) => {
      const text = c.peak_layer !== null ? `${c.label} · peak ${c.peak_layer}` : c.label;
      const w = 22 + text.length * charWidth + 14;
      if (x + w > width - 8 && x > 52) {
        row += 1;
        x = 52;
      }
      legend.push({ label: c.label, text, color: colors[i], control: c.kind === "control", hidden: isHidden[i], x, y: 12 + row * LEGEND_ROW, width: w - 14 });
      x += w;
    });
    legendRows = row + 1;
  }
  // The strip of peak probabilities: the first visible curve that has them.
  const stripSeries = curves.findIndex((c, i) => !isHidden[i] && c.kind !== "control" && c.peak_probability.some((p) => p > 0));
  const stripSpace = stripSeries >= 0 ? STRIP_HEIGHT + 8 : 0;
  const margin: Margin = { top: 14 + legendRows * LEGEND_ROW, right: 16, bottom: 40 + stripSpace, left: 52 };
  const plot = { x0: margin.left, x1: width - margin.right, y0: margin.top, y1: height - margin.bottom };

  // Domains.
  const layerSet = new Set<number>();
  let lo = Infinity;
  let hi = -Infinity;
  curves.forEach((c, ci) => {
    c.layers.forEach((layer, i) => {
      if (Number.isFinite(layer)) layerSet.add(layer);
      if (isHidden[ci]) return;
      for (const v of [c.dimension[i], c.lower[i], c.upper[i]]) {
        if (Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    });
  });
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

  const series: SeriesLayout[] = curves.map((c, i) => layoutSeries(c, colors[i], x, y, isHidden[i]));
  const layerX = Number.isFinite(options.layer) && options.layer >= xMin && options.layer <= xMax ? x(options.layer) : null;

  // The embedding layer(s): a shaded column with a note, kept clear of the peak labels.
  const embeddingLayers = new Set<number>();
  for (const c of curves) c.layer_kinds.forEach((kind, i) => kind === "embedding" && Number.isFinite(c.layers[i]) && embeddingLayers.add(c.layers[i]));
  const embLayers = [...embeddingLayers].sort((a, b) => a - b);
  const half = layers.length > 1 ? Math.abs(x(layers[1]) - x(layers[0])) / 2 : 6;
  let note: PlacedLabel | null = null;
  let ex0 = 0;
  let ex1 = 0;
  if (embLayers.length > 0 && curves.length > 0) {
    ex0 = Math.max(plot.x0, x(embLayers[0]) - half);
    ex1 = Math.min(plot.x1, x(embLayers[embLayers.length - 1]) + half);
    const w = EMBEDDING_NOTE.length * charWidth * 0.9 + 4;
    const left = Math.min(ex0 + 2, plot.x1 - w);
    const top = plot.y1 - LABEL_HEIGHT - 3;
    note = { text: EMBEDDING_NOTE, series: -1, x: left, y: top + LABEL_HEIGHT - 2, box: [left, top, left + w, top + LABEL_HEIGHT] };
  }

  // Peak labels ("peak L") placed without overlaps; one marker per visible curve.
  const peakItems = series
    .map((s, i) => (s.peak && !s.hidden ? { text: `peak ${s.peak.layer}`, series: i, x: s.peak.x, y: s.peak.y } : null))
    .filter((p): p is { text: string; series: number; x: number; y: number } => p !== null);
  const obstacles: Array<[number, number, number, number]> = note ? [note.box] : [];
  // Keep clear of the markers themselves (triangles above each peak point).
  for (const p of peakItems) obstacles.push([p.x - 5, p.y - 16, p.x + 5, p.y - 6]);
  const peakLabels = placeLabels(peakItems, { x0: plot.x0, x1: plot.x1, y0: plot.y0, y1: plot.y1 }, charWidth * 0.85, obstacles);

  let strip: CurveLayout["strip"] = null;
  if (stripSeries >= 0) {
    const c = curves[stripSeries];
    const cells: StripCell[] = [];
    c.layers.forEach((layer, i) => {
      const p = c.peak_probability[i];
      if (!Number.isFinite(layer)) return;
      // Kept inside the plot's x range, clear of the "p(peak)" label on the left.
      const left = Math.max(plot.x0, x(layer) - half * 0.9);
      const right = Math.min(plot.x1, x(layer) + half * 0.9);
      cells.push({ layer, x: left, width: Math.max(1, right - left), probability: Number.isFinite(p) ? Math.max(0, Math.min(1, p)) : 0 });
    });
    strip = { series: stripSeries, y: plot.y1 + 7, height: STRIP_HEIGHT, cells };
  }
  return {
    width, height, margin, plot, x, y, xTicks, yTicks, series, layers, layerX, legend, peakLabels,
    embedding: { layers: embLayers, x0: ex0, x1: ex1, note }, strip,
  };
}

function fmt(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function layoutSeries(c: CurveSpec, color: string, x: LinearScale, y: LinearScale, hidden: boolean): SeriesLayout {
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
  return { label: c.label, color, control: c.kind === "control", hidden, intervalMethod: c.interval_method, line, band, points, peak };
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
