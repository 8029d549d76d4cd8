import { describe, expect, it } from "vitest";
import { layoutCurves, nearestLayer, parseCurves } from "../src/curve_layout";

const raw = [
  {
    label: "TwoNN",
    estimator: "twonn",
    model: "m",
    layers: [0, 1, 2, 3, 4],
    dimension: [2, 4, 8, 6, 3],
    lower: [1.5, 3.5, 7, 5, 2.5],
    upper: [2.5, 4.5, 9, 7, 3.5],
    peak_layer: 2,
  },
  {
    label: "GRIDE",
    estimator: "gride",
    model: "m",
    color: "#ff0000",
    layers: [0, 1, 2, 3, 4],
    dimension: [3, null, 10, 9, 5],
    lower: [],
    upper: [],
    peak_layer: null,
  },
];

describe("parseCurves", () => {
  it("keeps valid curves, pads short arrays with NaN and reads null as NaN", () => {
    const curves = parseCurves([...raw, "junk", null]);
    expect(curves).toHaveLength(2);
    expect(Number.isNaN(curves[1].dimension[1])).toBe(true);
    expect(curves[1].lower).toHaveLength(5);
    expect(curves[1].color).toBe("#ff0000");
    expect(curves[0].color).toBeNull();
  });

  it("returns an empty list for anything but a list", () => {
    expect(parseCurves(undefined)).toEqual([]);
    expect(parseCurves({})).toEqual([]);
  });
});

describe("layoutCurves", () => {
  const curves = parseCurves(raw);
  const layout = layoutCurves(curves, { width: 600, height: 300, layer: 3, nLayers: 5 });

  it("puts every value inside the plot and the y domain around the data", () => {
    const { plot } = layout;
    for (const s of layout.series) {
      for (const p of s.points) {
        expect(p.x).toBeGreaterThanOrEqual(plot.x0);
        expect(p.x).toBeLessThanOrEqual(plot.x1);
        expect(p.y).toBeGreaterThanOrEqual(plot.y0);
        expect(p.y).toBeLessThanOrEqual(plot.y1);
      }
    }
    expect(layout.y.domain[0]).toBeLessThanOrEqual(1.5);
    expect(layout.y.domain[1]).toBeGreaterThanOrEqual(10);
  });

  it("draws higher values higher and layers left to right", () => {
    const pts = layout.series[0].points;
    expect(pts[2].y).toBeLessThan(pts[0].y);
    expect(pts[1].x).toBeGreaterThan(pts[0].x);
  });

  it("breaks the line at a missing value and skips the band where bounds are missing", () => {
    const gride = layout.series[1];
    expect(gride.points).toHaveLength(4);
    expect(gride.line.match(/M/g)).toHaveLength(2);
    expect(gride.band).toBe("");
    expect(layout.series[0].band.startsWith("M")).toBe(true);
    expect(layout.series[0].band.endsWith("Z")).toBe(true);
  });

  it("marks the peak and the current layer", () => {
    expect(layout.series[0].peak?.layer).toBe(2);
    expect(layout.series[1].peak).toBeNull();
    expect(layout.layerX).toBeCloseTo(layout.x(3));
  });

  it("shows a legend only for several curves, and assigns colours", () => {
    expect(layout.legend.map((l) => l.label)).toEqual(["TwoNN", "GRIDE"]);
    expect(layout.series[1].color).toBe("#ff0000");
    expect(layout.series[0].color).toMatch(/^#[0-9a-f]{6}$/);
    const single = layoutCurves(curves.slice(0, 1), { width: 600, height: 300, layer: 0, nLayers: 5 });
    expect(single.legend).toEqual([]);
    expect(single.margin.top).toBeLessThan(layout.margin.top);
  });

  it("wraps the legend on narrow charts", () => {
    const many = parseCurves(Array.from({ length: 8 }, (_, i) => ({ ...raw[0], label: `estimator number ${i}` })));
    const narrow = layoutCurves(many, { width: 300, height: 300, layer: 0, nLayers: 5 });
    const rows = new Set(narrow.legend.map((l) => l.y));
    expect(rows.size).toBeGreaterThan(1);
    for (const item of narrow.legend) expect(item.x).toBeLessThan(300);
  });

  it("picks the nearest layer from a pixel position", () => {
    expect(nearestLayer(layout, layout.x(2) + 3)).toBe(2);
    expect(nearestLayer(layout, -100)).toBe(0);
    expect(nearestLayer(layout, 10000)).toBe(4);
  });

  it("lays out an empty chart over n_layers", () => {
    const empty = layoutCurves([], { width: 400, height: 200, layer: 0, nLayers: 30 });
    expect(empty.layers).toHaveLength(30);
    const last = empty.xTicks[empty.xTicks.length - 1].value;
    expect(last).toBeLessThanOrEqual(29);
    expect(last).toBeGreaterThanOrEqual(25);
    expect(empty.series).toEqual([]);
  });
});

describe("peak labels", () => {
  const four = ["twonn", "mle", "gride", "twonn · gaussian control"].map((label, i) => ({
    label,
    estimator: label,
    model: "m",
    layers: [0, 1, 2, 3, 4, 5],
    dimension: [20, 9 + i * 0.2, 12 + i * 0.3, 11, 8, 6],
    lower: [],
    upper: [],
    peak_layer: 2,
    kind: i === 3 ? "control" : "curve",
    layer_kinds: ["embedding", "residual", "residual", "residual", "residual", "final_norm"],
  }));
  const overlap = (a: number[], b: number[]): boolean => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];

  it("never overlap with four curves peaking at the same layer, nor the embedding note", () => {
    for (const width of [300, 480, 900]) {
      const layout = layoutCurves(parseCurves(four), { width, height: 300, layer: 0, nLayers: 6 });
      expect(layout.peakLabels.length).toBeGreaterThanOrEqual(3);
      const boxes = layout.peakLabels.map((l) => l.box);
      for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i], boxes[j])).toBe(false);
        expect(overlap(boxes[i], layout.embedding.note!.box)).toBe(false);
        // inside the plot
        expect(boxes[i][0]).toBeGreaterThanOrEqual(layout.plot.x0);
        expect(boxes[i][2]).toBeLessThanOrEqual(layout.plot.x1);
        expect(boxes[i][1]).toBeGreaterThanOrEqual(layout.plot.y0);
      }
      // Every peak is named in the legend, even one whose label found no room.
      expect(layout.legend.map((l) => l.text)).toEqual(four.map((c) => `${c.label} · peak 2`));
    }
  });

  it("places a label left out only when there is no room, and labels hidden curves not at all", () => {
    const layout = layoutCurves(parseCurves(four), { width: 480, height: 300, layer: 0, nLayers: 6, hidden: new Set(["mle"]) });
    expect(layout.peakLabels.map((l) => l.series)).not.toContain(1);
    expect(layout.series[1].hidden).toBe(true);
  });

  it("marks the embedding layer and the working-layer probability strip", () => {
    const curves = parseCurves([{ ...four[0], peak_probability: [0, 0.1, 0.6, 0.3, 0, 0] }]);
    const layout = layoutCurves(curves, { width: 480, height: 300, layer: 0, nLayers: 6 });
    expect(layout.embedding.layers).toEqual([0]);
    expect(layout.embedding.x1).toBeGreaterThan(layout.embedding.x0);
    expect(layout.strip?.cells.map((c) => c.probability)).toEqual([0, 0.1, 0.6, 0.3, 0, 0]);
    expect(layout.strip!.y).toBeGreaterThan(layout.plot.y1);
    for (const c of layout.strip!.cells) {
      expect(c.x).toBeGreaterThanOrEqual(layout.plot.x0);
      expect(c.x + c.width).toBeLessThanOrEqual(layout.plot.x1 + 1e-9);
    }
    const without = layoutCurves(parseCurves([four[0]]), { width: 480, height: 300, layer: 0, nLayers: 6 });
    expect(without.strip).toBeNull();
    expect(without.plot.y1).toBeGreaterThan(layout.plot.y1);
  });
});
