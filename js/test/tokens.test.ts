import { describe, expect, it } from "vitest";
import { TokenTable, buildContext, visibleText } from "../src/tokens";

function table(texts: string[], prompts: number[]): TokenTable {
  const enc = new TextEncoder();
  const parts = texts.map((t) => enc.encode(t));
  const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  const offsets = new Int32Array(texts.length + 1);
  let o = 0;
  parts.forEach((p, i) => {
    offsets[i] = o;
    bytes.set(p, o);
    o += p.length;
  });
  offsets[texts.length] = o;
  const position = new Int32Array(texts.length);
  prompts.forEach((p, i) => (position[i] = i > 0 && prompts[i - 1] === p ? position[i - 1] + 1 : 0));
  return new TokenTable({
    n_tokens: texts.length,
    token_text: new DataView(bytes.buffer),
    token_offsets: new DataView(offsets.buffer),
    token_prompt: new DataView(Int32Array.from(prompts).buffer),
    token_position: new DataView(position.buffer),
  });
}

describe("TokenTable", () => {
  const t = table(["Hello", " wor", "ld", "\n", "漢字", " 🙂", "A", " B"], [0, 0, 0, 0, 0, 0, 1, 1]);

  it("decodes each token's UTF-8 text", () => {
    expect(t.n).toBe(8);
    expect(t.text(4)).toBe("漢字");
    expect(t.text(5)).toBe(" 🙂");
    expect(t.text(99)).toBe("");
  });

  it("counts prompts and finds prompt boundaries", () => {
    expect(t.nPrompts).toBe(2);
    expect(Array.from(t.promptBoundaries())).toEqual([6]);
    expect(t.maxPosition).toBe(5);
  });

  it("never reads past the offsets when n_tokens is larger than the data", () => {
    const broken = new TokenTable({ n_tokens: 10, token_offsets: new DataView(new Int32Array([0, 1, 2]).buffer) });
    expect(broken.n).toBe(2);
  });
});

describe("buildContext", () => {
  const t = table(["a", "b", "c", "d", "e", "f", "g", "X", "Y"], [0, 0, 0, 0, 0, 0, 0, 1, 1]);

  it("takes tokens either side from the same prompt and flags the hovered one", () => {
    const ctx = buildContext(t, 3, 2)!;
    expect(ctx.pieces.map((p) => p.text).join("")).toBe("bcdef");
    expect(ctx.pieces.filter((p) => p.focus).map((p) => p.text)).toEqual(["d"]);
    expect(ctx.truncatedBefore).toBe(true);
    expect(ctx.truncatedAfter).toBe(true);
    expect(ctx.prompt).toBe(0);
    expect(ctx.position).toBe(3);
  });

  it("stops at prompt boundaries", () => {
    const end = buildContext(t, 6, 3)!;
    expect(end.pieces.map((p) => p.text).join("")).toBe("defg");
    expect(end.truncatedAfter).toBe(false);
    const next = buildContext(t, 7, 3)!;
    expect(next.pieces.map((p) => p.text).join("")).toBe("XY");
    expect(next.truncatedBefore).toBe(false);
  });

  it("returns null for an index out of range", () => {
    expect(buildContext(t, -1)).toBeNull();
    expect(buildContext(t, 9)).toBeNull();
  });

  it("makes whitespace visible", () => {
    expect(visibleText("a\nb\tc")).toBe("a↵b→c");
    expect(visibleText("")).toBe("∅");
    expect(visibleText(" x")).toBe(" x");
  });
});
