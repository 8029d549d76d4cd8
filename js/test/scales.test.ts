import { describe, expect, it } from "vitest";
import {
  categoricalColor,
  colorLut,
  formatTick,
  formatValue,
  formatWithSpec,
  hashBytes,
  integerTicks,
  linearScale,
  luminance,
  niceDomain,
  parseColor,
  plasma,
  ticks,
  viridis,
} from "../src/scales";

describe("linearScale", () => {
  it("maps and inverts", () => {
    const s = linearScale([0, 10], [100, 300]);
    expect(s(0)).toBe(100);
    expect(s(5)).toBe(200);
    expect(s.invert(250)).toBeCloseTo(7.5);
  });

  it("handles an inverted range (y axis)", () => {
    const s = linearScale([0, 1], [200, 0]);
    expect(s(1)).toBe(0);
    expect(s.invert(50)).toBeCloseTo(0.75);
  });

  it("maps a zero-width domain to the middle", () => {
    const s = linearScale([3, 3], [0, 100]);
    expect(s(3)).toBe(50);
    expect(s(99)).toBe(50);
  });
});

describe("ticks", () => {
  it("gives round 1-2-5 steps inside the domain", () => {
    expect(ticks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0.1, 0.95, 4)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(ticks(-3, 17, 4)).toEqual([0, 5, 10, 15]);
  });

  it("has no float noise in the values", () => {
    for (const t of ticks(0, 1, 10)) expect(String(t).length).toBeLessThanOrEqual(3);
  });

  it("returns integer ticks for layers", () => {
    expect(integerTicks(0, 5, 10)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(integerTicks(0, 30, 6)).toEqual([0, 5, 10, 15, 20, 25, 30]);
  });

  it("extends a domain to round values", () => {
    expect(niceDomain(2.3, 11.7, 5)).toEqual([2, 12]);
    const [lo, hi] = niceDomain(4, 4);
    expect(lo).toBeLessThan(4);
    expect(hi).toBeGreaterThan(4);
  });

  it("formats ticks with the decimals the step needs", () => {
    expect(formatTick(0.2, 0.2)).toBe("0.2");
    expect(formatTick(10, 5)).toBe("10");
    expect(formatTick(-0.0001, 0.5)).toBe("0.0");
  });
});

describe("number formats", () => {
  it("formats values to 3 significant digits", () => {
    expect(formatValue(4.21345)).toBe("4.21");
    expect(formatValue(123.456)).toBe("123");
    expect(formatValue(Number.NaN)).toBe("—");
  });

  it("understands the small format specs of metrics columns", () => {
    expect(formatWithSpec(3.14159, ".2f")).toBe("3.14");
    expect(formatWithSpec(0.4312, ".0%")).toBe("43%");
    expect(formatWithSpec(7.6, "d")).toBe("8");
    expect(formatWithSpec(0.000123456, ".3g")).toBe("0.000123");
    expect(formatWithSpec(null, ".2f")).toBe("—");
    expect(formatWithSpec("GRIDE", ".2f")).toBe("GRIDE");
  });
});

describe("colour maps", () => {
  it("viridis runs from dark violet to yellow and gets brighter", () => {
    expect(viridis(0)).toEqual([0x44, 0x01, 0x54]);
    expect(viridis(1)).toEqual([0xfd, 0xe7, 0x25]);
    let previous = -1;
    for (let i = 0; i <= 10; i++) {
      const l = luminance(viridis(i / 10));
      expect(l).toBeGreaterThan(previous);
      previous = l;
    }
  });

  it("clamps out-of-range input and treats NaN as the low end", () => {
    expect(viridis(-1)).toEqual(viridis(0));
    expect(viridis(2)).toEqual(viridis(1));
    expect(plasma(Number.NaN)).toEqual(plasma(0));
  });

  it("samples a lookup table", () => {
    const lut = colorLut(viridis, 256);
    expect(lut.length).toBe(1024);
    expect(Array.from(lut.subarray(1020, 1024))).toEqual([0xfd, 0xe7, 0x25, 255]);
  });

  it("cycles categorical colours and hashes bytes stably", () => {
    expect(categoricalColor(0)).toEqual(categoricalColor(12));
    expect(categoricalColor(-1)).toEqual(categoricalColor(11));
    const a = new TextEncoder().encode(" the the");
    expect(hashBytes(a, 0, 4)).toBe(hashBytes(a, 4, 8));
    expect(hashBytes(a, 0, 4)).not.toBe(hashBytes(a, 0, 3));
  });

  it("parses CSS colours", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255]);
    expect(parseColor(" rgb(10, 20, 30) ")).toEqual([10, 20, 30]);
    expect(parseColor("var(--x)")).toBeNull();
  });
});
