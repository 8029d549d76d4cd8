// Draws the scatter's points: raw WebGL (WebGL2, else WebGL1; GLSL ES 1.00 runs on both) with a
// 2-D canvas fallback for hosts without WebGL. Positions are interpolated on the GPU between the
// previous and the new projection, each normalised by its own transform, so a layer change or a
// PCA -> UMAP swap animates without re-uploading per frame.

/** Affine map data -> clip space: [sx, sy, tx, ty]. */
export type Transform2D = [number, number, number, number];

export interface DrawState {
  /** Interpolation 0 (from) .. 1 (to). */
  t: number;
  from: Transform2D;
  to: Transform2D;
  /** Pan / zoom applied after the data transform, in clip space: [zoom, zoom, panX, panY]. */
  view: Transform2D;
  /** Point diameter in CSS pixels. */
  size: number;
  /** Opacity of points. */
  alpha: number;
  /** Opacity factor of unselected points while a selection exists. */
  dim: number;
  /** Background colour. */
  clear: [number, number, number];
}

export interface PointRenderer {
  readonly kind: "webgl2" | "webgl" | "canvas2d" | "none";
  /** The canvas drawn on (may replace the one passed to createPointRenderer). */
  readonly canvas: HTMLCanvasElement;
  resize(width: number, height: number, dpr: number): void;
  /** Upload positions; `from` null means no animation (from = to). */
  setPositions(from: Float32Array | null, to: Float32Array, n: number): void;
  setColors(rgba: Uint8Array): void;
  /** 1 = selected; null = no selection. */
  setSelection(mask: Uint8Array | null): void;
  draw(state: DrawState): void;
  dispose(): void;
}

const VERTEX = `
precision mediump float;
attribute vec2 a_from;
attribute vec2 a_to;
attribute vec4 a_color;
attribute float a_sel;
uniform float u_t;
uniform vec4 u_from;
uniform vec4 u_to;
uniform vec4 u_view;
uniform float u_size;
uniform float u_alpha;
uniform float u_dim;
uniform float u_pass;
uniform float u_hasSel;
varying vec4 v_color;
void main() {
  vec2 p0 = a_from * u_from.xy + u_from.zw;
  vec2 p1 = a_to * u_to.xy + u_to.zw;
  vec2 p = mix(p0, p1, u_t) * u_view.xy + u_view.zw;
  float selected = step(0.5, a_sel);
  // Pass 0 draws the unselected points (all of them without a selection); pass 1 draws the
  // selected ones on top. Points of the other pass are moved outside the clip volume.
  float visible = u_pass < 0.5 ? (u_hasSel > 0.5 ? 1.0 - selected : 1.0) : selected;
  gl_Position = visible > 0.5 ? vec4(p, 0.0, 1.0) : vec4(4.0, 4.0, 4.0, 1.0);
  gl_PointSize = u_pass > 0.5 ? u_size * 1.4 : u_size;
  float a = u_alpha * ((u_hasSel > 0.5 && u_pass < 0.5) ? u_dim : 1.0);
  v_color = vec4(a_color.rgb, a_color.a * a);
}
`;

const FRAGMENT = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 c = gl_PointCoord * 2.0 - 1.0;
  if (dot(c, c) > 1.0) discard;
  gl_FragColor = v_color;
}
`;

/** Replace non-finite coordinates by a far-away value (drawn outside the view, never NaN). */
export function sanitizePositions(xy: Float32Array, n: number): Float32Array {
  const len = Math.min(xy.length, n * 2);
  let clean = true;
  for (let i = 0; i < len; i++) {
    if (!Number.isFinite(xy[i])) {
      clean = false;
      break;
    }
  }
  if (clean && xy.length === n * 2) return xy;
  const out = new Float32Array(n * 2);
  for (let i = 0; i < len; i++) out[i] = Number.isFinite(xy[i]) ? xy[i] : 1e9;
  for (let i = len; i < n * 2; i++) out[i] = 1e9;
  return out;
}

type GL = WebGLRenderingContext | WebGL2RenderingContext;

class WebGLPoints implements PointRenderer {
  readonly kind: "webgl2" | "webgl";
  private program: WebGLProgram | null = null;
  private buffers: Record<"from" | "to" | "color" | "sel", WebGLBuffer | null> = {
    from: null,
    to: null,
    color: null,
    sel: null,
  };
  private attribs: Record<string, number> = {};
  private uniforms: Record<string, WebGLUniformLocation | null> = {};
  private n = 0;
  private hasSel = false;
  private lost = false;
  // Kept for re-upload after a context loss.
  private data: { from: Float32Array; to: Float32Array; color: Uint8Array; sel: Uint8Array } = {
    from: new Float32Array(0) as Float32Array,
    to: new Float32Array(0) as Float32Array,
    color: new Uint8Array(0) as Uint8Array,
    sel: new Uint8Array(0) as Uint8Array,
  };

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly gl: GL,
    kind: "webgl2" | "webgl",
  ) {
    this.kind = kind;
    canvas.addEventListener("webglcontextlost", this.onLost, false);
    canvas.addEventListener("webglcontextrestored", this.onRestored, false);
    this.init();
  }

  private onLost = (event: Event): void => {
    event.preventDefault();
    this.lost = true;
  };

  private onRestored = (): void => {
    this.lost = false;
    this.init();
    this.upload();
  };

  private init(): void {
    const gl = this.gl;
    const compile = (type: number, source: string): WebGLShader => {
      const shader = gl.createShader(type);
      if (!shader) throw new Error("WebGL: cannot create shader");
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
        throw new Error(`WebGL shader: ${gl.getShaderInfoLog(shader) ?? "compile error"}`);
      }
      return shader;
    };
    const program = gl.createProgram();
    if (!program) throw new Error("WebGL: cannot create program");
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`WebGL link: ${gl.getProgramInfoLog(program) ?? "link error"}`);
    }
    this.program = program;
    for (const name of ["a_from", "a_to", "a_color", "a_sel"]) this.attribs[name] = gl.getAttribLocation(program, name);
    for (const name of ["u_t", "u_from", "u_to", "u_view", "u_size", "u_alpha", "u_dim", "u_pass", "u_hasSel"]) {
      this.uniforms[name] = gl.getUniformLocation(program, name);
    }
    this.buffers = { from: gl.createBuffer(), to: gl.createBuffer(), color: gl.createBuffer(), sel: gl.createBuffer() };
  }

  private upload(): void {
    const gl = this.gl;
    const put = (buffer: WebGLBuffer | null, data: ArrayBufferView): void => {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
    };
    put(this.buffers.from, this.data.from);
    put(this.buffers.to, this.data.to);
    put(this.buffers.color, this.data.color);
    put(this.buffers.sel, this.data.sel);
  }

  resize(width: number, height: number, dpr: number): void {
    const w = Math.max(1, Math.round(width * dpr));
    const h = Math.max(1, Math.round(height * dpr));
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== h) this.canvas.height = h;
  }

  setPositions(from: Float32Array | null, to: Float32Array, n: number): void {
    const gl = this.gl;
    this.n = n;
    const toClean = sanitizePositions(to, n);
    const fromClean = from === null ? toClean : sanitizePositions(from, n);
    this.data.to = toClean;
    this.data.from = fromClean;
    if (this.data.color.length !== n * 4) this.data.color = new Uint8Array(n * 4).fill(128);
    if (this.data.sel.length !== n) this.data.sel = new Uint8Array(n);
    if (this.lost) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.to);
    gl.bufferData(gl.ARRAY_BUFFER, toClean, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.from);
    gl.bufferData(gl.ARRAY_BUFFER, fromClean, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.color);
    gl.bufferData(gl.ARRAY_BUFFER, this.data.color, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.sel);
    gl.bufferData(gl.ARRAY_BUFFER, this.data.sel, gl.DYNAMIC_DRAW);
  }

  setColors(rgba: Uint8Array): void {
    this.data.color = rgba;
    if (this.lost) return;
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.color);
    gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.DYNAMIC_DRAW);
  }

  setSelection(mask: Uint8Array | null): void {
    this.hasSel = mask !== null;
    const data = mask ?? new Uint8Array(this.n);
    this.data.sel = data;
    if (this.lost) return;
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.sel);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
  }

  draw(state: DrawState): void {
    if (this.lost || !this.program) return;
    const gl = this.gl;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(state.clear[0] / 255, state.clear[1] / 255, state.clear[2] / 255, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.n === 0) return;
    gl.useProgram(this.program);
    gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    const bind = (name: string, buffer: WebGLBuffer | null, size: number, type: number, normalized: boolean): void => {
      const loc = this.attribs[name];
      if (loc < 0) return;
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
    };
    bind("a_from", this.buffers.from, 2, gl.FLOAT, false);
    bind("a_to", this.buffers.to, 2, gl.FLOAT, false);
    bind("a_color", this.buffers.color, 4, gl.UNSIGNED_BYTE, true);
    bind("a_sel", this.buffers.sel, 1, gl.UNSIGNED_BYTE, true);
    const u = this.uniforms;
    const dpr = this.canvas.width / Math.max(1, this.canvas.clientWidth || this.canvas.width);
    gl.uniform1f(u.u_t, state.t);
    gl.uniform4f(u.u_from, ...state.from);
    gl.uniform4f(u.u_to, ...state.to);
    gl.uniform4f(u.u_view, ...state.view);
    gl.uniform1f(u.u_size, Math.max(1, state.size * dpr));
    gl.uniform1f(u.u_alpha, state.alpha);
    gl.uniform1f(u.u_dim, state.dim);
    gl.uniform1f(u.u_hasSel, this.hasSel ? 1 : 0);
    gl.uniform1f(u.u_pass, 0);
    gl.drawArrays(gl.POINTS, 0, this.n);
    if (this.hasSel) {
      gl.uniform1f(u.u_pass, 1);
      gl.drawArrays(gl.POINTS, 0, this.n);
    }
  }

  dispose(): void {
    this.canvas.removeEventListener("webglcontextlost", this.onLost, false);
    this.canvas.removeEventListener("webglcontextrestored", this.onRestored, false);
    const gl = this.gl;
    if (!this.lost) {
      for (const b of Object.values(this.buffers)) if (b) gl.deleteBuffer(b);
      if (this.program) gl.deleteProgram(this.program);
    }
    // Free the context now: browsers cap the number of live WebGL contexts per page.
    const ext = gl.getExtension("WEBGL_lose_context");
    ext?.loseContext();
  }
}

/** CPU fallback: splats points into an ImageData (fast enough for ~100k points per frame). */
class CanvasPoints implements PointRenderer {
  readonly kind = "canvas2d" as const;
  private image: ImageData | null = null;
  private from: Float32Array = new Float32Array(0);
  private to: Float32Array = new Float32Array(0);
  private color: Uint8Array = new Uint8Array(0);
  private sel: Uint8Array | null = null;
  private n = 0;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly ctx: CanvasRenderingContext2D,
  ) {}

  resize(width: number, height: number, dpr: number): void {
    const w = Math.max(1, Math.round(width * dpr));
    const h = Math.max(1, Math.round(height * dpr));
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== h) this.canvas.height = h;
    this.image = null;
  }

  setPositions(from: Float32Array | null, to: Float32Array, n: number): void {
    this.n = n;
    this.to = sanitizePositions(to, n);
    this.from = from === null ? this.to : sanitizePositions(from, n);
    if (this.color.length !== n * 4) this.color = new Uint8Array(n * 4).fill(128);
  }

  setColors(rgba: Uint8Array): void {
    this.color = rgba;
  }

  setSelection(mask: Uint8Array | null): void {
    this.sel = mask;
  }

  draw(state: DrawState): void {
    const w = this.canvas.width;
    const h = this.canvas.height;
    if (this.image === null || this.image.width !== w || this.image.height !== h) {
      this.image = this.ctx.createImageData(w, h);
    }
    const px = this.image.data;
    const [cr, cg, cb] = state.clear;
    for (let i = 0; i < px.length; i += 4) {
      px[i] = cr;
      px[i + 1] = cg;
      px[i + 2] = cb;
      px[i + 3] = 255;
    }
    const dpr = w / Math.max(1, this.canvas.clientWidth || w);
    const { t, from, to, view } = state;
    const splat = (pass: number): void => {
      const size = Math.max(1, Math.round(state.size * dpr * (pass === 1 ? 1.4 : 1)));
      const half = size / 2;
      for (let i = 0; i < this.n; i++) {
        const selected = this.sel !== null && this.sel[i] > 0;
        if (pass === 0 && selected) continue;
        if (pass === 1 && !selected) continue;
        const x0 = this.from[2 * i] * from[0] + from[2];
        const y0 = this.from[2 * i + 1] * from[1] + from[3];
        const x1 = this.to[2 * i] * to[0] + to[2];
        const y1 = this.to[2 * i + 1] * to[1] + to[3];
        const cx = ((x0 + (x1 - x0) * t) * view[0] + view[2] + 1) * 0.5 * w;
        const cy = (1 - ((y0 + (y1 - y0) * t) * view[1] + view[3])) * 0.5 * h;
        const a = state.alpha * (this.color[4 * i + 3] / 255) * (this.sel !== null && pass === 0 ? state.dim : 1);
        const r = this.color[4 * i];
        const g = this.color[4 * i + 1];
        const b = this.color[4 * i + 2];
        const xs = Math.max(0, Math.floor(cx - half));
        const xe = Math.min(w, Math.floor(cx - half) + size);
        const ys = Math.max(0, Math.floor(cy - half));
        const ye = Math.min(h, Math.floor(cy - half) + size);
        for (let y = ys; y < ye; y++) {
          let o = (y * w + xs) * 4;
          for (let x = xs; x < xe; x++, o += 4) {
            px[o] += (r - px[o]) * a;
            px[o + 1] += (g - px[o + 1]) * a;
            px[o + 2] += (b - px[o + 2]) * a;
          }
        }
      }
    };
    splat(0);
    if (this.sel !== null) splat(1);
    this.ctx.putImageData(this.image, 0, 0);
  }

  dispose(): void {
    this.image = null;
  }
}

class NullPoints implements PointRenderer {
  readonly kind = "none" as const;
  constructor(readonly canvas: HTMLCanvasElement) {}
  resize(): void {}
  setPositions(): void {}
  setColors(): void {}
  setSelection(): void {}
  draw(): void {}
  dispose(): void {}
}

/**
 * Which renderer to use: "auto" takes hardware WebGL and falls back to the 2-D canvas when WebGL
 * is missing or runs in software (SwiftShader, llvmpipe: measured 3-6x slower than the 2-D
 * canvas splatter at 100,000 points); "webgl" takes WebGL even in software; "canvas2d" never
 * uses WebGL.
 */
export type RendererPreference = "auto" | "webgl" | "canvas2d";

let preference: RendererPreference = "auto";

/** Set the renderer preference for scatters created from now on (harness, tests, benchmarks). */
export function setRendererPreference(value: RendererPreference): void {
  preference = value;
}

/** True when the WebGL implementation rasterises on the CPU. */
export function isSoftwareGL(gl: WebGLRenderingContext | WebGL2RenderingContext): boolean {
  try {
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? "");
    return /swiftshader|llvmpipe|softpipe|software|basic render driver/i.test(name);
  } catch {
    return false;
  }
}

function canvas2d(canvas: HTMLCanvasElement): PointRenderer {
  try {
    const ctx = canvas.getContext("2d");
    if (ctx) return new CanvasPoints(canvas, ctx);
  } catch {
    // No canvas at all (test DOMs).
  }
  return new NullPoints(canvas);
}

/**
 * Pick the renderer for a canvas: hardware WebGL2, WebGL1, else the 2-D canvas, else nothing.
 * A canvas that got a WebGL context cannot give a 2-D one, so when WebGL turns out to be
 * software the canvas is replaced by a fresh one in the DOM (the renderer's `canvas`).
 */
export function createPointRenderer(canvas: HTMLCanvasElement, prefer: RendererPreference = preference): PointRenderer {
  const options: WebGLContextAttributes = {
    alpha: false,
    antialias: false,
    depth: false,
    stencil: false,
    premultipliedAlpha: true,
    preserveDrawingBuffer: false,
  };
  if (prefer === "canvas2d") return canvas2d(canvas);
  for (const kind of ["webgl2", "webgl"] as const) {
    let gl: GL | null = null;
    try {
      gl = canvas.getContext(kind, options) as GL | null;
    } catch {
      gl = null;
    }
    if (!gl) continue;
    if (prefer === "auto" && isSoftwareGL(gl)) {
      gl.getExtension("WEBGL_lose_context")?.loseContext();
      const fresh = canvas.ownerDocument.createElement("canvas");
      fresh.className = canvas.className;
      canvas.replaceWith(fresh);
      return canvas2d(fresh);
    }
    try {
      return new WebGLPoints(canvas, gl, kind);
    } catch {
      // Shader compilation failed: the canvas is taken by WebGL, use a fresh one.
      const fresh = canvas.ownerDocument.createElement("canvas");
      fresh.className = canvas.className;
      canvas.replaceWith(fresh);
      return canvas2d(fresh);
    }
  }
  return canvas2d(canvas);
}
