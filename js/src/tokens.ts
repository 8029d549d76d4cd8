// Token metadata decoded from the binary traits, and the "token in context" builder used by the
// tooltips. Token text is untrusted: callers put these strings into the DOM with textContent only.

import { asInt32, asUint8, decodeUtf8, type BinaryLike } from "./codecs";
import { hashBytes } from "./scales";

/** The token traits as they arrive from the model. */
export interface TokenTraits {
  n_tokens?: unknown;
  token_text?: BinaryLike;
  token_offsets?: BinaryLike;
  token_prompt?: BinaryLike;
  token_position?: BinaryLike;
}

/** One piece of a context line. */
export interface ContextPiece {
  text: string;
  /** The hovered token itself. */
  focus: boolean;
}

/** The hovered token with a few tokens either side from the same prompt. */
export interface TokenContext {
  index: number;
  prompt: number;
  position: number;
  pieces: ContextPiece[];
  /** Tokens were cut off before / after the window. */
  truncatedBefore: boolean;
  truncatedAfter: boolean;
}

/**
 * Make whitespace visible in a token's text: newlines as ↵, tabs as →, and an empty token as ∅.
 * Leading and trailing spaces are kept (they carry meaning in BPE tokens).
 */
export function visibleText(text: string): string {
  if (text.length === 0) return "∅";
  return text.replace(/\r\n|\n|\r/g, "↵").replace(/\t/g, "→");
}

/** Decoded token table; text is decoded lazily and cached. */
export class TokenTable {
  readonly n: number;
  readonly bytes: Uint8Array;
  readonly offsets: Int32Array;
  readonly prompt: Int32Array;
  readonly position: Int32Array;
  /** Number of distinct prompts (max prompt index + 1). */
  readonly nPrompts: number;
  /** Largest position in prompt. */
  readonly maxPosition: number;
  private readonly cache: Array<string | undefined>;
  private hashes: Uint32Array | null = null;

  constructor(traits: TokenTraits) {
    const declared = typeof traits.n_tokens === "number" ? Math.max(0, Math.trunc(traits.n_tokens)) : -1;
    this.bytes = asUint8(traits.token_text);
    this.offsets = asInt32(traits.token_offsets);
    const prompt = asInt32(traits.token_prompt);
    const position = asInt32(traits.token_position);
    // Trust the smallest consistent count so that a partial update never reads out of bounds.
    let n = declared >= 0 ? declared : Math.max(0, this.offsets.length - 1);
    if (this.offsets.length > 0) n = Math.min(n, this.offsets.length - 1);
    this.n = Math.max(0, n);
    this.prompt = prompt.length >= this.n ? prompt : new Int32Array(this.n);
    this.position = position.length >= this.n ? position : Int32Array.from({ length: this.n }, (_, i) => i);
    let maxPrompt = -1;
    let maxPosition = 0;
    for (let i = 0; i < this.n; i++) {
      if (this.prompt[i] > maxPrompt) maxPrompt = this.prompt[i];
      if (this.position[i] > maxPosition) maxPosition = this.position[i];
    }
    this.nPrompts = maxPrompt + 1;
    this.maxPosition = maxPosition;
    this.cache = new Array(this.n);
  }

  /** The token's text ("" when offsets are missing). */
  text(i: number): string {
    if (i < 0 || i >= this.n) return "";
    const cached = this.cache[i];
    if (cached !== undefined) return cached;
    let text = "";
    if (this.offsets.length > i + 1) {
      text = decodeUtf8(this.bytes, this.offsets[i], this.offsets[i + 1]);
    }
    this.cache[i] = text;
    return text;
  }

  /** A stable 32-bit hash of each token's bytes (colour by token). */
  textHashes(): Uint32Array {
    if (this.hashes !== null) return this.hashes;
    const out = new Uint32Array(this.n);
    if (this.offsets.length > this.n) {
      for (let i = 0; i < this.n; i++) out[i] = hashBytes(this.bytes, this.offsets[i], this.offsets[i + 1]);
    }
    this.hashes = out;
    return out;
  }

  /** The hovered token with up to `radius` tokens either side from the same prompt. */
  context(index: number, radius = 6): TokenContext | null {
    return buildContext(this, index, radius);
  }

  /** Row indices where a new prompt starts (excluding row 0). */
  promptBoundaries(): Int32Array {
    const out: number[] = [];
    for (let i = 1; i < this.n; i++) if (this.prompt[i] !== this.prompt[i - 1]) out.push(i);
    return Int32Array.from(out);
  }
}

/** Something that can give token text, prompt and count (a TokenTable or a test double). */
export interface TokenSource {
  n: number;
  prompt: ArrayLike<number>;
  position: ArrayLike<number>;
  text(i: number): string;
}

/**
 * Build the context line of token `index`: up to `radius` tokens either side that belong to the
 * same prompt (rows are in reading order, so they are contiguous), the hovered one flagged.
 */
export function buildContext(tokens: TokenSource, index: number, radius = 6): TokenContext | null {
  if (!Number.isInteger(index) || index < 0 || index >= tokens.n) return null;
  const prompt = tokens.prompt[index];
  let start = index;
  while (start > 0 && index - start < radius && tokens.prompt[start - 1] === prompt) start--;
  let end = index;
  while (end < tokens.n - 1 && end - index < radius && tokens.prompt[end + 1] === prompt) end++;
  const pieces: ContextPiece[] = [];
  for (let i = start; i <= end; i++) pieces.push({ text: visibleText(tokens.text(i)), focus: i === index });
  return {
    index,
    prompt,
    position: tokens.position[index],
    pieces,
    truncatedBefore: start > 0 && tokens.prompt[start - 1] === prompt,
    truncatedAfter: end < tokens.n - 1 && tokens.prompt[end + 1] === prompt,
  };
}
