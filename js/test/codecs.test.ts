import { describe, expect, it } from "vitest";
import { asFloat32, asInt32, asUint8, decodeUtf8, encodeInt32, normaliseSelection } from "../src/codecs";

describe("asFloat32 / asInt32", () => {
  it("views an aligned DataView without copying", () => {
    const source = new Float32Array([1.5, -2, Number.NaN, 4]);
    const view = new DataView(source.buffer);
    const out = asFloat32(view);
    expect(out.buffer).toBe(source.buffer);
    expect(Array.from(out.subarray(0, 2))).toEqual([1.5, -2]);
    expect(Number.isNaN(out[2])).toBe(true);
    source[3] = 9;
    expect(out[3]).toBe(9);
  });

  it("views an aligned sub-range of a larger buffer", () => {
    const buffer = new ArrayBuffer(32);
    new Int32Array(buffer).set([0, 0, 7, -8, 9, 0, 0, 0]);
    const out = asInt32(new DataView(buffer, 8, 12));
    expect(out.buffer).toBe(buffer);
    expect(Array.from(out)).toEqual([7, -8, 9]);
  });

  it("copies a misaligned view and reads little-endian values", () => {
    const buffer = new ArrayBuffer(13);
    const dv = new DataView(buffer);
    dv.setInt32(1, 123456789, true);
    dv.setInt32(5, -42, true);
    dv.setInt32(9, 2 ** 31 - 1, true);
    const out = asInt32(new DataView(buffer, 1, 12));
    expect(out.buffer).not.toBe(buffer);
    expect(Array.from(out)).toEqual([123456789, -42, 2 ** 31 - 1]);
  });

  it("accepts ArrayBuffer, Uint8Array, typed arrays and number lists", () => {
    const f = new Float32Array([0.25, 8]);
    expect(Array.from(asFloat32(f.buffer))).toEqual([0.25, 8]);
    expect(Array.from(asFloat32(new Uint8Array(f.buffer)))).toEqual([0.25, 8]);
    expect(asFloat32(f)).toBe(f);
    expect(Array.from(asInt32([1, 2, 3]))).toEqual([1, 2, 3]);
  });

  it("returns an empty array for missing values and ignores a trailing partial element", () => {
    expect(asFloat32(null).length).toBe(0);
    expect(asInt32(undefined).length).toBe(0);
    expect(asInt32(new ArrayBuffer(6)).length).toBe(1);
  });
});

describe("encodeInt32", () => {
  it("round-trips through a DataView over the Int32Array's buffer", () => {
    const dv = encodeInt32([5, 0, 99999, 3]);
    expect(dv).toBeInstanceOf(DataView);
    expect(dv.byteLength).toBe(16);
    expect(dv.getInt32(8, true)).toBe(99999);
    expect(Array.from(asInt32(dv))).toEqual([5, 0, 99999, 3]);
  });

  it("encodes an empty selection as zero bytes", () => {
    expect(encodeInt32([]).byteLength).toBe(0);
  });
});

describe("asUint8 / decodeUtf8", () => {
  it("decodes a byte range of UTF-8 without copying the buffer", () => {
    const bytes = new TextEncoder().encode("a漢🙂b");
    const view = asUint8(new DataView(bytes.buffer));
    expect(view.buffer).toBe(bytes.buffer);
    expect(decodeUtf8(view, 1, 4)).toBe("漢");
    expect(decodeUtf8(view, 4, 8)).toBe("🙂");
    expect(decodeUtf8(view, 8, 100)).toBe("b");
  });
});

describe("normaliseSelection", () => {
  it("sorts, removes duplicates and drops indices out of range", () => {
    expect(Array.from(normaliseSelection([5, 1, 5, -1, 10, 3, 1.5], 10))).toEqual([1, 3, 5]);
  });
});
