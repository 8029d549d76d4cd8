import { describe, expect, it } from "vitest";
import { GridIndex, pointInPolygon } from "../src/spatial";
import { rng } from "../dev/synthetic";

function randomPoints(n: number, seed: number): Float32Array {
  const rand = rng(seed);
  const xy = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    // Two clusters of different density, like a real projection.
    const c = i % 3 === 0 ? 10 : 0;
    xy[2 * i] = c + (rand() - 0.5) * (c ? 2 : 8);
    xy[2 * i + 1] = (rand() - 0.5) * 6;
  }
  return xy;
}

function bruteNearest(xy: Float32Array, x: number, y: number, rx: number, ry: number): number {
  let best = -1;
  let bestD = 1;
  for (let i = 0; i < xy.length / 2; i++) {
    const dx = (xy[2 * i] - x) / rx;
    const dy = (xy[2 * i + 1] - y) / ry;
    const d = dx * dx + dy * dy;
    if (d <= bestD && (d < bestD || i > best)) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

describe("pointInPolygon", () => {
  const square = [0, 0, 4, 0, 4, 4, 0, 4];
  it("tells inside from outside", () => {
    expect(pointInPolygon(2, 2, square)).toBe(true);
    expect(pointInPolygon(5, 2, square)).toBe(false);
    expect(pointInPolygon(-0.1, 2, square)).toBe(false);
  });

  it("handles a concave polygon (a U shape)", () => {
    const u = [0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3];
    expect(pointInPolygon(0.5, 2, u)).toBe(true);
    expect(pointInPolygon(1.5, 2, u)).toBe(false); // in the notch
    expect(pointInPolygon(2.5, 2, u)).toBe(true);
    expect(pointInPolygon(1.5, 0.5, u)).toBe(true);
  });

  it("counts a ray through a vertex once", () => {
    const diamond = [0, -1, 1, 0, 0, 1, -1, 0];
    expect(pointInPolygon(-2, 0, diamond)).toBe(false);
    expect(pointInPolygon(0, 0, diamond)).toBe(true);
    expect(pointInPolygon(0.5, 0, diamond)).toBe(true);
    expect(pointInPolygon(0, 1.5, diamond)).toBe(false);
  });

  it("is false for degenerate polygons", () => {
    expect(pointInPolygon(0, 0, [0, 0, 1, 1])).toBe(false);
  });
});

describe("GridIndex", () => {
  const xy = randomPoints(5000, 3);
  const grid = new GridIndex(xy);

  it("finds the same nearest point as a brute-force scan", () => {
    const rand = rng(11);
    for (let q = 0; q < 300; q++) {
      const x = -6 + rand() * 18;
      const y = -4 + rand() * 8;
      const rx = 0.05 + rand() * 0.5;
      const ry = rx * (0.5 + rand());
      expect(grid.nearest(x, y, rx, ry)).toBe(bruteNearest(xy, x, y, rx, ry));
    }
  });

  it("returns -1 when nothing is within the radius", () => {
    expect(grid.nearest(1000, 1000, 1, 1)).toBe(-1);
    expect(grid.nearest(6, 0, 0.0001, 0.0001)).toBe(-1);
  });

  it("selects exactly the points in a rectangle", () => {
    const got = Array.from(grid.queryRect(3, 2, -1, -1));
    const want: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const x = xy[2 * i];
      const y = xy[2 * i + 1];
      if (x >= -1 && x <= 3 && y >= -1 && y <= 2) want.push(i);
    }
    expect(got).toEqual(want);
    expect(want.length).toBeGreaterThan(100);
  });

  it("selects exactly the points in a lasso polygon", () => {
    const triangle = [-4, -3, 11, -3, 4, 3];
    const got = Array.from(grid.queryPolygon(triangle));
    const want: number[] = [];
    for (let i = 0; i < 5000; i++) if (pointInPolygon(xy[2 * i], xy[2 * i + 1], triangle)) want.push(i);
    expect(got).toEqual(want);
    expect(want.length).toBeGreaterThan(100);
  });

  it("leaves non-finite points out and copes with an empty or single-point set", () => {
    const withNaN = new Float32Array([0, 0, Number.NaN, 1, 1, 1]);
    const g = new GridIndex(withNaN);
    expect(Array.from(g.queryRect(-10, -10, 10, 10))).toEqual([0, 2]);
    expect(new GridIndex(new Float32Array(0)).nearest(0, 0, 1, 1)).toBe(-1);
    expect(new GridIndex(new Float32Array([5, 5])).nearest(5.1, 5, 1, 1)).toBe(0);
  });
});
