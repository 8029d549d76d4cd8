// Decoding of the binary traits (bytes in Python, DataView in the browser) into typed arrays.
// Views over the received buffer are returned without copying whenever the byte offset allows
// it; a copy is made only for misaligned views or on a big-endian machine.

/** What a binary trait can arrive as: anywidget gives DataView; tests and harnesses may pass others. */
export type BinaryLike = DataView | ArrayBuffer | ArrayBufferView | ArrayLike<number> | null | undefined;

/** True on little-endian machines (every browser platform in practice). */
export const LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface ByteRange {
  buffer: ArrayBufferLike;
  byteOffset: number;
  byteLength: number;
}

function byteRange(value: BinaryLike): ByteRange | null {
  if (value === null || value === undefined) return null;
  if (value instanceof ArrayBuffer) {
    return { buffer: value, byteOffset: 0, byteLength: value.byteLength };
  }
  if (ArrayBuffer.isView(value)) {
    return { buffer: value.buffer, byteOffset: value.byteOffset, byteLength: value.byteLength };
  }
  // SharedArrayBuffer and other buffer-likes from other realms (iframes, test environments).
  const maybe = value as { byteLength?: unknown; slice?: unknown };
  if (typeof maybe.byteLength === "number" && typeof maybe.slice === "function" && !("length" in maybe)) {
    return { buffer: value as unknown as ArrayBufferLike, byteOffset: 0, byteLength: maybe.byteLength };
  }
  return null;
}

type TypedCtor<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

function decode<T extends Float32Array | Int32Array>(
  value: BinaryLike,
  ctor: TypedCtor<T>,
  read: (view: DataView, byteOffset: number) => number,
): T {
  if (value instanceof ctor) return value as T;
  const range = byteRange(value);
  if (range === null) {
    // Plain number arrays (JSON) are accepted so hand-built models still work.
    if (value && typeof (value as ArrayLike<number>).length === "number") {
      const list = value as ArrayLike<number>;
      const out = new ctor(list.length);
      for (let i = 0; i < list.length; i++) out[i] = Number(list[i]);
      return out;
    }
    return new ctor(0);
  }
  const size = ctor.BYTES_PER_ELEMENT;
  // A trailing partial element is a sender bug; ignore it rather than throwing mid-render.
  const length = Math.floor(range.byteLength / size);
  if (LITTLE_ENDIAN && range.byteOffset % size === 0) {
    return new ctor(range.buffer, range.byteOffset, length);
  }
  const out = new ctor(length);
  if (LITTLE_ENDIAN) {
    // Misaligned: copy the bytes into an aligned buffer.
    new Uint8Array(out.buffer).set(new Uint8Array(range.buffer, range.byteOffset, length * size));
  } else {
    const view = new DataView(range.buffer, range.byteOffset, length * size);
    for (let i = 0; i < length; i++) out[i] = read(view, i * size);
  }
  return out;
}

/** Decode little-endian float32 values. */
export function asFloat32(value: BinaryLike): Float32Array {
  return decode(value, Float32Array, (view, offset) => view.getFloat32(offset, true));
}

/** Decode little-endian int32 values. */
export function asInt32(value: BinaryLike): Int32Array {
  return decode(value, Int32Array, (view, offset) => view.getInt32(offset, true));
}

/** The raw bytes (for UTF-8 text), as a view without copying. */
export function asUint8(value: BinaryLike): Uint8Array {
  if (value instanceof Uint8Array) return value;
  const range = byteRange(value);
  if (range === null) {
    if (value && typeof (value as ArrayLike<number>).length === "number") {
      return Uint8Array.from(value as ArrayLike<number>);
    }
    return new Uint8Array(0);
  }
  return new Uint8Array(range.buffer, range.byteOffset, range.byteLength);
}

/**
 * Encode indices as int32 little-endian bytes for a bytes trait: a DataView over the buffer of
 * an Int32Array (what ipywidgets serialises as a binary buffer).
 */
export function encodeInt32(values: ArrayLike<number>): DataView {
  const array = values instanceof Int32Array ? values : Int32Array.from(values);
  if (LITTLE_ENDIAN) return new DataView(array.buffer, array.byteOffset, array.byteLength);
  const view = new DataView(new ArrayBuffer(array.length * 4));
  for (let i = 0; i < array.length; i++) view.setInt32(i * 4, array[i], true);
  return view;
}

/** Decode a UTF-8 byte range without copying (invalid sequences become U+FFFD). */
const decoder: TextDecoder | null = typeof TextDecoder === "undefined" ? null : new TextDecoder("utf-8");

export function decodeUtf8(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const lo = Math.max(0, Math.min(start, bytes.length));
  const hi = Math.max(lo, Math.min(end, bytes.length));
  if (decoder !== null) return decoder.decode(bytes.subarray(lo, hi));
  let out = "";
  for (let i = lo; i < hi; i++) out += String.fromCharCode(bytes[i]);
  return out;
}

/**
 * A selection as sorted, unique indices inside [0, n). An input that already is one (what the
 * views and Python send) is returned as it is, without a copy; anything else is cleaned up.
 */
export function normaliseSelection(indices: ArrayLike<number>, n: number): Int32Array {
  let clean = indices instanceof Int32Array;
  for (let i = 0; clean && i < indices.length; i++) {
    const v = indices[i];
    if (v < 0 || v >= n || (i > 0 && v <= indices[i - 1])) clean = false;
  }
  if (clean) return indices as Int32Array;
  const kept: number[] = [];
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i];
    if (Number.isInteger(v) && v >= 0 && v < n) kept.push(v);
  }
  const sorted = Int32Array.from(kept).sort();
  let w = 0;
  for (let r = 0; r < sorted.length; r++) {
    if (r === 0 || sorted[r] !== sorted[r - 1]) sorted[w++] = sorted[r];
  }
  return sorted.slice(0, w);
}
