import { describe, expect, it } from "vitest";
import { clippedShares, percentiles, rangeForMode, tailLabel } from "../src/coloring";

describe("colour ranges", () => {
  const values = new Float32Array(101);
  for (let i = 0; i <= 100; i++) values[i] = i;
  values[100] = 1000; // an outlier

  it("computes percentiles like numpy (linear), ignoring NaN", () => {
    const withNaN = Float32Array.from([...values, NaN, NaN]);
    const [p2, p50, p98] = percentiles(withNaN, [2, 50, 98]);
    expect(p2).toBeCloseTo(2);
    expect(p50).toBeCloseTo(50);
    expect(p98).toBeCloseTo(98);
    expect(percentiles(new Float32Array([NaN]), [50])[0]).toBeNaN();
  });

  it("keeps an outlier from setting the robust range", () => {
    expect(rangeForMode("robust", values, null)[1]).toBeLessThan(100);
    expect(rangeForMode("robust", values, [3, 4])).toEqual([3, 4]); // Python's range wins
    expect(rangeForMode("full", values, [3, 4])).toEqual([0, 1000]);
    const [lo, hi] = rangeForMode("p5", values, null);
    expect(lo).toBeCloseTo(5);
    expect(hi).toBeCloseTo(95);
  });

  it("counts the clipped tails and missing cells, and marks them in labels", () => {
    const shares = clippedShares(Float32Array.from([0, 1, 2, 3, NaN]), 0.5, 2.5);
    expect(shares).toEqual({ below: 0.25, above: 0.25, missing: 0.2 });
    expect(tailLabel("72", 0.01, "hi")).toBe("≥ 72");
    expect(tailLabel("1.3", 0.02, "lo")).toBe("≤ 1.3");
    expect(tailLabel("1.3", 0, "lo")).toBe("1.3");
  });
});
