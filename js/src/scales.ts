// Scales, ticks, number formats and colour maps shared by the SVG and canvas views.

/** A linear map from a data domain to a pixel range, with its inverse. */
export interface LinearScale {
  (value: number): number;
  invert(pixel: number): number;
  domain: [number, number];
  range: [number, number];
}

/** Build a linear scale. A zero-width domain maps everything to the middle of the range. */
export function linearScale(domain: [number, number], range: [number, number]): LinearScale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0;
  const k = span === 0 ? 0 : (r1 - r0) / span;
  const mid = (r0 + r1) / 2;
  const scale = ((value: number) => (span === 0 ? mid : r0 + (value - d0) * k)) as LinearScale;
  scale.invert = (pixel: number) => (k === 0 ? d0 : d0 + (pixel - r0) / k);
  scale.domain = [d0, d1];
  scale.range = [r0, r1];
  return scale;
}

/** The 1-2-5 step closest to `span / count`. */
export function tickStep(lo: number, hi: number, count: number): number {
  const span = Math.abs(hi - lo);
  if (!(span > 0) || !Number.isFinite(span) || count <= 0) return 0;
  const raw = span / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const error = raw / power;
  const factor = error >= 7.07 ? 10 : error >= 3.16 ? 5 : error >= 1.41 ? 2 : 1;
  return factor * power;
}

/** About `count` round tick values inside [lo, hi] (both ends included when round). */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const reversed = hi < lo;
  const a = reversed ? hi : lo;
  const b = reversed ? lo : hi;
  const step = tickStep(a, b, count);
  if (step === 0) return [a];
  const first = Math.ceil(a / step - 1e-9);
  const last = Math.floor(b / step + 1e-9);
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(roundTo(i * step, step));
  return reversed ? out.reverse() : out;
}

/** Integer ticks (layers): never a fractional step. */
export function integerTicks(lo: number, hi: number, count = 8): number[] {
  const step = Math.max(1, tickStep(lo, hi, count));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(Math.round(v));
  return out;
}

/** Extend [lo, hi] outwards to multiples of the tick step. */
export function niceDomain(lo: number, hi: number, count = 5): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - pad, hi + pad];
  }
  const step = tickStep(lo, hi, count);
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

function roundTo(value: number, step: number): number {
  // Remove the float noise of i * step (0.30000000000000004) so labels stay short.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(value.toFixed(Math.min(decimals, 15)));
}

/** Format a tick label with as many decimals as the step needs. */
export function formatTick(value: number, step: number): string {
  if (!Number.isFinite(value)) return "";
  const decimals = step > 0 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : 2;
  const text = value.toFixed(decimals);
  return text === "-0" || /^-0\.0*$/.test(text) ? text.slice(1) : text;
}

/** A short human format for values shown in tooltips (3 significant digits, no exponent). */
export function formatValue(value: number, digits = 3): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  if (value === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, Math.min(8, digits - 1 - magnitude));
  return value.toFixed(decimals);
}

/**
 * Format a value with a small format spec: ".2f" (fixed), ".3g" (significant digits), "d"
 * (integer), ".1%" (percent), "s" (string). Anything else falls back to `formatValue`.
 */
export function formatWithSpec(value: unknown, spec?: string | null): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  const match = /^\.?(\d+)?([fgd%s])$/.exec(spec ?? "");
  if (!match) return Number.isInteger(value) ? String(value) : formatValue(value);
  const precision = match[1] === undefined ? undefined : Number(match[1]);
  switch (match[2]) {
    case "f":
      return value.toFixed(precision ?? 2);
    case "g":
      return formatValue(value, precision ?? 3);
    case "d":
      return String(Math.round(value));
    case "%":
      return `${(value * 100).toFixed(precision ?? 0)}%`;
    default:
      return String(value);
  }
}

// ---------------------------------------------------------------- colour maps

/** An RGB colour with components in 0..255. */
export type RGB = [number, number, number];

/** A colour map: t in [0, 1] to RGB. */
export type ColorMap = (t: number) => RGB;

function hexToRgb(hex: string): RGB {
  const h = hex.replace("#", "");
  const full = h.length === 3 ? h.replace(/./g, (c) => c + c) : h;
  const n = parseInt(full.slice(0, 6), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Parse "#rgb", "#rrggbb", "rgb(r, g, b)" or "rgba(...)"; null when not understood. */
export function parseColor(text: string | null | undefined): RGB | null {
  if (!text) return null;
  const s = text.trim();
  if (/^#([0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(s)) return hexToRgb(s);
  const m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/i.exec(s);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  return null;
}

/** Relative luminance (0 dark .. 1 light) of an sRGB colour. */
export function luminance([r, g, b]: RGB): number {
  const lin = (c: number): number => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** A piecewise-linear colour map through evenly spaced stops. */
export function stopsColorMap(stops: string[]): ColorMap {
  const rgb = stops.map(hexToRgb);
  const last = rgb.length - 1;
  return (t: number): RGB => {
    const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) * last : 0;
    const i = Math.min(last - 1, Math.floor(x));
    const f = x - i;
    const a = rgb[i];
    const b = rgb[i + 1];
    return [
      Math.round(a[0] + (b[0] - a[0]) * f),
      Math.round(a[1] + (b[1] - a[1]) * f),
      Math.round(a[2] + (b[2] - a[2]) * f),
    ];
  };
}

/** Perceptually ordered dark-violet → teal → yellow map (viridis-like). */
export const viridis: ColorMap = stopsColorMap([
  "#440154",
  "#472d7b",
  "#3b528b",
  "#2c728e",
  "#21918c",
  "#28ae80",
  "#5ec962",
  "#addc30",
  "#fde725",
]);

/** Blue → magenta → yellow map (plasma-like), used for position in prompt. */
export const plasma: ColorMap = stopsColorMap([
  "#0d0887",
  "#6a00a8",
  "#b12a90",
  "#e16462",
  "#fca636",
  "#f0f921",
]);

/** Sample a colour map into a 256-entry RGBA lookup table. */
export function colorLut(map: ColorMap, size = 256): Uint8Array {
  const lut = new Uint8Array(size * 4);
  for (let i = 0; i < size; i++) {
    const [r, g, b] = map(i / (size - 1));
    lut[i * 4] = r;
    lut[i * 4 + 1] = g;
    lut[i * 4 + 2] = b;
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

/** Twelve distinguishable colours readable on light and dark backgrounds. */
export const CATEGORICAL: readonly string[] = [
  "#3b7dd8",
  "#e8743b",
  "#19a979",
  "#ed4a7b",
  "#945ecf",
  "#13a4b4",
  "#d6a11b",
  "#6c8893",
  "#ee6868",
  "#2f6497",
  "#9fbf2f",
  "#c7558f",
];

const CATEGORICAL_RGB: RGB[] = CATEGORICAL.map(hexToRgb);

/** Colour of category `i` (cycles through the palette). */
export function categoricalColor(i: number): RGB {
  const n = CATEGORICAL_RGB.length;
  const k = ((Math.trunc(i) % n) + n) % n;
  return CATEGORICAL_RGB[k];
}

/** Hex string of category `i`. */
export function categoricalHex(i: number): string {
  const n = CATEGORICAL.length;
  return CATEGORICAL[((Math.trunc(i) % n) + n) % n];
}

/** FNV-1a hash of a byte range (stable colour for a token's text). */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A colour for a hash: hue spread by the golden angle, moderate saturation and lightness. */
export function hashColor(hash: number): RGB {
  const hue = ((hash % 3600) / 10 + (hash >>> 12) * 137.508) % 360;
  const light = 0.5 + ((hash >>> 20) % 3) * 0.07;
  return hslToRgb(hue, 0.62, light);
}

/** HSL (h in degrees, s and l in 0..1) to RGB. */
export function hslToRgb(h: number, s: number, l: number): RGB {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const hp = (((h % 360) + 360) % 360) / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  let r = 0;
  let g = 0;
  let b = 0;
  if (hp < 1) [r, g, b] = [c, x, 0];
  else if (hp < 2) [r, g, b] = [x, c, 0];
  else if (hp < 3) [r, g, b] = [0, c, x];
  else if (hp < 4) [r, g, b] = [0, x, c];
  else if (hp < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  const m = l - c / 2;
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** "#rrggbb" of an RGB colour. */
export function rgbToHex([r, g, b]: RGB): string {
  const h = (v: number): string => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, "0");
  return `#${h(r)}${h(g)}${h(b)}`;
}

/** Normalise `value` into [0, 1] against [lo, hi]; NaN stays NaN. */
export function normalise(value: number, lo: number, hi: number): number {
  if (!Number.isFinite(value)) return NaN;
  if (!(hi > lo)) return 0.5;
  return Math.min(1, Math.max(0, (value - lo) / (hi - lo)));
}
