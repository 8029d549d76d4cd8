// The token x layer heatmap of local ID. Rows are tokens in reading order (separators between
// prompts), columns are layers. The colours are rendered once per data change into offscreen
// tiles (one pixel per cell); each frame only scales the visible rows onto the canvas, so tens
// of thousands of tokens scroll and zoom smoothly.

import { asFloat32 } from "./codecs";
import { clippedShares, parseRange, RANGE_MODE_LABELS, RANGE_MODES, rangeForMode, tailLabel } from "./coloring";
import type { View, ViewContext } from "./context";
import { button, download, FrameScheduler, h, observeSize, readSelection, Tooltip, writeSelection } from "./dom";
import { pngInSvg } from "./export_image";
import { getInt, getString, Subscriptions, ThrottledSaver } from "./model";
import { markStale } from "./stale";
import { colorLut, formatValue, integerTicks, parseColor, viridis, type RGB } from "./scales";
import { visibleText } from "./tokens";

const HEIGHT = 340;
const TILE_ROWS = 4096;
const HEADER = 22;
const COLORBAR = 72;
const SCROLLBAR = 14;
const MAX_ROW = 22;
const LABEL_ROW = 11;

const VIRIDIS_LUT = colorLut(viridis);

/** Finite min / max of an array; [0, 1] when nothing is finite. */
export function finiteRange(values: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // NaN fails both comparisons above, so only finite values (and ±Infinity) get here.
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  return hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5];
}

/**
 * Fill RGBA pixels for rows [start, end) of a tokens x layers matrix: one pixel per cell,
 * viridis over [lo, hi], `missing` for NaN.
 */
export function heatmapPixels(
  values: Float32Array,
  nLayers: number,
  start: number,
  end: number,
  lo: number,
  hi: number,
  missing: RGB,
  out: Uint8ClampedArray = new Uint8ClampedArray((end - start) * nLayers * 4),
): Uint8ClampedArray {
  const span = hi - lo;
  let o = 0;
  for (let r = start; r < end; r++) {
    for (let l = 0; l < nLayers; l++, o += 4) {
      const v = values[r * nLayers + l];
      if (Number.isFinite(v)) {
        const k = Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) * 4;
        out[o] = VIRIDIS_LUT[k];
        out[o + 1] = VIRIDIS_LUT[k + 1];
        out[o + 2] = VIRIDIS_LUT[k + 2];
      } else {
        out[o] = missing[0];
        out[o + 1] = missing[1];
        out[o + 2] = missing[2];
      }
      out[o + 3] = 255;
    }
  }
  return out;
}

/** First index in a sorted array whose value is >= x. */
function lowerBound(sorted: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class HeatmapView implements View {
  readonly el: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private readonly wrap: HTMLDivElement;
  private readonly scroller: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly tooltip: Tooltip;
  private readonly empty: HTMLDivElement;
  private readonly info: HTMLSpanElement;
  private readonly subs: Subscriptions;
  private readonly frame: FrameScheduler;
  private readonly hoverSaver: ThrottledSaver;
  private tiles: Array<{ start: number; end: number; canvas: HTMLCanvasElement | OffscreenCanvas }> = [];
  private n = 0;
  private nLayers = 0;
  private values: Float32Array = new Float32Array(0);
  private range: [number, number] = [0, 1];
  private clipped = { below: 0, above: 0, missing: 0 };
  readonly rangeSelect: HTMLSelectElement;
  private boundaries: Int32Array = new Int32Array(0);
  private selection: Int32Array = new Int32Array(0);
  private hovered = -1;
  private hoverLayer = -1;
  private zoom = 1;
  private width = 0;
  private dirtyImage = true;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    const model = ctx.model;
    this.subs = new Subscriptions(model);
    this.hoverSaver = new ThrottledSaver(model, 120);
    this.el = h(doc, "div", "tdw-view tdw-heatmap");
    this.el.dataset.view = "heatmap";
    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Local ID per token and layer";
    this.info = h(doc, "span", "tdw-muted");
    const tools = h(doc, "div", "tdw-tools");
    const zoomOut = button(doc, "−", "Show more tokens (ctrl + wheel zooms too)");
    const zoomIn = button(doc, "+", "Zoom in on tokens (ctrl + wheel zooms too)");
    const fit = button(doc, "Fit", "Fit all tokens");
    const png = button(doc, "PNG", "Download the heatmap as PNG");
    const svgBtn = button(doc, "SVG", "Download the heatmap as SVG");
    const rangeLabel = h(doc, "label", "tdw-inline-label");
    rangeLabel.textContent = "range ";
    this.rangeSelect = h(doc, "select", "tdw-select tdw-select-small", { "aria-label": "Colour range of local ID" });
    for (const mode of RANGE_MODES) {
      const option = h(doc, "option");
      option.value = mode;
      option.textContent = RANGE_MODE_LABELS[mode];
      this.rangeSelect.appendChild(option);
    }
    rangeLabel.appendChild(this.rangeSelect);
    tools.append(rangeLabel, zoomOut, zoomIn, fit, png, svgBtn);
    header.append(title, this.info, tools);
    this.wrap = h(doc, "div", "tdw-heatmap-wrap");
    this.wrap.style.height = `${HEIGHT}px`;
    this.canvas = h(doc, "canvas", "tdw-heatmap-canvas");
    this.scroller = h(doc, "div", "tdw-heatmap-scroller");
    this.spacer = h(doc, "div", "tdw-heatmap-spacer");
    this.scroller.appendChild(this.spacer);
    this.empty = h(doc, "div", "tdw-empty");
    this.empty.textContent = "No local IDs yet: run an analysis to fill the heatmap.";
    this.wrap.append(this.canvas, this.scroller, this.empty);
    this.tooltip = new Tooltip(this.wrap);
    this.el.append(header, this.wrap);
    this.frame = new FrameScheduler(doc.defaultView, () => this.draw());

    this.subs.traits(["local_id", "local_id_range", "local_id_range_mode", "n_layers", "n_tokens"], () => this.updateData());
    this.subs.dom(this.rangeSelect, "change", () => {
      model.set("local_id_range_mode", this.rangeSelect.value);
      model.save_changes();
    });
    this.subs.add(markStale(model, this.el, ["local_id"], () => this.n > 0));
    this.subs.traits(["layer"], () => this.frame.request());
    this.subs.traits(["selected_tokens"], () => this.updateSelection(true));
    this.subs.traits(["hovered_token"], () => {
      const i = getInt(model, "hovered_token", -1);
      if (i !== this.hovered) {
        this.hovered = i;
        this.frame.request();
      }
    });
    this.subs.add(
      ctx.tokens.onChange(() => {
        this.boundaries = ctx.tokens.get().promptBoundaries();
        this.frame.request();
      }),
    );
    this.subs.add(
      ctx.theme.onChange(() => {
        this.dirtyImage = true;
        this.frame.request();
      }),
    );
    this.subs.add(
      observeSize(this.wrap, () => {
        if (this.wrap.clientWidth !== this.width) {
          this.width = this.wrap.clientWidth;
          this.layoutSpacer();
          this.frame.request();
        }
      }),
    );
    this.subs.add(ctx.exporters.register("heatmap", (format) => this.exportImage(format)));
    this.subs.dom(zoomIn, "click", () => this.zoomBy(2, null));
    this.subs.dom(zoomOut, "click", () => this.zoomBy(0.5, null));
    this.subs.dom(fit, "click", () => this.zoomBy(0, null));
    this.subs.dom(png, "click", () => void this.exportImage("png").then((d) => download(doc, "tokendim-heatmap.png", d, "image/png")));
    this.subs.dom(svgBtn, "click", () =>
      void this.exportImage("svg").then((d) => download(doc, "tokendim-heatmap.svg", d, "image/svg+xml")),
    );
    this.bindPointer();
    this.boundaries = ctx.tokens.get().promptBoundaries();
    this.updateData();
    this.updateSelection(false);
  }

  // ---------------------------------------------------------------- geometry

  private plotBox(): { x0: number; x1: number; y0: number; y1: number; labelW: number } {
    const w = this.width || 600;
    const labelW = this.rowHeight() >= LABEL_ROW ? 150 : 48;
    return { x0: labelW, x1: Math.max(labelW + 10, w - COLORBAR - SCROLLBAR), y0: HEADER, y1: HEIGHT - 4, labelW };
  }

  private fitRowHeight(): number {
    return this.n > 0 ? (HEIGHT - 4 - HEADER) / this.n : 1;
  }

  /** Pixels per token row at the current zoom. */
  rowHeight(): number {
    const fit = this.fitRowHeight();
    return Math.max(fit, Math.min(MAX_ROW, fit * this.zoom));
  }

  private layoutSpacer(): void {
    const plotH = HEIGHT - 4 - HEADER;
    const content = this.n * this.rowHeight();
    this.spacer.style.height = `${Math.max(HEIGHT, Math.ceil(content - plotH + HEIGHT))}px`;
  }

  /** First visible row (fractional). */
  private firstRow(): number {
    return this.scroller.scrollTop / this.rowHeight();
  }

  /** Row and layer under a point in wrap pixels; -1 outside. */
  cellAt(x: number, y: number): { row: number; layer: number } {
    const box = this.plotBox();
    if (this.n === 0 || this.nLayers === 0 || x < box.x0 || x >= box.x1 || y < box.y0 || y >= box.y1) {
      return { row: -1, layer: -1 };
    }
    const row = Math.floor(this.firstRow() + (y - box.y0) / this.rowHeight());
    const layer = Math.floor(((x - box.x0) / (box.x1 - box.x0)) * this.nLayers);
    if (row < 0 || row >= this.n) return { row: -1, layer: -1 };
    return { row, layer: Math.min(this.nLayers - 1, Math.max(0, layer)) };
  }

  private zoomBy(factor: number, anchorY: number | null): void {
    const box = this.plotBox();
    const y = anchorY ?? (box.y0 + box.y1) / 2;
    const anchorRow = this.firstRow() + (y - box.y0) / this.rowHeight();
    const maxZoom = MAX_ROW / this.fitRowHeight();
    this.zoom = factor === 0 ? 1 : Math.max(1, Math.min(maxZoom, this.zoom * factor));
    this.layoutSpacer();
    this.scroller.scrollTop = Math.max(0, anchorRow * this.rowHeight() - (y - box.y0));
    this.frame.request();
  }

  // ---------------------------------------------------------------- data

  private updateData(): void {
    const model = this.ctx.model;
    const nLayers = Math.max(0, getInt(model, "n_layers", 0));
    const values = asFloat32(model.get("local_id") as never);
    const nTokens = getInt(model, "n_tokens", 0);
    const n = nLayers > 0 ? Math.min(nTokens, Math.floor(values.length / nLayers)) : 0;
    if (n !== this.n) this.zoom = 1;
    this.n = n;
    this.nLayers = nLayers;
    this.values = values;
    const cells = values.subarray(0, n * nLayers);
    const mode = getString(model, "local_id_range_mode", "robust") || "robust";
    if (this.rangeSelect.value !== mode) this.rangeSelect.value = mode;
    this.range = rangeForMode(mode, cells, parseRange(model.get("local_id_range")));
    this.clipped = clippedShares(cells, this.range[0], this.range[1]);
    this.dirtyImage = true;
    this.empty.hidden = n > 0;
    this.el.dataset.tokens = String(n);
    this.info.textContent = n > 0 ? `${n.toLocaleString()} tokens × ${nLayers} layers` : "";
    this.layoutSpacer();
    this.updateSelection(false);
    this.frame.request();
  }

  private rebuildImage(): void {
    this.dirtyImage = false;
    this.tiles = [];
    const { n, nLayers } = this;
    if (n === 0 || nLayers === 0) return;
    const missing = parseColor(this.ctx.theme.palette().missing) ?? [150, 150, 150];
    const doc = this.ctx.doc;
    for (let start = 0; start < n; start += TILE_ROWS) {
      const end = Math.min(n, start + TILE_ROWS);
      const rows = end - start;
      const pixels = heatmapPixels(this.values, nLayers, start, end, this.range[0], this.range[1], missing);
      const canvas = doc.createElement("canvas");
      canvas.width = nLayers;
      canvas.height = rows;
      const g = canvas.getContext("2d");
      if (!g) continue;
      const image = g.createImageData(nLayers, rows);
      image.data.set(pixels);
      g.putImageData(image, 0, 0);
      this.tiles.push({ start, end, canvas });
    }
  }

  private updateSelection(scrollIntoView: boolean): void {
    this.selection = readSelection(this.ctx.model, this.n);
    this.el.dataset.selected = String(this.selection.length);
    if (scrollIntoView && this.selection.length > 0 && this.zoom > 1) {
      const rowH = this.rowHeight();
      const first = this.firstRow();
      const visible = (HEIGHT - 4 - HEADER) / rowH;
      const k = lowerBound(this.selection, Math.floor(first));
      const anyVisible = k < this.selection.length && this.selection[k] < first + visible;
      if (!anyVisible) this.scroller.scrollTop = Math.max(0, (this.selection[0] - visible / 3) * rowH);
    }
    this.frame.request();
  }

  // ---------------------------------------------------------------- drawing

  draw(): void {
    const doc = this.ctx.doc;
    const width = this.wrap.clientWidth || this.width;
    if (width <= 0) return;
    this.width = width;
    if (this.dirtyImage) this.rebuildImage();
    const dpr = doc.defaultView?.devicePixelRatio || 1;
    const cw = Math.round(width * dpr);
    const ch = Math.round(HEIGHT * dpr);
    if (this.canvas.width !== cw) this.canvas.width = cw;
    if (this.canvas.height !== ch) this.canvas.height = ch;
    const g = this.canvas.getContext("2d");
    if (!g) return;
    const pal = this.ctx.theme.palette();
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = pal.panel;
    g.fillRect(0, 0, width, HEIGHT);
    const box = this.plotBox();
    const { x0, x1, y0, y1 } = box;
    const rowH = this.rowHeight();
    const first = this.firstRow();
    const last = Math.min(this.n, first + (y1 - y0) / rowH);
    const colW = this.nLayers > 0 ? (x1 - x0) / this.nLayers : 0;
    g.font = `11px ${pal.font}`;
    g.textBaseline = "middle";

    if (this.n > 0 && this.nLayers > 0) {
      // Cells: scale the visible part of each tile (nearest neighbour keeps columns crisp).
      g.save();
      g.beginPath();
      g.rect(x0, y0, x1 - x0, y1 - y0);
      g.clip();
      g.imageSmoothingEnabled = false;
      this.drawRows(g, Math.floor(first), Math.ceil(last), first, rowH, x0, x1, y0);
      // Prompt separators, when they are far enough apart to be seen.
      const bLo = lowerBound(this.boundaries, Math.ceil(first));
      const bHi = lowerBound(this.boundaries, Math.ceil(last));
      if (bHi - bLo > 0 && (bHi - bLo) * 10 < y1 - y0) {
        g.fillStyle = pal.panel;
        for (let k = bLo; k < bHi; k++) {
          const y = y0 + (this.boundaries[k] - first) * rowH;
          g.fillRect(x0, Math.round(y) - 1, x1 - x0, rowH >= 8 ? 2 : 1);
        }
      }
      // Current layer column.
      const layer = getInt(this.ctx.model, "layer", -1);
      if (layer >= 0 && layer < this.nLayers) {
        g.strokeStyle = pal.accent;
        g.lineWidth = 2;
        g.strokeRect(x0 + layer * colW + 1, y0 + 1, Math.max(1, colW - 2), y1 - y0 - 2);
      }
      g.restore();

      // Selected rows: unselected rows are dimmed (cells of the selected rows drawn again on
      // top), with a mark in the gutter and an outline when rows are tall enough.
      const sLo = lowerBound(this.selection, Math.floor(first));
      const sHi = lowerBound(this.selection, Math.ceil(last));
      if (this.selection.length > 0) {
        g.save();
        g.beginPath();
        g.rect(x0, y0, x1 - x0, y1 - y0);
        g.clip();
        g.imageSmoothingEnabled = false;
        g.globalAlpha = 0.62;
        g.fillStyle = pal.panel;
        g.fillRect(x0, y0, x1 - x0, y1 - y0);
        g.globalAlpha = 1;
        for (const [a, b] of this.selectedRuns(sLo, sHi, first, rowH, y1 - y0)) {
          this.drawRows(g, a, b, first, rowH, x0, x1, y0);
        }
        g.restore();
        // A band around each selected run, at least 5 px tall and drawn into the gutter, so a
        // single selected token stays visible at any zoom (even at a fraction of a pixel per row).
        g.fillStyle = pal.selection;
        g.strokeStyle = pal.selection;
        g.lineWidth = 2;
        for (const [a, b] of this.selectedRuns(sLo, sHi, first, rowH, y1 - y0)) {
          const top = y0 + (a - first) * rowH;
          const hgt = (b - a) * rowH;
          const band = Math.max(5, hgt);
          const y = Math.max(y0 + 1, Math.min(y1 - band - 1, top + hgt / 2 - band / 2));
          g.fillRect(x0 - 8, y, 6, band);
          g.strokeRect(x0 + 1, y, x1 - x0 - 2, band);
        }
      }
      // Hovered row.
      if (this.hovered >= first - 1 && this.hovered < last + 1 && this.hovered < this.n && this.hovered >= 0) {
        const y = y0 + (this.hovered - first) * rowH;
        g.strokeStyle = pal.fg;
        g.lineWidth = 1;
        g.strokeRect(x0 - 0.5, y - 0.5, x1 - x0 + 1, Math.max(1, rowH) + 1);
      }
      this.drawGutter(g, box, first, last, rowH);
      this.drawLayerAxis(g, box, colW);
      this.drawColorBar(g, box, pal.fg, pal.muted);
    }
    this.el.dataset.layer = String(getInt(this.ctx.model, "layer", -1));
  }

  /**
   * Row ranges [a, b) to draw as selected, at most one per pixel row of the plot: consecutive
   * selected rows merge, and when rows are thinner than a pixel every pixel row that holds a
   * selected token becomes one range (so 100,000 selected rows cost ~300 draw calls, not 100,000).
   */
  private selectedRuns(sLo: number, sHi: number, first: number, rowH: number, plotH: number): Array<[number, number]> {
    const runs: Array<[number, number]> = [];
    const sel = this.selection;
    if (rowH >= 1) {
      let k = sLo;
      while (k < sHi) {
        let end = k + 1;
        while (end < sHi && sel[end] === sel[end - 1] + 1) end++;
        runs.push([sel[k], sel[end - 1] + 1]);
        k = end;
      }
      return runs;
    }
    const pixels = Math.ceil(plotH);
    const marks = new Uint8Array(pixels + 1);
    for (let k = sLo; k < sHi; k++) marks[Math.min(pixels, Math.floor((sel[k] - first) * rowH))] = 1;
    let p = 0;
    while (p <= pixels) {
      if (!marks[p]) {
        p++;
        continue;
      }
      let q = p + 1;
      while (q <= pixels && marks[q]) q++;
      runs.push([Math.max(0, Math.floor(first + p / rowH)), Math.min(this.n, Math.ceil(first + q / rowH))]);
      p = q;
    }
    return runs;
  }

  /** Draw the cells of rows [a, b) from the tiles. */
  private drawRows(
    g: CanvasRenderingContext2D,
    a: number,
    b: number,
    first: number,
    rowH: number,
    x0: number,
    x1: number,
    y0: number,
  ): void {
    for (const tile of this.tiles) {
      const s = Math.max(tile.start, a);
      const e = Math.min(tile.end, b);
      if (e <= s) continue;
      const y = y0 + (s - first) * rowH;
      // At least one device pixel tall, so a single selected row stays visible when zoomed out.
      const hgt = Math.max((e - s) * rowH, 1);
      g.drawImage(tile.canvas as CanvasImageSource, 0, s - tile.start, this.nLayers, e - s, x0, y, x1 - x0, hgt);
    }
  }

  private drawGutter(
    g: CanvasRenderingContext2D,
    box: { x0: number; y0: number; y1: number; labelW: number },
    first: number,
    last: number,
    rowH: number,
  ): void {
    const pal = this.ctx.theme.palette();
    const tokens = this.ctx.tokens.get();
    g.fillStyle = pal.fg;
    g.textAlign = "right";
    if (rowH >= LABEL_ROW) {
      // Token text, as text (fillText never interprets markup).
      const maxW = box.labelW - 12;
      for (let r = Math.floor(first); r < Math.min(this.n, Math.ceil(last)); r++) {
        const y = box.y0 + (r - first + 0.5) * rowH;
        if (y < box.y0 || y > box.y1) continue;
        g.fillText(fitText(g, visibleText(tokens.text(r)), maxW), box.x0 - 10, y);
      }
    } else {
      // Prompt numbers at the prompt starts that have room.
      g.fillStyle = pal.muted;
      let lastY = -Infinity;
      const starts = [0, ...this.boundaries];
      let k = lowerBound(starts, Math.floor(first));
      if (k > 0 && starts[k] > first) k--;
      for (; k < starts.length && starts[k] < last; k++) {
        const y = Math.max(box.y0 + 6, box.y0 + (starts[k] - first) * rowH + 6);
        if (y - lastY < 14 || y > box.y1 - 4) continue;
        g.fillText(`p${tokens.prompt[starts[k]] ?? k}`, box.x0 - 10, y);
        lastY = y;
      }
    }
  }

  private drawLayerAxis(g: CanvasRenderingContext2D, box: { x0: number; x1: number }, colW: number): void {
    const pal = this.ctx.theme.palette();
    g.fillStyle = pal.muted;
    g.textAlign = "center";
    const count = Math.max(2, Math.floor((box.x1 - box.x0) / 36));
    for (const l of integerTicks(0, this.nLayers - 1, count)) {
      g.fillText(String(l), box.x0 + (l + 0.5) * colW, HEADER / 2);
    }
    g.textAlign = "right";
    g.fillText("layer", box.x0 - 10, HEADER / 2);
  }

  private drawColorBar(g: CanvasRenderingContext2D, box: { x1: number; y0: number; y1: number }, fg: string, muted: string): void {
    const x = box.x1 + 6;
    const { below, above, missing } = this.clipped;
    const bottom = box.y1 - 4;
    const top = box.y0 + 10;
    const barBottom = bottom - 8 - (missing > 0 ? 14 : 0);
    const hgt = barBottom - top;
    for (let i = 0; i < hgt; i++) {
      const k = Math.round((1 - i / Math.max(1, hgt - 1)) * 255) * 4;
      g.fillStyle = `rgb(${VIRIDIS_LUT[k]},${VIRIDIS_LUT[k + 1]},${VIRIDIS_LUT[k + 2]})`;
      g.fillRect(x, top + i, 10, 1);
    }
    g.textAlign = "left";
    g.fillStyle = fg;
    const [lo, hi] = this.range;
    // Clipped tails: a triangle past the end of the bar and "≥" / "≤" on its label.
    const lut = (k: number): string => `rgb(${VIRIDIS_LUT[k]},${VIRIDIS_LUT[k + 1]},${VIRIDIS_LUT[k + 2]})`;
    if (above > 0) {
      g.fillStyle = lut(255 * 4);
      g.beginPath();
      g.moveTo(x, top);
      g.lineTo(x + 10, top);
      g.lineTo(x + 5, top - 6);
      g.closePath();
      g.fill();
    }
    if (below > 0) {
      g.fillStyle = lut(0);
      g.beginPath();
      g.moveTo(x, barBottom);
      g.lineTo(x + 10, barBottom);
      g.lineTo(x + 5, barBottom + 6);
      g.closePath();
      g.fill();
    }
    if (missing > 0) {
      g.fillStyle = this.ctx.theme.palette().missing;
      g.fillRect(x, bottom - 8, 10, 8);
    }
    g.fillStyle = fg;
    g.fillText(tailLabel(formatValue(hi), above, "hi"), x + 14, top + 4);
    g.fillText(formatValue((lo + hi) / 2), x + 14, (top + barBottom) / 2);
    g.fillText(tailLabel(formatValue(lo), below, "lo"), x + 14, barBottom - 4);
    if (missing > 0) {
      g.fillStyle = muted;
      g.fillText("n/a", x + 14, bottom - 4);
    }
    g.fillStyle = muted;
    g.textAlign = "center";
    g.fillText("ID", x + 5, HEADER / 2);
  }

  // ---------------------------------------------------------------- interaction

  private bindPointer(): void {
    const model = this.ctx.model;
    const local = (event: MouseEvent): [number, number] => {
      const rect = this.wrap.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    };
    this.subs.dom(this.scroller, "scroll", () => this.frame.request());
    this.subs.dom(this.scroller, "pointermove", (event: PointerEvent) => {
      const [x, y] = local(event);
      const { row, layer } = this.cellAt(x, y);
      if (row !== this.hovered || layer !== this.hoverLayer) {
        this.hovered = row;
        this.hoverLayer = layer;
        model.set("hovered_token", row);
        this.hoverSaver.save();
        this.frame.request();
      }
      if (row < 0) {
        this.tooltip.hide();
        return;
      }
      const tokens = this.ctx.tokens.get();
      const v = this.values[row * this.nLayers + layer];
      this.tooltip.show(x, y, tokens.context(row, 4), [
        `layer ${layer} · local ID ${formatValue(v)}`,
        `prompt ${tokens.prompt[row] ?? "?"} · position ${tokens.position[row] ?? "?"} · row ${row}`,
      ]);
    });
    this.subs.dom(this.scroller, "pointerleave", () => {
      this.tooltip.hide();
      if (this.hovered !== -1) {
        this.hovered = -1;
        this.hoverLayer = -1;
        model.set("hovered_token", -1);
        this.hoverSaver.save();
        this.frame.request();
      }
    });
    this.subs.dom(this.scroller, "click", (event: MouseEvent) => {
      const [x, y] = local(event);
      const { row, layer } = this.cellAt(x, y);
      if (row < 0) return;
      model.set("layer", layer);
      writeSelection(model, [row]);
    });
    this.subs.dom(
      this.scroller,
      "wheel",
      (event: WheelEvent) => {
        if (!event.ctrlKey && !event.metaKey) return;
        event.preventDefault();
        const [, y] = local(event);
        this.zoomBy(Math.exp(-event.deltaY * 0.003), y);
      },
      { passive: false },
    );
  }

  async exportImage(format: "png" | "svg"): Promise<string> {
    this.frame.now();
    const png = this.canvas.toDataURL("image/png");
    if (format === "png") return png;
    return pngInSvg(png, this.width, HEIGHT, "Local ID per token and layer");
  }

  dispose(): void {
    this.frame.cancel();
    this.hoverSaver.cancel();
    this.subs.dispose();
    this.tiles = [];
    this.el.remove();
  }
}

/** Shorten text with an ellipsis until it fits `maxWidth` pixels. */
export function fitText(g: CanvasRenderingContext2D, text: string, maxWidth: number): string {
  if (g.measureText(text).width <= maxWidth) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (g.measureText(`${text.slice(0, mid)}…`).width <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return `${text.slice(0, lo)}…`;
}
