// Standalone page that renders the views against a FakeModel with synthetic data: for looking at
// the views without Jupyter, for screenshots and for the front-end benchmark. It also plays the
// Python side: a layer change is answered with that layer's projection, Run with a fake progress.
//
// URL parameters: view (explorer|curve|scatter|heatmap|metrics|controls), n (tokens), layers,
// theme (light|dark|auto), xss (1: HTML-looking tokens in the first prompt), delay (ms before the
// fake kernel answers a layer change), renderer (auto | webgl | canvas2d |
// nowebgl: hide WebGL from the page to test the fallback).

import { mount, type Rendered } from "../src/index";
import { asDataView, makeSynthetic } from "./synthetic";
import { FakeModel } from "./fake_model";
import { setRendererPreference } from "../src/points_renderer";

interface HarnessHandle {
  model: FakeModel;
  rendered: Rendered;
  /** ms: synchronous render call, and until the second animation frame after it (painted). */
  timings: { dataMs: number; renderMs: number; firstFrameMs: number };
  ready: Promise<void>;
  projection: (layer: number, kind?: "pca" | "umap") => Float32Array;
}

declare global {
  interface Window {
    tdw?: HarnessHandle;
  }
}

const params = new URLSearchParams(window.location.search);
const view = params.get("view") ?? "explorer";
const n = Number(params.get("n") ?? 5000);
const nLayers = Number(params.get("layers") ?? 13);
const theme = params.get("theme") ?? "light";
const delay = Number(params.get("delay") ?? 30);

// renderer=webgl: WebGL even when it runs in software (SwiftShader in headless Chromium);
// renderer=nowebgl: pretend WebGL is missing, to exercise the 2-D canvas fallback.
if (params.get("renderer") === "webgl") setRendererPreference("webgl");
if (params.get("renderer") === "canvas2d") setRendererPreference("canvas2d");
if (params.get("renderer") === "nowebgl") {
  const original = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement, kind: string, ...rest: unknown[]) {
    if (kind === "webgl" || kind === "webgl2" || kind === "experimental-webgl") return null;
    return (original as (...a: unknown[]) => unknown).call(this, kind, ...rest);
  } as typeof original;
}

const t0 = performance.now();
const synthetic = makeSynthetic({ nTokens: n, nLayers, xss: params.get("xss") === "1", seed: 7 });
const model = new FakeModel({ ...synthetic.state, _view: view, theme });
const dataMs = performance.now() - t0;

// The fake kernel: answer layer changes with a new projection, Run with progress.
let lastLayer = model.get("layer");
model.onSave = (m) => {
  const layer = m.get("layer") as number;
  if (layer !== lastLayer) {
    lastLayer = layer;
    setTimeout(() => {
      m.setMany({
        projection: asDataView(synthetic.projection(layer, (m.get("projection_kind") as "pca" | "umap") || "pca")),
        projection_layer: layer,
      });
    }, delay);
  }
};
model.onSend = (content, m) => {
  const msg = content as { type?: string };
  if (msg.type === "run") {
    let p = 0;
    m.setMany({ busy: true, status: "extracting", progress: 0, error: "" });
    const timer = setInterval(() => {
      p += 0.1;
      m.setMany({ progress: Math.min(1, p), tokens_per_second: 812, eta_seconds: (1 - p) * 10 });
      if (p >= 1) {
        clearInterval(timer);
        m.setMany({ busy: false, status: "done", eta_seconds: -1 });
      }
    }, 200);
  } else if (msg.type === "cancel") {
    m.setMany({ busy: false, status: "cancelled" });
  }
};

const app = document.getElementById("app")!;
const r0 = performance.now();
const rendered = mount(model, app);
const renderMs = performance.now() - r0;
const ready = new Promise<void>((resolve) => {
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      handle.timings.firstFrameMs = performance.now() - r0;
      document.body.dataset.ready = "1";
      resolve();
    }),
  );
});
const handle: HarnessHandle = {
  model,
  rendered,
  timings: { dataMs, renderMs, firstFrameMs: -1 },
  ready,
  projection: synthetic.projection,
};
window.tdw = handle;
