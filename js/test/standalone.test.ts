// @vitest-environment happy-dom
// The standalone runtime of HTML exports: base64 decoding, the static model (a layer change
// brings that layer's embedded projection), booting a page, frozen controls, untrusted text, and
// the built runtime passing the offline check.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { afterEach, describe, expect, it } from "vitest";
import { asFloat32, asInt32 } from "../src/codecs";
import { writeSelection } from "../src/dom";
import type { ExplorerView } from "../src/explorer";
import {
  boot,
  decodeBase64,
  EXPORT_FORMAT,
  LayerProjections,
  modelFromExport,
  STATIC_NOTE,
  StaticModel,
  type StaticExport,
  type StaticPage,
} from "../src/standalone";
import { makeSynthetic } from "../dev/synthetic";

const N_LAYERS = 5;
const N_TOKENS = 240;

function b64(bytes: Uint8Array | ArrayBufferView): string {
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Buffer.from(view).toString("base64");
}

/** An export as export.py writes it, from the synthetic data of the other view tests. */
function makeExport(): { data: StaticExport; layers: Float32Array[] } {
  const synthetic = makeSynthetic({ nTokens: N_TOKENS, nLayers: N_LAYERS, tokensPerPrompt: 30, xss: true, seed: 3 });
  const state: Record<string, unknown> = {};
  const buffers: Record<string, string> = {};
  for (const [name, value] of Object.entries(synthetic.state)) {
    if (ArrayBuffer.isView(value)) buffers[name] = b64(value);
    else if (name !== "projection") state[name] = value;
  }
  delete buffers.projection;
  state._view = "explorer";
  state.layer = 1;
  const layers = Array.from({ length: N_LAYERS }, (_, layer) => synthetic.projection(layer, layer % 2 ? "umap" : "pca"));
  const all = new Float32Array(N_LAYERS * N_TOKENS * 2);
  layers.forEach((p, layer) => all.set(p.subarray(0, N_TOKENS * 2), layer * N_TOKENS * 2));
  const kinds = layers.map((_, layer) => (layer % 2 ? "umap" : "pca"));
  return { data: { format: EXPORT_FORMAT, state, buffers, projections: { kinds, n_tokens: N_TOKENS, data: b64(all) } }, layers };
}

let pages: StaticPage[] = [];

function bootPage(data: StaticExport): StaticPage {
  const script = document.createElement("script");
  script.type = "application/json";
  script.id = "tdw-data";
  script.textContent = JSON.stringify(data);
  document.body.appendChild(script);
  const page = boot(document);
  pages.push(page);
  return page;
}

afterEach(() => {
  for (const page of pages) page.rendered.dispose();
  pages = [];
  document.body.innerHTML = "";
  delete (window as unknown as { __tdwPwned?: number }).__tdwPwned;
  delete window.tdwStatic;
});

describe("decodeBase64", () => {
  it("round-trips every byte value, with or without padding", () => {
    const bytes = new Uint8Array(259).map((_, i) => i % 256);
    expect(Array.from(decodeBase64(b64(bytes)))).toEqual(Array.from(bytes));
    const two = new Uint8Array([1, 2]);
    expect(Array.from(decodeBase64(b64(two).replace(/=+$/, "")))).toEqual([1, 2]);
    expect(decodeBase64("").length).toBe(0);
  });
});

describe("StaticModel", () => {
  it("brings a layer's projection with the layer, in one update", () => {
    const { data, layers } = makeExport();
    const model = modelFromExport(data);
    expect(model.get("projection_layer")).toBe(1);
    expect(model.get("projection_kind")).toBe("umap");
    const seen: Array<[string, unknown]> = [];
    model.on("change:layer", () => seen.push(["layer", model.get("projection_layer")]));
    model.on("change:projection", () => seen.push(["projection", model.get("layer")]));
    model.set("layer", 4);
    // Listeners of either trait already see both new values.
    expect(seen).toEqual([
      ["layer", 4],
      ["projection", 4],
    ]);
    expect(model.get("projection_kind")).toBe("pca");
    expect(Array.from(asFloat32(model.get("projection") as DataView))).toEqual(Array.from(layers[4].subarray(0, N_TOKENS * 2)));
  });

  it("keeps the old projection for a layer without one and records messages for Python", () => {
    const model = new StaticModel({ layer: 0 }, new LayerProjections(["pca", ""], 2, new Uint8Array(2 * 2 * 2 * 4)));
    const first = model.get("projection");
    model.set("layer", 1);
    expect(model.get("projection")).toBe(first);
    expect(model.get("projection_layer")).toBe(0);
    model.send({ type: "run" });
    model.save_changes();
    expect(model.sent).toEqual([{ type: "run" }]);
    expect(model.saves).toBe(1);
  });

  it("refuses data of another format and short projection data", () => {
    expect(() => modelFromExport({ format: "something-else", state: {} })).toThrow(/not a tokendim export/);
    expect(() => new LayerProjections(["pca", "pca"], 10, new Uint8Array(10))).toThrow(/160 expected/);
  });
});

describe("boot", () => {
  it("renders every view of the explorer from the page's data", () => {
    const { data } = makeExport();
    const page = bootPage(data);
    expect(window.tdwStatic).toBe(page);
    const root = page.rendered.root;
    expect(root.dataset.static).toBe("1");
    const names = Array.from(root.querySelectorAll<HTMLElement>(".tdw-view")).map((e) => e.dataset.view);
    expect(names).toEqual(expect.arrayContaining(["controls", "curve", "metrics", "scatter", "heatmap"]));
    expect(root.querySelector<HTMLElement>(".tdw-view[data-view='scatter']")!.dataset.points).toBe(String(N_TOKENS));
    expect(root.querySelector<HTMLElement>(".tdw-view[data-view='heatmap']")!.dataset.tokens).toBe(String(N_TOKENS));
    expect(root.querySelector(".tdw-view[data-view='curve'] svg")).not.toBeNull();
  });

  it("moves the scatter to a layer chosen with the slider, without a kernel", () => {
    const { data, layers } = makeExport();
    const page = bootPage(data);
    const explorer = page.rendered.view as ExplorerView;
    const slider = page.rendered.root.querySelector<HTMLInputElement>(".tdw-scatter input[type=range]")!;
    slider.value = "3";
    slider.dispatchEvent(new Event("change"));
    expect(page.model.get("layer")).toBe(3);
    expect(page.model.get("projection_layer")).toBe(3);
    const positions = (explorer.scatter as unknown as { positions: Float32Array }).positions;
    expect(Array.from(positions)).toEqual(Array.from(layers[3].subarray(0, N_TOKENS * 2)));
    // No "· layer N" in the badge: the projection shown is the selected layer's.
    expect(page.rendered.root.querySelector(".tdw-scatter .tdw-badge")!.textContent).toBe("UMAP");
  });

  it("shares a selection between the scatter and the heatmap", () => {
    const { data } = makeExport();
    const page = bootPage(data);
    writeSelection(page.model, [2, 5, 7]);
    expect(Array.from(asInt32(page.model.get("selected_tokens") as DataView))).toEqual([2, 5, 7]);
    expect(page.rendered.root.querySelector<HTMLElement>(".tdw-view[data-view='scatter']")!.dataset.selected).toBe("3");
    expect(page.rendered.root.querySelector<HTMLElement>(".tdw-view[data-view='heatmap']")!.dataset.selected).toBe("3");
  });

  it("disables and hides what needs Python, and says it is a static export", () => {
    const { data } = makeExport();
    const page = bootPage(data);
    const controls = page.rendered.root.querySelector<HTMLElement>(".tdw-controls")!;
    const inputs = Array.from(controls.querySelectorAll<HTMLInputElement>("input, select, textarea, button"));
    expect(inputs.length).toBeGreaterThan(5);
    expect(inputs.every((el) => el.disabled)).toBe(true);
    for (const selector of [".tdw-actions", ".tdw-prompt-input", ".tdw-status-row"]) {
      expect(controls.querySelector<HTMLElement>(selector)!.hidden).toBe(true);
    }
    expect(controls.querySelector(".tdw-static-note")!.textContent).toBe(STATIC_NOTE);
    // Even a click that got through would only be recorded: nothing runs.
    controls.querySelector<HTMLButtonElement>(".tdw-actions button")!.click();
    expect(page.model.sent.length).toBeLessThanOrEqual(1);
  });

  it("keeps HTML in token text as text", () => {
    const { data } = makeExport();
    const page = bootPage(data);
    expect(page.rendered.root.querySelector("img, script")).toBeNull();
    expect((window as unknown as { __tdwPwned?: number }).__tdwPwned).toBeUndefined();
  });

  it("answers image export requests like the notebook widget", async () => {
    const { data } = makeExport();
    const page = bootPage(data);
    page.model.receive({ type: "export", view: "curve", format: "svg", request_id: "r1" });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const reply = page.model.sent.find((m) => (m as { request_id?: string }).request_id === "r1") as { data: string };
    expect(reply.data).toContain("<svg");
  });

  it("fails with a message when the page has no data", () => {
    expect(() => boot(document)).toThrow(/no #tdw-data element/);
  });
});

describe("built runtime", () => {
  it("is self-contained: no network access, no HTML sinks, no exports", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "tdw-standalone-"));
    const outfile = path.join(dir, "standalone.js");
    const jsRoot = path.resolve(__dirname, "..");
    // The same options as build.mjs, into a temporary file (the shipped one is left alone).
    await build({
      stdin: { contents: 'import "./src/standalone";', resolveDir: jsRoot, sourcefile: "standalone-entry.js" },
      bundle: true,
      format: "esm",
      target: "es2020",
      minify: true,
      outfile,
      logLevel: "silent",
    });
    const check = spawnSync(process.execPath, [path.join(jsRoot, "scripts", "check-offline.mjs"), outfile], { encoding: "utf8" });
    expect(check.status).toBe(0);
    const code = readFileSync(outfile, "utf8");
    expect(code).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment/);
    // Inlined into <script>: nothing may close the element or open an HTML comment.
    expect(code).not.toMatch(/<\/script|<!--/i);
    expect(code).not.toMatch(/\bexport\s*\{/);
    expect(code).toContain(EXPORT_FORMAT);
  });
});
