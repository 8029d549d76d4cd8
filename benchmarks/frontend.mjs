#!/usr/bin/env node
// Front-end benchmark: time to first render of the explorer, and frame times while hovering the
// scatter (and the heatmap), for 10,000 and 100,000 tokens, in headless Chromium.
//
// Usage (from the repository root, after `npm ci` in js/):
//   node benchmarks/frontend.mjs [--sizes 1000,10000,100000] [--seconds 3] [--layers 31]
//                                [--renderer auto,webgl,canvas2d] [--browser /usr/bin/chromium]
//
// It bundles the dev harness (js/dev, synthetic data and a fake model, no Jupyter), opens it from a
// local file with the system Chromium through playwright-core (never downloads a browser), and
// measures inside the page:
//   - render: the synchronous mount() call; first frame: until the second animation frame after
//     it (everything drawn once);
//   - hover: one pointermove per animation frame along a path over the points; the median and
//     95th percentile of requestAnimationFrame deltas, and of the hover handler itself (grid
//     picking + tooltip);
//   - layer animation: frame deltas while the points glide to a new layer's projection;
//   - idle: frame deltas with no input, the baseline the others are divided by.
// With --disable-gpu, WebGL runs on SwiftShader (CPU), so these are worst-case numbers.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const jsDir = path.resolve(here, "..", "js");
const require = createRequire(path.join(jsDir, "package.json"));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const sizes = arg("sizes", "1000,10000,100000").split(",").map(Number);
const seconds = Number(arg("seconds", "3"));
const browserPath = arg("browser", process.env.CHROMIUM ?? "/usr/bin/chromium");
const layers = Number(arg("layers", "31"));
// Scatter renderers to measure: auto (hardware WebGL, else the 2-D canvas; in headless Chromium
// WebGL is software, so auto picks the canvas), webgl (WebGL even through SwiftShader), canvas2d.
const renderers = arg("renderer", "auto,webgl").split(",");

if (!existsSync(browserPath)) {
  console.error(`No browser at ${browserPath}: install it (apt-get install -y chromium) or pass --browser PATH.`);
  process.exit(2);
}

execFileSync(process.execPath, ["build.mjs", "--harness"], { cwd: jsDir, stdio: "ignore" });
const { chromium } = require("playwright-core");

const quantile = (values, q) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (v) => quantile(v, 0.5);
const p95 = (v) => quantile(v, 0.95);
const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "n/a");

const browser = await chromium.launch({
  executablePath: browserPath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const harness = pathToFileURL(path.join(jsDir, "dev", "harness.html")).href;
const results = [];
try {
  for (const renderer of renderers) for (const n of sizes) {
    const page = await browser.newPage({ viewport: { width: 1300, height: 1100 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${harness}?view=explorer&n=${n}&layers=${layers}&delay=0&renderer=${renderer}`);
    await page.waitForFunction(() => document.body.dataset.ready === "1", null, { timeout: 120000 });
    const result = await page.evaluate(async (durationMs) => {
      const tdw = window.tdw;
      const frames = (ms, onFrame) =>
        new Promise((resolve) => {
          const deltas = [];
          const start = performance.now();
          let last = start;
          let k = 0;
          const step = (t) => {
            deltas.push(t - last);
            last = t;
            onFrame?.(k++);
            if (performance.now() - start < ms) requestAnimationFrame(step);
            else resolve(deltas.slice(1));
          };
          requestAnimationFrame(step);
        });
      const idle = await frames(Math.min(1000, durationMs));

      const scatter = tdw.rendered.view.scatter;
      const stage = document.querySelector(".tdw-scatter-stage");
      const rect = stage.getBoundingClientRect();
      const handler = [];
      let hits = 0;
      const hover = await frames(durationMs, (k) => {
        const x = rect.left + rect.width * (0.5 + 0.2 * Math.sin(k * 0.05));
        const y = rect.top + rect.height * (0.5 + 0.2 * Math.sin(k * 0.083));
        const t0 = performance.now();
        stage.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, bubbles: true }));
        handler.push(performance.now() - t0);
        if (tdw.model.get("hovered_token") >= 0) hits++;
      });

      const scroller = document.querySelector(".tdw-heatmap-scroller");
      const hrect = scroller.getBoundingClientRect();
      const heatHandler = [];
      const heat = await frames(Math.min(2000, durationMs), (k) => {
        const x = hrect.left + hrect.width * (0.3 + 0.25 * Math.sin(k * 0.07));
        const y = hrect.top + hrect.height * (0.5 + 0.4 * Math.sin(k * 0.05));
        const t0 = performance.now();
        scroller.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, bubbles: true }));
        heatHandler.push(performance.now() - t0);
      });

      // Box selection over the middle of the cloud: the pointer-up handler (grid query, selection
      // bytes, every view updated) and the frame after it.
      const down = { clientX: rect.left + rect.width * 0.3, clientY: rect.top + rect.height * 0.3, bubbles: true, button: 0 };
      const up = { clientX: rect.left + rect.width * 0.7, clientY: rect.top + rect.height * 0.7, bubbles: true, button: 0 };
      stage.dispatchEvent(new PointerEvent("pointerdown", down));
      stage.dispatchEvent(new PointerEvent("pointermove", up));
      const s0 = performance.now();
      stage.dispatchEvent(new PointerEvent("pointerup", up));
      const selectMs = performance.now() - s0;
      const selected = Number(document.querySelector(".tdw-heatmap").dataset.selected);
      const afterSelect = await frames(300);
      tdw.model.set("selected_tokens", new DataView(new ArrayBuffer(0)));

      // Layer change: the fake kernel answers at once; the points glide for ~300 ms.
      const anim = [];
      for (let rep = 0; rep < 3; rep++) {
        const layer = (tdw.model.get("layer") + 5) % tdw.model.get("n_layers");
        tdw.model.set("layer", layer);
        tdw.model.save_changes();
        anim.push(...(await frames(450)));
      }
      return {
        renderer: scatter.rendererKind,
        dataMs: tdw.timings.dataMs,
        renderMs: tdw.timings.renderMs,
        firstFrameMs: tdw.timings.firstFrameMs,
        idle,
        hover,
        handler,
        heat,
        heatHandler,
        anim,
        hits,
        selectMs,
        selected,
        afterSelect,
      };
    }, seconds * 1000);
    await page.close();
    if (errors.length > 0) throw new Error(`page errors at n=${n}: ${errors.join("; ")}`);
    results.push({ n, mode: renderer, ...result });
  }
} finally {
  await browser.close();
}

const load = os.loadavg().map((v) => v.toFixed(2)).join(" ");
console.log(`# Front-end benchmark (headless Chromium, --disable-gpu; ${os.cpus().length} CPUs; load average ${load})`);
console.log(`# ${layers} layers; ${seconds} s of hover per size; renderer preference -> scatter renderer used`);
console.log("");
console.log("| renderer | tokens | render (ms) | first frame (ms) | idle frame (ms) | hover frame median / p95 (ms) | hover / idle | hover handler median / p95 (ms) | heatmap hover frame median / p95 (ms) | heatmap handler p95 (ms) | box select: handler (ms), points, next frame max (ms) | layer animation frame median / p95 (ms) |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of results) {
  console.log(
    `| ${r.mode} -> ${r.renderer} | ${r.n.toLocaleString("en-US")} | ${fmt(r.renderMs)} | ${fmt(r.firstFrameMs)} | ${fmt(median(r.idle))} | ` +
      `${fmt(median(r.hover))} / ${fmt(p95(r.hover))} | ${fmt(median(r.hover) / median(r.idle), 2)} | ` +
      `${fmt(median(r.handler), 2)} / ${fmt(p95(r.handler), 2)} | ${fmt(median(r.heat))} / ${fmt(p95(r.heat))} | ` +
      `${fmt(p95(r.heatHandler), 2)} | ${fmt(r.selectMs)}, ${r.selected.toLocaleString("en-US")}, ${fmt(Math.max(...r.afterSelect))} | ` +
      `${fmt(median(r.anim))} / ${fmt(p95(r.anim))} |`,
  );
}
console.log("");
for (const r of results) {
  const base = results.find((b) => b.mode === r.mode);
  console.log(
    `${r.mode}, n=${r.n}: first frame ${fmt(r.firstFrameMs / base.firstFrameMs, 2)}x the ${base.n.toLocaleString("en-US")}-token page; ` +
      `hover frame ${fmt(median(r.hover) / median(base.hover), 2)}x; hovered a point in ${r.hits} of ${r.handler.length} moves`,
  );
}
