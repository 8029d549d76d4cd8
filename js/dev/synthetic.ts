// Deterministic synthetic data with the shape of a real analysis (tokens grouped by prompt, a
// tokens x layers local-ID matrix, per-layer 2-D projections, curves and metrics), for tests, the
// harness page and the front-end benchmark.

export const XSS_TOKENS = ["<img src=x onerror=\"window.__tdwPwned=1\">", "<script>window.__tdwPwned=2</script>", "&amp;<b>bold</b>"];

const WORDS = [
  " the", " model", " layer", " token", " of", " and", " to", " a", " in", " is", " dimension", " space",
  " manifold", " data", " each", " point", ",", ".", " we", " that", " with", " for", "\n", " attention",
  " residual", " stream", " intrinsic", " ID", " estimate", " neighbours", " é", " 漢字", " 🙂",
];

/** Small seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  const u = Math.max(1e-12, rand());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function dv(array: Float32Array | Int32Array | Uint8Array): DataView {
  return new DataView(array.buffer, array.byteOffset, array.byteLength);
}

export interface SyntheticOptions {
  nTokens: number;
  nLayers?: number;
  tokensPerPrompt?: number;
  seed?: number;
  /** Put HTML-looking tokens in the first prompt (security tests). */
  xss?: boolean;
}

export interface Synthetic {
  state: Record<string, unknown>;
  /** The projection of a layer (what Python would send when the layer changes). */
  projection(layer: number, kind?: "pca" | "umap"): Float32Array;
}

/** Expected ID profile: rises to a peak at ~60% depth, then contracts. */
function profile(layer: number, nLayers: number): number {
  const x = layer / Math.max(1, nLayers - 1);
  return 3 + 9 * Math.exp(-Math.pow((x - 0.6) / 0.25, 2)) + 2 * x;
}

export function makeSynthetic(options: SyntheticOptions): Synthetic {
  const n = options.nTokens;
  const nLayers = options.nLayers ?? 13;
  const perPrompt = options.tokensPerPrompt ?? 64;
  const rand = rng(options.seed ?? 1);
  const enc = new TextEncoder();
  const texts: string[] = [];
  const prompt = new Int32Array(n);
  const position = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prompt[i] = Math.floor(i / perPrompt);
    position[i] = i % perPrompt;
    if (options.xss && i > 0 && i <= XSS_TOKENS.length) texts.push(XSS_TOKENS[i - 1]);
    else texts.push(WORDS[Math.floor(rand() * WORDS.length)]);
  }
  const encoded = texts.map((t) => enc.encode(t));
  const total = encoded.reduce((s, b) => s + b.length, 0);
  const bytes = new Uint8Array(total);
  const offsets = new Int32Array(n + 1);
  let o = 0;
  encoded.forEach((b, i) => {
    offsets[i] = o;
    bytes.set(b, o);
    o += b.length;
  });
  offsets[n] = o;

  const nPrompts = prompt[n - 1] + 1;
  // Cluster centre per prompt and a per-token jitter, reused by every layer.
  const centres = new Float32Array(nPrompts * 2);
  for (let p = 0; p < nPrompts * 2; p++) centres[p] = gaussian(rand) * 4;
  const jitter = new Float32Array(n * 2);
  for (let i = 0; i < n * 2; i++) jitter[i] = gaussian(rand);

  const localId = new Float32Array(n * nLayers);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < nLayers; l++) {
      const v = profile(l, nLayers) * (0.8 + 0.4 * rand()) + (position[i] === 0 ? -2 : 0);
      localId[i * nLayers + l] = i % 97 === 13 && l === 0 ? NaN : v;
    }
  }

  const projection = (layer: number, kind: "pca" | "umap" = "pca"): Float32Array => {
    const xy = new Float32Array(n * 2);
    const mix = layer / Math.max(1, nLayers - 1);
    const spread = kind === "umap" ? 0.35 : 1.2 - 0.6 * mix;
    const angle = mix * 1.5;
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    for (let i = 0; i < n; i++) {
      const p = prompt[i];
      const cx = centres[2 * p] * (kind === "umap" ? 2.5 : 1);
      const cy = centres[2 * p + 1] * (kind === "umap" ? 2.5 : 1);
      const x = cx + jitter[2 * i] * spread + position[i] * 0.01 * mix;
      const y = cy + jitter[2 * i + 1] * spread;
      xy[2 * i] = x * c - y * s;
      xy[2 * i + 1] = x * s + y * c;
    }
    return xy;
  };

  const layers = Array.from({ length: nLayers }, (_, l) => l);
  const curve = (label: string, estimator: string, scale: number, color: string | null) => {
    const dimension = layers.map((l) => Number((profile(l, nLayers) * scale).toFixed(3)));
    const peak = layers[dimension.indexOf(Math.max(...dimension))];
    return {
      label,
      estimator,
      model: "synthetic",
      color,
      layers,
      dimension,
      lower: dimension.map((d) => Number((d * 0.92).toFixed(3))),
      upper: dimension.map((d) => Number((d * 1.08).toFixed(3))),
      peak_layer: peak,
    };
  };
  const curves = [curve("TwoNN", "twonn", 0.6, null), curve("GRIDE", "gride", 1, null)];

  const state: Record<string, unknown> = {
    _view: "explorer",
    theme: "light",
    layer: Math.floor(nLayers / 2),
    n_layers: nLayers,
    selected_tokens: new DataView(new ArrayBuffer(0)),
    hovered_token: -1,
    n_tokens: n,
    token_text: dv(bytes),
    token_offsets: dv(offsets),
    token_prompt: dv(prompt),
    token_position: dv(position),
    curves,
    curve_ylabel: "intrinsic dimension",
    projection: dv(projection(Math.floor(nLayers / 2))),
    projection_kind: "pca",
    projection_layer: Math.floor(nLayers / 2),
    color_by: "local_id",
    local_id: dv(localId),
    local_id_range: [2, 16],
    metrics: curves.map((c) => ({
      model: "synthetic",
      estimator: c.label,
      peak_dimension: Math.max(...c.dimension),
      peak_layer: c.peak_layer,
      final_dimension: c.dimension[c.dimension.length - 1],
      contraction: c.dimension[c.dimension.length - 1] / Math.max(...c.dimension),
    })),
    metrics_columns: [
      { key: "model", label: "Model" },
      { key: "estimator", label: "Estimator" },
      { key: "peak_dimension", label: "Working-space ID", format: ".2f" },
      { key: "peak_layer", label: "Peak layer", format: "d" },
      { key: "final_dimension", label: "Final ID", format: ".2f" },
      { key: "contraction", label: "Contraction", format: ".0%" },
    ],
    model_ref: "smollm2-135m",
    model_choices: ["smollm2-135m", "minilm-l6", "gemma3-270m"],
    prompt_set: "technical-prose",
    prompt_choices: ["technical-prose", "wikitext-sample", "code"],
    shuffled: false,
    estimator: "twonn",
    estimator_choices: ["twonn", "gride", "mle", "corrint", "pca"],
    k: 20,
    scale: 8,
    cloud: "all tokens",
    cloud_choices: ["all tokens", "drop first token", "last token", "per prompt"],
    status: "done",
    progress: 1,
    tokens_per_second: 0,
    eta_seconds: -1,
    error: "",
    busy: false,
  };
  return { state, projection };
}

/** Wrap a typed array as the DataView a bytes trait arrives as. */
export function asDataView(array: Float32Array | Int32Array | Uint8Array): DataView {
  return dv(array);
}
