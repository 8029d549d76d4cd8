// The projection scatter: one point per token at the chosen layer, drawn with WebGL. Hover shows
// the token in its context; drag selects (box, or lasso with shift / the lasso mode); a slider
// scrubs layers and the points glide from the previous projection to the next.

import { asFloat32 } from "./codecs";
import { clippedShares, COLOR_BY_CHOICES, COLOR_BY_LABELS, cssGradient, parseRange, pointColors, rangeForMode, tailLabel, type Legend } from "./coloring";
import type { View, ViewContext } from "./context";
import { button, download, FrameScheduler, h, observeSize, readSelection, Tooltip, writeSelection } from "./dom";
import { pngInSvg } from "./export_image";
import { getInt, getString, Subscriptions, ThrottledSaver } from "./model";
import { createPointRenderer, type PointRenderer, type Transform2D } from "./points_renderer";
import { formatValue, parseColor } from "./scales";
import { GridIndex, pointBounds, type Bounds } from "./spatial";
import { markStale } from "./stale";

const HEIGHT = 420;
const ANIMATION_MS = 300;
const HOVER_RADIUS_PX = 8;

export type SelectMode = "box" | "lasso" | "pan";

/** Fit bounds into a width x height viewport with equal aspect, as a data -> clip transform. */
export function fitTransform(bounds: Bounds | null, width: number, height: number, pad = 0.06): Transform2D {
  if (bounds === null || width <= 0 || height <= 0) return [1, 1, 0, 0];
  const dx = Math.max(bounds.maxX - bounds.minX, 1e-9);
  const dy = Math.max(bounds.maxY - bounds.minY, 1e-9);
  const px = Math.min((width * (1 - 2 * pad)) / dx, (height * (1 - 2 * pad)) / dy);
  const sx = (px * 2) / width;
  const sy = (px * 2) / height;
  const cx = (bounds.minX + bounds.maxX) / 2;
  const cy = (bounds.minY + bounds.maxY) / 2;
  return [sx, sy, -cx * sx, -cy * sy];
}

function easeInOut(t: number): number {
  return t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2;
}

export class ScatterView implements View {
  readonly el: HTMLDivElement;
  readonly stage: HTMLDivElement;
  readonly overlay: HTMLCanvasElement;
  private renderer: PointRenderer;
  private readonly subs: Subscriptions;
  private readonly frame: FrameScheduler;
  private readonly overlayFrame: FrameScheduler;
  private readonly saver: ThrottledSaver;
  private readonly hoverSaver: ThrottledSaver;
  private readonly tooltip: Tooltip;
  private readonly badge: HTMLSpanElement;
  private readonly colorSelect: HTMLSelectElement;
  private readonly modeButtons: Record<SelectMode, HTMLButtonElement>;
  private readonly clearBtn: HTMLButtonElement;
  private readonly slider: HTMLInputElement;
  private readonly layerText: HTMLSpanElement;
  private readonly selText: HTMLSpanElement;
  private readonly legendBar: HTMLDivElement;
  private readonly legendLo: HTMLSpanElement;
  private readonly legendHi: HTMLSpanElement;
  private readonly legendLabel: HTMLSpanElement;
  private readonly empty: HTMLDivElement;

  // Data.
  private n = 0;
  private positions: Float32Array = new Float32Array(0);
  private grid: GridIndex | null = null;
  private fromBounds: Bounds | null = null;
  private toBounds: Bounds | null = null;
  private selection: Int32Array = new Int32Array(0);
  private hovered = -1;
  private lastKind = "";
  private lastLayer = Number.NaN;
  // View.
  private width = 0;
  private height = HEIGHT;
  private zoom = 1;
  private panX = 0;
  private panY = 0;
  private animStart = -1;
  private mode: SelectMode = "box";
  private drag: {
    kind: "box" | "lasso" | "pan";
    x0: number;
    y0: number;
    x: number;
    y: number;
    path: number[];
    additive: boolean;
    moved: boolean;
  } | null = null;
  /** Timings for benchmarks: the last hover handling, in ms. */
  lastHoverMs = 0;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    const model = ctx.model;
    this.subs = new Subscriptions(model);
    this.saver = new ThrottledSaver(model, 80);
    this.hoverSaver = new ThrottledSaver(model, 120);
    this.el = h(doc, "div", "tdw-view tdw-scatter");
    this.el.dataset.view = "scatter";

    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Token cloud";
    this.badge = h(doc, "span", "tdw-badge");
    const tools = h(doc, "div", "tdw-tools");
    const colorLabel = h(doc, "label", "tdw-inline-label");
    colorLabel.textContent = "colour ";
    this.colorSelect = h(doc, "select", "tdw-select tdw-select-small", { "aria-label": "Colour points by" });
    for (const choice of COLOR_BY_CHOICES) {
      const option = h(doc, "option");
      option.value = choice;
      option.textContent = COLOR_BY_LABELS[choice];
      this.colorSelect.appendChild(option);
    }
    colorLabel.appendChild(this.colorSelect);
    const modes = h(doc, "div", "tdw-segmented", { role: "group", "aria-label": "Drag mode" });
    this.modeButtons = {
      box: button(doc, "Box", "Drag to select a rectangle (shift: lasso, ctrl/cmd: add)"),
      lasso: button(doc, "Lasso", "Drag to draw a free-hand selection"),
      pan: button(doc, "Pan", "Drag to pan; the wheel zooms once the plot has focus; double-click resets"),
    };
    modes.append(this.modeButtons.box, this.modeButtons.lasso, this.modeButtons.pan);
    this.clearBtn = button(doc, "Clear", "Clear the selection");
    const png = button(doc, "PNG", "Download the scatter as PNG");
    const svgBtn = button(doc, "SVG", "Download the scatter as SVG");
    tools.append(colorLabel, modes, this.clearBtn, png, svgBtn);
    header.append(title, this.badge, tools);

    this.stage = h(doc, "div", "tdw-scatter-stage", { tabindex: "0" });
    this.stage.style.height = `${HEIGHT}px`;
    const glCanvas = h(doc, "canvas", "tdw-scatter-gl");
    this.overlay = h(doc, "canvas", "tdw-scatter-overlay");
    const legend = h(doc, "div", "tdw-scatter-legend");
    this.legendLabel = h(doc, "span", "tdw-legend-label");
    this.legendLo = h(doc, "span", "tdw-legend-tick");
    this.legendBar = h(doc, "div", "tdw-legend-bar");
    this.legendHi = h(doc, "span", "tdw-legend-tick");
    legend.append(this.legendLabel, this.legendLo, this.legendBar, this.legendHi);
    this.empty = h(doc, "div", "tdw-empty");
    this.empty.textContent = "No projection yet: run an analysis to see the token cloud.";
    this.stage.append(glCanvas, this.overlay, legend, this.empty);
    this.tooltip = new Tooltip(this.stage);

    const footer = h(doc, "div", "tdw-view-footer");
    const sliderLabel = h(doc, "label", "tdw-slider-label");
    this.layerText = h(doc, "span", "tdw-layer-text");
    this.slider = h(doc, "input", "tdw-slider", { type: "range", min: "0", max: "0", step: "1", "aria-label": "Layer" });
    sliderLabel.append(this.layerText, this.slider);
    this.selText = h(doc, "span", "tdw-muted");
    footer.append(sliderLabel, this.selText);
    this.el.append(header, this.stage, footer);

    this.renderer = createPointRenderer(glCanvas);
    this.el.dataset.renderer = this.renderer.kind;
    this.frame = new FrameScheduler(doc.defaultView, (t) => this.draw(t));
    this.overlayFrame = new FrameScheduler(doc.defaultView, () => this.drawOverlay());

    this.subs.traits(["projection", "projection_kind", "projection_layer", "n_tokens"], () => this.updatePositions());
    this.subs.traits(["color_by", "local_id", "local_id_range", "local_id_range_mode", "layer", "n_layers"], () => this.updateColors());
    this.subs.add(markStale(model, this.el, ["projection"], () => this.n > 0));
    this.subs.traits(["layer", "n_layers", "projection_layer", "projection_kind"], () => this.updateLabels());
    this.subs.traits(["selected_tokens"], () => this.updateSelection());
    this.subs.traits(["hovered_token"], () => {
      const i = getInt(model, "hovered_token", -1);
      if (i !== this.hovered) {
        this.hovered = i;
        this.tooltip.hide();
        this.overlayFrame.request();
      }
    });
    this.subs.add(ctx.tokens.onChange(() => this.updateColors()));
    this.subs.add(
      ctx.theme.onChange(() => {
        this.updateColors();
        this.frame.request();
      }),
    );
    this.subs.add(observeSize(this.stage, () => this.resize()));
    this.subs.add(ctx.exporters.register("scatter", (format) => this.exportImage(format)));
    this.subs.dom(this.colorSelect, "change", () => {
      model.set("color_by", this.colorSelect.value);
      model.save_changes();
    });
    for (const mode of ["box", "lasso", "pan"] as const) {
      this.subs.dom(this.modeButtons[mode], "click", () => this.setMode(mode));
    }
    this.subs.dom(this.clearBtn, "click", () => writeSelection(model, []));
    this.subs.dom(png, "click", () => void this.exportImage("png").then((d) => download(doc, "tokendim-scatter.png", d, "image/png")));
    this.subs.dom(svgBtn, "click", () =>
      void this.exportImage("svg").then((d) => download(doc, "tokendim-scatter.svg", d, "image/svg+xml")),
    );
    this.subs.dom(this.slider, "input", () => {
      model.set("layer", Number(this.slider.value));
      this.saver.save();
    });
    this.subs.dom(this.slider, "change", () => {
      model.set("layer", Number(this.slider.value));
      this.saver.flush();
    });
    this.bindPointer();

    this.setMode("box");
    this.updatePositions();
    this.updateColors();
    this.updateSelection();
    this.updateLabels();
  }

  /** The renderer in use ("webgl2", "webgl", "canvas2d" or "none"). */
  get rendererKind(): string {
    return this.renderer.kind;
  }

  private setMode(mode: SelectMode): void {
    this.mode = mode;
    for (const [m, b] of Object.entries(this.modeButtons)) {
      b.classList.toggle("tdw-active", m === mode);
      b.setAttribute("aria-pressed", String(m === mode));
    }
    this.stage.dataset.mode = mode;
  }

  private resize(): void {
    const w = this.stage.clientWidth;
    const hgt = this.stage.clientHeight || HEIGHT;
    if (w === this.width && hgt === this.height) return;
    this.width = w;
    this.height = hgt;
    const dpr = this.ctx.doc.defaultView?.devicePixelRatio || 1;
    this.renderer.resize(w, hgt, dpr);
    this.overlay.width = Math.max(1, Math.round(w * dpr));
    this.overlay.height = Math.max(1, Math.round(hgt * dpr));
    this.frame.request();
    this.overlayFrame.request();
  }

  // ------------------------------------------------------------------ data updates

  private updatePositions(): void {
    const model = this.ctx.model;
    const xy = asFloat32(model.get("projection") as never);
    const nTokens = getInt(model, "n_tokens", Math.floor(xy.length / 2));
    const n = Math.max(0, Math.min(nTokens, Math.floor(xy.length / 2)));
    const kind = getString(model, "projection_kind", "");
    const layer = getInt(model, "projection_layer", -1);
    const same =
      xy.buffer === this.positions.buffer &&
      xy.byteOffset === this.positions.byteOffset &&
      xy.length === this.positions.length;
    if (same && n === this.n && kind === this.lastKind && layer === this.lastLayer) return;
    if (same && n === this.n) {
      // Only the labels changed (kind / layer sent separately from the same array).
      this.lastKind = kind;
      this.lastLayer = layer;
      this.updateLabels();
      return;
    }
    const bounds = pointBounds(xy, n);
    // Animate only between two projections of the same tokens.
    const animate = n > 0 && n === this.n && this.positions.length >= n * 2 && this.toBounds !== null;
    const previous = animate ? this.positions : null;
    this.fromBounds = animate ? this.toBounds : bounds;
    this.toBounds = bounds;
    if (n !== this.n) {
      // New token set: reset zoom, hover and stale selection state.
      this.zoom = 1;
      this.panX = 0;
      this.panY = 0;
      this.hovered = -1;
      this.tooltip.hide();
    }
    this.n = n;
    this.positions = xy;
    this.lastKind = kind;
    this.lastLayer = layer;
    this.renderer.setPositions(previous, xy, n);
    this.grid = n > 0 ? new GridIndex(xy, n) : null;
    this.animStart = animate ? -2 : -1; // -2: start at the next frame's timestamp
    this.empty.hidden = n > 0;
    this.el.dataset.points = String(n);
    this.updateColors();
    this.updateSelection();
    this.updateLabels();
    this.frame.request();
  }

  private updateColors(): void {
    const model = this.ctx.model;
    const colorBy = getString(model, "color_by", "local_id") || "local_id";
    if (this.colorSelect.value !== colorBy) this.colorSelect.value = colorBy;
    const pal = this.ctx.theme.palette();
    const localId = asFloat32(model.get("local_id") as never);
    const nLayers = getInt(model, "n_layers", 0);
    const layer = getInt(model, "layer", 0);
    // The same range as the heatmap (its mode, over every layer), so colours mean the same.
    const mode = getString(model, "local_id_range_mode", "robust") || "robust";
    const cells = nLayers > 0 ? localId.subarray(0, Math.min(localId.length, this.n * nLayers)) : localId.subarray(0, 0);
    const range = cells.length > 0 ? rangeForMode(mode, cells, parseRange(model.get("local_id_range"))) : null;
    const { rgba, legend } = pointColors({
      colorBy,
      n: this.n,
      tokens: this.ctx.tokens.get(),
      localId,
      nLayers,
      layer,
      range,
      missing: parseColor(pal.missing) ?? [150, 150, 150],
    });
    this.renderer.setColors(rgba);
    let tails = { below: 0, above: 0 };
    if (legend.kind === "continuous" && colorBy === "local_id" && nLayers > 0 && layer >= 0 && layer < nLayers) {
      const column = new Float32Array(this.n);
      for (let i = 0; i < this.n; i++) column[i] = localId[i * nLayers + layer];
      tails = clippedShares(column, legend.lo, legend.hi);
    }
    this.showLegend(legend, tails);
    this.frame.request();
  }

  private showLegend(legend: Legend, tails: { below: number; above: number } = { below: 0, above: 0 }): void {
    this.legendLabel.textContent = legend.label;
    if (legend.kind === "continuous") {
      this.legendBar.hidden = false;
      this.legendBar.style.background = cssGradient(legend.map);
      this.legendLo.textContent = tailLabel(formatValue(legend.lo), tails.below, "lo");
      this.legendHi.textContent = tailLabel(formatValue(legend.hi), tails.above, "hi");
      this.legendLo.title = tails.below > 0 ? `${(tails.below * 100).toFixed(1)}% of points lie below; drawn in the lowest colour` : "";
      this.legendHi.title = tails.above > 0 ? `${(tails.above * 100).toFixed(1)}% of points lie above; drawn in the highest colour` : "";
    } else {
      this.legendBar.hidden = true;
      this.legendLo.textContent = legend.count > 0 ? `${legend.count} colours (cycled)` : "";
      this.legendHi.textContent = "";
    }
  }

  private updateSelection(): void {
    this.selection = readSelection(this.ctx.model, this.n);
    if (this.selection.length === 0) {
      this.renderer.setSelection(null);
    } else {
      const mask = new Uint8Array(this.n);
      for (const i of this.selection) mask[i] = 255;
      this.renderer.setSelection(mask);
    }
    const count = this.selection.length;
    this.selText.textContent = count === 0 ? "no selection" : `${count.toLocaleString()} selected`;
    this.clearBtn.disabled = count === 0;
    this.el.dataset.selected = String(count);
    this.frame.request();
  }

  private updateLabels(): void {
    const model = this.ctx.model;
    const nLayers = getInt(model, "n_layers", 0);
    const layer = getInt(model, "layer", 0);
    const pLayer = getInt(model, "projection_layer", -1);
    const kind = getString(model, "projection_kind", "");
    const max = String(Math.max(0, nLayers - 1));
    if (this.slider.max !== max) this.slider.max = max;
    if (this.slider.value !== String(layer)) this.slider.value = String(layer);
    this.slider.disabled = nLayers <= 1;
    this.layerText.textContent = `layer ${layer}${nLayers > 0 ? ` / ${nLayers - 1}` : ""}`;
    let text = kind === "pca" ? "PCA preview" : kind === "umap" ? "UMAP" : "";
    if (text && pLayer >= 0 && pLayer !== layer) text += ` · layer ${pLayer}`;
    this.badge.textContent = text;
    this.badge.hidden = text.length === 0;
    this.badge.dataset.kind = kind;
  }

  // ------------------------------------------------------------------ geometry

  private transforms(): { from: Transform2D; to: Transform2D } {
    return {
      from: fitTransform(this.fromBounds, this.width, this.height),
      to: fitTransform(this.toBounds, this.width, this.height),
    };
  }

  /** Data -> CSS pixel of the target projection. */
  private toScreen(x: number, y: number, xf: Transform2D): [number, number] {
    const cx = (x * xf[0] + xf[2]) * this.zoom + this.panX;
    const cy = (y * xf[1] + xf[3]) * this.zoom + this.panY;
    return [((cx + 1) / 2) * this.width, ((1 - cy) / 2) * this.height];
  }

  /** CSS pixel -> data coordinates of the target projection. */
  private toData(px: number, py: number): [number, number] {
    const xf = fitTransform(this.toBounds, this.width, this.height);
    const cx = (px / this.width) * 2 - 1;
    const cy = 1 - (py / this.height) * 2;
    return [((cx - this.panX) / this.zoom - xf[2]) / xf[0], ((cy - this.panY) / this.zoom - xf[3]) / xf[1]];
  }

  private animationT(time: number): number {
    if (this.animStart === -1) return 1;
    if (this.animStart === -2) this.animStart = time;
    const t = Math.min(1, Math.max(0, (time - this.animStart) / ANIMATION_MS));
    if (t >= 1) {
      this.animStart = -1;
      this.fromBounds = this.toBounds;
      this.renderer.setPositions(null, this.positions, this.n);
      return 1;
    }
    return easeInOut(t);
  }

  private pointSize(): number {
    const n = this.n;
    const base = n > 50000 ? 2.5 : n > 10000 ? 3.5 : n > 2000 ? 4.5 : 6;
    return base * Math.min(3, Math.sqrt(this.zoom));
  }

  /** Draw the points (and schedule the next animation frame while animating). */
  draw(time: number): void {
    if (this.width <= 0) return;
    const t = this.animationT(time);
    const { from, to } = this.transforms();
    this.renderer.draw({
      t,
      from,
      to,
      view: [this.zoom, this.zoom, this.panX, this.panY],
      size: this.pointSize(),
      alpha: this.n > 50000 ? 0.6 : this.n > 10000 ? 0.75 : 0.9,
      // Unselected points stay visible behind the selection (more so on a dark panel).
      dim: this.ctx.theme.resolved === "dark" ? 0.42 : 0.28,
      clear: this.ctx.theme.panelRgb(),
    });
    this.drawOverlay(t);
    if (t < 1) this.frame.request();
  }

  private drawOverlay(t = 1): void {
    const canvas = this.overlay;
    const g = canvas.getContext("2d");
    if (!g) return;
    const dpr = canvas.width / Math.max(1, this.width);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const pal = this.ctx.theme.palette();
    const i = this.hovered;
    if (i >= 0 && i < this.n && t >= 1) {
      const xf = fitTransform(this.toBounds, this.width, this.height);
      const [x, y] = this.toScreen(this.positions[2 * i], this.positions[2 * i + 1], xf);
      if (Number.isFinite(x) && Number.isFinite(y)) {
        g.beginPath();
        g.arc(x, y, 6, 0, Math.PI * 2);
        g.lineWidth = 2;
        g.strokeStyle = pal.fg;
        g.stroke();
      }
    }
    const d = this.drag;
    if (d && d.moved && d.kind !== "pan") {
      g.lineWidth = 1;
      g.strokeStyle = pal.accent;
      g.fillStyle = "rgba(120, 140, 200, 0.12)";
      g.setLineDash([4, 3]);
      g.beginPath();
      if (d.kind === "box") {
        g.rect(Math.min(d.x0, d.x), Math.min(d.y0, d.y), Math.abs(d.x - d.x0), Math.abs(d.y - d.y0));
      } else {
        for (let k = 0; k < d.path.length; k += 2) {
          if (k === 0) g.moveTo(d.path[k], d.path[k + 1]);
          else g.lineTo(d.path[k], d.path[k + 1]);
        }
        g.closePath();
      }
      g.fill();
      g.stroke();
      g.setLineDash([]);
    }
  }

  // ------------------------------------------------------------------ interaction

  /** The token under (px, py) in CSS pixels of the stage, or -1. */
  pick(px: number, py: number): number {
    if (!this.grid || this.width <= 0) return -1;
    const [x, y] = this.toData(px, py);
    const xf = fitTransform(this.toBounds, this.width, this.height);
    const rx = HOVER_RADIUS_PX / ((this.width / 2) * xf[0] * this.zoom);
    const ry = HOVER_RADIUS_PX / ((this.height / 2) * xf[1] * this.zoom);
    return this.grid.nearest(x, y, rx, ry);
  }

  /** Tokens inside a screen rectangle / polygon (CSS pixels of the stage). */
  selectRect(x0: number, y0: number, x1: number, y1: number): Int32Array {
    if (!this.grid) return new Int32Array(0);
    const [ax, ay] = this.toData(x0, y0);
    const [bx, by] = this.toData(x1, y1);
    return this.grid.queryRect(ax, ay, bx, by);
  }

  selectPolygon(path: number[]): Int32Array {
    if (!this.grid) return new Int32Array(0);
    const poly: number[] = [];
    for (let k = 0; k + 1 < path.length; k += 2) poly.push(...this.toData(path[k], path[k + 1]));
    return this.grid.queryPolygon(poly);
  }

  private setHovered(i: number, clientX: number, clientY: number): void {
    const model = this.ctx.model;
    const rect = this.stage.getBoundingClientRect();
    if (i !== this.hovered) {
      this.hovered = i;
      model.set("hovered_token", i);
      this.hoverSaver.save();
      this.overlayFrame.request();
    }
    if (i < 0) {
      this.tooltip.hide();
      return;
    }
    const tokens = this.ctx.tokens.get();
    const lines = [`prompt ${tokens.prompt[i] ?? "?"} · position ${tokens.position[i] ?? "?"} · row ${i}`];
    const nLayers = getInt(model, "n_layers", 0);
    const layer = getInt(model, "layer", 0);
    const localId = asFloat32(model.get("local_id") as never);
    if (nLayers > 0 && localId.length >= (i + 1) * nLayers) {
      lines.push(`local ID ${formatValue(localId[i * nLayers + layer])} (layer ${layer})`);
    }
    this.tooltip.show(clientX - rect.left, clientY - rect.top, tokens.context(i, 6), lines);
  }

  private bindPointer(): void {
    const stage = this.stage;
    const local = (event: PointerEvent | MouseEvent | WheelEvent): [number, number] => {
      const rect = stage.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    };
    this.subs.dom(stage, "pointermove", (event: PointerEvent) => {
      const [x, y] = local(event);
      const d = this.drag;
      if (d) {
        const dx = x - d.x;
        const dy = y - d.y;
        if (Math.abs(x - d.x0) + Math.abs(y - d.y0) > 3) d.moved = true;
        if (d.kind === "pan") {
          this.panX += (dx / this.width) * 2;
          this.panY -= (dy / this.height) * 2;
          this.frame.request();
        } else if (d.kind === "lasso") {
          d.path.push(x, y);
          this.overlayFrame.request();
        } else {
          this.overlayFrame.request();
        }
        d.x = x;
        d.y = y;
        return;
      }
      const start = performance.now();
      const i = this.pick(x, y);
      this.setHovered(i, event.clientX, event.clientY);
      this.lastHoverMs = performance.now() - start;
    });
    this.subs.dom(stage, "pointerleave", () => {
      if (this.drag) return;
      this.tooltip.hide();
      if (this.hovered !== -1) {
        this.hovered = -1;
        this.ctx.model.set("hovered_token", -1);
        this.hoverSaver.save();
        this.overlayFrame.request();
      }
    });
    this.subs.dom(stage, "pointerdown", (event: PointerEvent) => {
      if (event.button !== 0 && event.button !== 1) return;
      const [x, y] = local(event);
      let kind: "box" | "lasso" | "pan" = this.mode;
      if (event.button === 1 || event.altKey) kind = "pan";
      else if (event.shiftKey && kind === "box") kind = "lasso";
      this.drag = { kind, x0: x, y0: y, x, y, path: [x, y], additive: event.ctrlKey || event.metaKey, moved: false };
      this.tooltip.hide();
      try {
        stage.setPointerCapture?.(event.pointerId);
      } catch {
        // Synthetic events have no active pointer.
      }
      stage.focus({ preventScroll: true });
      event.preventDefault();
    });
    const finish = (event: PointerEvent): void => {
      const d = this.drag;
      if (!d) return;
      this.drag = null;
      const model = this.ctx.model;
      if (!d.moved) {
        // A click: select the point under the cursor, or clear.
        const [x, y] = local(event);
        const i = this.pick(x, y);
        if (i >= 0) writeSelection(model, d.additive ? [...this.selection, i] : [i]);
        else if (this.selection.length > 0 && !d.additive) writeSelection(model, []);
      } else if (d.kind === "box" || d.kind === "lasso") {
        const picked = d.kind === "box" ? this.selectRect(d.x0, d.y0, d.x, d.y) : this.selectPolygon(d.path);
        if (d.additive) {
          const merged = new Set<number>(this.selection);
          for (const i of picked) merged.add(i);
          writeSelection(model, [...merged]);
        } else {
          writeSelection(model, picked);
        }
      }
      this.overlayFrame.request();
    };
    this.subs.dom(stage, "pointerup", finish);
    this.subs.dom(stage, "pointercancel", () => {
      this.drag = null;
      this.overlayFrame.request();
    });
    this.subs.dom(
      stage,
      "wheel",
      (event: WheelEvent) => {
        // Zoom only when the plot has focus (or with ctrl / cmd) so the notebook still scrolls.
        const doc = this.ctx.doc;
        if (doc.activeElement !== stage && !event.ctrlKey && !event.metaKey) return;
        event.preventDefault();
        const [x, y] = local(event);
        const cx = (x / this.width) * 2 - 1;
        const cy = 1 - (y / this.height) * 2;
        const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
        const zoom = Math.min(200, Math.max(0.5, this.zoom * factor));
        const f = zoom / this.zoom;
        this.panX = cx - (cx - this.panX) * f;
        this.panY = cy - (cy - this.panY) * f;
        this.zoom = zoom;
        this.frame.request();
      },
      { passive: false },
    );
    this.subs.dom(stage, "dblclick", () => {
      this.zoom = 1;
      this.panX = 0;
      this.panY = 0;
      this.frame.request();
    });
    this.subs.dom(stage, "keydown", (event: KeyboardEvent) => {
      if (event.key === "Escape") writeSelection(this.ctx.model, []);
    });
  }

  // ------------------------------------------------------------------ export

  async exportImage(format: "png" | "svg"): Promise<string> {
    const doc = this.ctx.doc;
    const dpr = this.renderer.canvas.width / Math.max(1, this.width || 1);
    // Finish any animation, then draw and copy in the same task (the WebGL drawing buffer is not
    // preserved between frames).
    this.animStart = -1;
    this.fromBounds = this.toBounds;
    this.draw(performance.now());
    const out = doc.createElement("canvas");
    out.width = this.renderer.canvas.width;
    out.height = this.renderer.canvas.height;
    const g = out.getContext("2d");
    if (!g) throw new Error("no 2-D canvas context available for the export");
    g.drawImage(this.renderer.canvas, 0, 0);
    g.drawImage(this.overlay, 0, 0);
    const pal = this.ctx.theme.palette();
    g.scale(dpr, dpr);
    g.font = `12px ${pal.font}`;
    g.fillStyle = pal.fg;
    const caption = [this.badge.textContent, `colour: ${this.legendLabel.textContent}`].filter(Boolean).join(" · ");
    g.fillText(caption, 8, 16);
    const png = out.toDataURL("image/png");
    if (format === "png") return png;
    return pngInSvg(png, this.width, this.height, `Token cloud ${caption}`);
  }

  dispose(): void {
    this.frame.cancel();
    this.overlayFrame.cancel();
    this.saver.cancel();
    this.hoverSaver.cancel();
    this.subs.dispose();
    this.renderer.dispose();
    this.el.remove();
  }
}
