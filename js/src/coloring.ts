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
