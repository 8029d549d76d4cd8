// Per-point colours of the scatter (and the legend that explains them).

import {
  colorLut,
  hashColor,
  categoricalColor,
  plasma,
  viridis,
  type ColorMap,
  type RGB,
} from "./scales";
import type { TokenTable } from "./tokens";

export type ColorBy = "local_id" | "position" | "prompt" | "token";
export const COLOR_BY_CHOICES: readonly ColorBy[] = ["local_id", "position", "prompt", "token"];
export const COLOR_BY_LABELS: Record<ColorBy, string> = {
  local_id: "local ID",
  position: "position in prompt",
  prompt: "prompt",
  token: "token",
};

export type Legend =
  | { kind: "continuous"; label: string; map: ColorMap; lo: number; hi: number }
  | { kind: "categorical"; label: string; count: number };

export interface ColoringInput {
  colorBy: string;
  n: number;
  tokens: TokenTable;
  /** Row-major tokens x layers local ID (NaN = missing). */
  localId: Float32Array;
  nLayers: number;
  layer: number;
  /** [lo, hi] of the local-ID colour scale; computed from the data when invalid. */
  range: [number, number] | null;
  missing: RGB;
}

const VIRIDIS_LUT = colorLut(viridis);
const PLASMA_LUT = colorLut(plasma);

/** Finite min / max of the local ID of one layer (the fallback colour range). */
export function layerRange(localId: Float32Array, n: number, nLayers: number, layer: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  if (nLayers > 0 && layer >= 0 && layer < nLayers) {
    for (let i = 0; i < n; i++) {
      const v = localId[i * nLayers + layer];
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** Colour-range modes of local ID (the `local_id_range_mode` trait). */
export const RANGE_MODES = ["robust", "p5", "full"] as const;
export type RangeMode = (typeof RANGE_MODES)[number];
export const RANGE_MODE_LABELS: Record<RangeMode, string> = {
  robust: "2–98th percentile",
  p5: "5–95th percentile",
  full: "min–max",
};

/**
 * The q-th percentiles (0..100) of the finite values, by linear interpolation between order
 * statistics (numpy's default); a strided sample of at most `maxSample` values for big arrays.
 */
export function percentiles(values: Float32Array, qs: number[], maxSample = 200_000): number[] {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) count++;
  if (count === 0) return qs.map(() => NaN);
  const stride = Math.max(1, Math.ceil(count / maxSample));
  const sample = new Float32Array(Math.ceil(count / stride));
  let k = 0;
  let seen = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (seen++ % stride === 0) sample[k++] = v;
  }
  const sorted = sample.subarray(0, k).sort();
  return qs.map((q) => {
    const pos = (Math.min(100, Math.max(0, q)) / 100) * (sorted.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(sorted.length - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  });
}

/**
 * The colour range of local ID for a mode: "robust" is the range Python sent (2nd-98th
 * percentile), else computed here; "p5" the 5th-95th percentile; "full" min-max.
 */
export function rangeForMode(mode: string, values: Float32Array, sent: [number, number] | null): [number, number] {
  let lo = NaN;
  let hi = NaN;
  if (mode === "full") [lo, hi] = percentiles(values, [0, 100]);
  else if (mode === "p5") [lo, hi] = percentiles(values, [5, 95]);
  else if (sent) return sent;
  else [lo, hi] = percentiles(values, [2, 98]);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  return hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5];
}

/** Share of finite values below / above a range (the clipped tails a legend marks). */
export function clippedShares(values: Float32Array, lo: number, hi: number): { below: number; above: number; missing: number } {
  let below = 0;
  let above = 0;
  let finite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    finite++;
    if (v < lo) below++;
    else if (v > hi) above++;
  }
  const n = Math.max(1, finite);
  return { below: below / n, above: above / n, missing: values.length > 0 ? (values.length - finite) / values.length : 0 };
}

/** Legend end labels: "≤ 1.3" / "≥ 72" when that tail is clipped, else the plain value. */
export function tailLabel(value: string, clipped: number, side: "lo" | "hi"): string {
  return clipped > 0 ? `${side === "lo" ? "≤" : "≥"} ${value}` : value;
}

/** Parse the `local_id_range` trait; null when it is not two finite increasing numbers. */
export function parseRange(value: unknown): [number, number] | null {
  if (!Array.isArray(value) || value.length < 2) return null;
  const lo = Number(value[0]);
  const hi = Number(value[1]);
  return Number.isFinite(lo) && Number.isFinite(hi) && hi > lo ? [lo, hi] : null;
}

/** Colours (RGBA bytes, n * 4) for every point, and the legend. */
export function pointColors(input: ColoringInput): { rgba: Uint8Array; legend: Legend } {
  const { n, tokens } = input;
  const rgba = new Uint8Array(n * 4);
  const put = (i: number, r: number, g: number, b: number): void => {
    rgba[4 * i] = r;
    rgba[4 * i + 1] = g;
    rgba[4 * i + 2] = b;
    rgba[4 * i + 3] = 255;
  };
  const [mr, mg, mb] = input.missing;
  const lutColor = (lut: Uint8Array, i: number, t: number): void => {
    if (!Number.isFinite(t)) {
      put(i, mr, mg, mb);
      return;
    }
    const k = Math.max(0, Math.min(255, Math.round(t * 255))) * 4;
    put(i, lut[k], lut[k + 1], lut[k + 2]);
  };
  switch (input.colorBy) {
    case "position": {
      const max = Math.max(1, tokens.maxPosition);
      for (let i = 0; i < n; i++) lutColor(PLASMA_LUT, i, i < tokens.n ? tokens.position[i] / max : NaN);
      return { rgba, legend: { kind: "continuous", label: "position in prompt", map: plasma, lo: 0, hi: max } };
    }
    case "prompt": {
      for (let i = 0; i < n; i++) {
        const [r, g, b] = i < tokens.n ? categoricalColor(tokens.prompt[i]) : input.missing;
        put(i, r, g, b);
      }
      return { rgba, legend: { kind: "categorical", label: "prompt", count: tokens.nPrompts } };
    }
    case "token": {
      const hashes = tokens.textHashes();
      for (let i = 0; i < n; i++) {
        const [r, g, b] = i < tokens.n ? hashColor(hashes[i]) : input.missing;
        put(i, r, g, b);
      }
      return { rgba, legend: { kind: "categorical", label: "token text", count: 0 } };
    }
    default: {
      const { localId, nLayers, layer } = input;
      const [lo, hi] = input.range ?? layerRange(localId, n, nLayers, layer);
      const span = hi - lo;
      const valid = nLayers > 0 && layer >= 0 && layer < nLayers && localId.length >= n * nLayers;
      for (let i = 0; i < n; i++) {
        const v = valid ? localId[i * nLayers + layer] : NaN;
        lutColor(VIRIDIS_LUT, i, span > 0 ? (v - lo) / span : 0.5 + v * 0);
      }
      return { rgba, legend: { kind: "continuous", label: `local ID (layer ${layer})`, map: viridis, lo, hi } };
    }
  }
}

/** A CSS linear-gradient through a colour map (colour bars). */
export function cssGradient(map: ColorMap, direction = "to right", stops = 9): string {
  const parts: string[] = [];
  for (let i = 0; i < stops; i++) {
    const [r, g, b] = map(i / (stops - 1));
    parts.push(`rgb(${r}, ${g}, ${b}) ${Math.round((100 * i) / (stops - 1))}%`);
  }
  return `linear-gradient(${direction}, ${parts.join(", ")})`;
}
