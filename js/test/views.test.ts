// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { asInt32, encodeInt32 } from "../src/codecs";
import { Tooltip, writeSelection } from "../src/dom";
import { mount, type Rendered } from "../src/index";
import { buildContext, TokenTable } from "../src/tokens";
import type { ExplorerView } from "../src/explorer";
import type { CurveView } from "../src/curve";
import { FakeModel } from "../dev/fake_model";
import { makeSynthetic, XSS_TOKENS } from "../dev/synthetic";

const XSS = '<img src=x onerror="window.__tdwPwned=1">';

let mounted: Rendered[] = [];

function render(view: string, extra: Record<string, unknown> = {}, n = 300): { model: FakeModel; r: Rendered } {
  const { state } = makeSynthetic({ nTokens: n, nLayers: 7, tokensPerPrompt: 20, xss: true, seed: 5 });
  const model = new FakeModel({ ...state, _view: view, ...extra });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const r = mount(model, el);
  mounted.push(r);
  return { model, r };
}

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  for (const r of mounted) r.dispose();
  mounted = [];
  document.body.innerHTML = "";
  delete (window as unknown as { __tdwPwned?: number }).__tdwPwned;
});

describe("render", () => {
  it("composes every view in the explorer", () => {
    const { r } = render("explorer");
    const names = Array.from(r.root.querySelectorAll<HTMLElement>("[data-view]")).map((e) => e.dataset.view);
    expect(names).toEqual(expect.arrayContaining(["explorer", "controls", "curve", "metrics", "scatter", "heatmap"]));
    expect(r.root.classList.contains("tdw-root")).toBe(true);
  });

  it("renders each view alone", () => {
    for (const view of ["curve", "scatter", "heatmap", "metrics", "controls"]) {
      const { r } = render(view);
      expect(r.root.querySelector<HTMLElement>(".tdw-view")?.dataset.view).toBe(view);
      expect(r.root.querySelector(".tdw-explorer")).toBeNull();
    }
  });

  it("injects one stylesheet per document", () => {
    render("curve");
    render("metrics");
    expect(document.querySelectorAll("style[data-tdw-styles]")).toHaveLength(1);
  });

  it("says so for an unknown view instead of throwing", () => {
    const { r } = render("nonsense");
    expect(r.root.textContent).toContain('unknown view "nonsense"');
  });

  it("removes every model listener on dispose", () => {
    const { model, r } = render("explorer");
    expect(model.listenerCount()).toBeGreaterThan(10);
    r.dispose();
    mounted = [];
    expect(model.listenerCount()).toBe(0);
  });
});

describe("untrusted token text", () => {
  it("shows HTML in a token as text in the tooltip", () => {
    const { state } = makeSynthetic({ nTokens: 50, nLayers: 3, xss: true });
    const tokens = new TokenTable(state as never);
    expect(tokens.text(1)).toBe(XSS_TOKENS[0]);
    const container = document.createElement("div");
    document.body.appendChild(container);
    const tip = new Tooltip(container);
    tip.show(10, 10, buildContext(tokens, 1, 3), [`token ${tokens.text(2)}`]);
    expect(tip.el.querySelector("img, script, b")).toBeNull();
    expect(tip.el.textContent).toContain(XSS);
    expect(tip.el.textContent).toContain("<script>window.__tdwPwned=2</script>");
    expect(tip.el.querySelector(".tdw-ctx-focus")?.textContent).toBe(XSS);
    expect((window as unknown as { __tdwPwned?: number }).__tdwPwned).toBeUndefined();
  });

  it("shows HTML in metrics cells, curve labels and errors as text", () => {
    const { r, model } = render("explorer", {
      metrics: [{ model: XSS, estimator: "<b>x</b>", peak_dimension: 3.2 }],
      metrics_columns: [],
      error: `bad model ${XSS}`,
    });
    model.set("curves", [{ label: XSS, layers: [0, 1], dimension: [1, 2], lower: [], upper: [], peak_layer: 1 }]);
    (r.view as ExplorerView).curve.draw();
    expect(r.root.querySelector("img, script, b")).toBeNull();
    expect(r.root.querySelector(".tdw-table")?.textContent).toContain(XSS);
    expect(r.root.querySelector(".tdw-error-text")?.textContent).toBe(`bad model ${XSS}`);
  });
});

describe("metrics", () => {
  it("formats columns and updates rows in place", () => {
    const { r, model } = render("metrics");
    const table = r.root.querySelector("table")!;
    expect(table.querySelectorAll("th")).toHaveLength(6);
    const firstRow = table.querySelector("tbody tr");
    expect(firstRow?.textContent).toContain("%");
    const rows = model.get("metrics") as Array<Record<string, unknown>>;
    model.set("metrics", rows.map((row) => ({ ...row, peak_dimension: 42.123 })));
    expect(table.querySelector("tbody tr")).toBe(firstRow);
    expect(firstRow?.textContent).toContain("42.12");
  });

  it("derives columns from the first row when none are given", () => {
    const { r } = render("metrics", { metrics: [{ a: 1, b: "x" }], metrics_columns: [] });
    expect(Array.from(r.root.querySelectorAll("th")).map((t) => t.textContent)).toEqual(["a", "b"]);
  });
});

describe("curve", () => {
  it("moves the layer rule when the layer changes and draws one line per curve", () => {
    const { r, model } = render("curve");
    const view = r.view as CurveView;
    view.draw();
    const rule = r.root.querySelector(".tdw-c-rule-line")!;
    const before = rule.getAttribute("x1");
    model.set("layer", 1);
    view.draw();
    expect(rule.getAttribute("x1")).not.toBe(before);
    expect(r.root.querySelectorAll(".tdw-c-lines path")).toHaveLength(2);
    expect(r.root.querySelectorAll(".tdw-c-peaks g")).toHaveLength(2);
    expect(r.root.querySelectorAll(".tdw-c-legend g")).toHaveLength(2);
  });

  it("changes the layer with the arrow keys and saves it", () => {
    const { r, model } = render("curve", { layer: 3 });
    (r.view as CurveView).draw();
    const svg = r.root.querySelector("svg")!;
    svg.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(model.get("layer")).toBe(4);
    expect(model.saves).toBe(1);
    svg.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    expect(model.get("layer")).toBe(3);
  });

  it("exports standalone SVG text", async () => {
    const { r } = render("curve");
    const text = await r.context.exporters.export("curve", "svg");
    expect(text).toContain("<svg");
    expect(text).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(text).not.toContain("tdw-c-hit");
  });
});

describe("selection linking", () => {
  it("writes int32 bytes and every view reads them", () => {
    const { r, model } = render("explorer");
    writeSelection(model, [7, 3, 250]);
    const value = model.get("selected_tokens");
    expect(value).toBeInstanceOf(DataView);
    expect(Array.from(asInt32(value as DataView))).toEqual([3, 7, 250]);
    expect(model.saves).toBe(1);
    expect(r.root.querySelector<HTMLElement>(".tdw-heatmap")?.dataset.selected).toBe("3");
    expect(r.root.querySelector<HTMLElement>(".tdw-scatter")?.dataset.selected).toBe("3");
    expect(r.root.querySelector(".tdw-scatter .tdw-view-footer")?.textContent).toContain("3 selected");
  });

  it("ignores selected indices out of range", () => {
    const { r, model } = render("heatmap");
    model.set("selected_tokens", encodeInt32([-1, 5, 100000]));
    expect(r.root.querySelector<HTMLElement>(".tdw-heatmap")?.dataset.selected).toBe("1");
  });

  it("clears the selection with the scatter's Clear button", () => {
    const { r, model } = render("scatter");
    writeSelection(model, [1, 2]);
    const clear = Array.from(r.root.querySelectorAll("button")).find((b) => b.textContent === "Clear")!;
    expect(clear.disabled).toBe(false);
    clear.click();
    expect(asInt32(model.get("selected_tokens") as DataView).length).toBe(0);
  });

  it("sets the layer from the scatter's slider and shows the projection badge", () => {
    const { r, model } = render("scatter", { layer: 3, projection_layer: 3, projection_kind: "pca" });
    const slider = r.root.querySelector<HTMLInputElement>("input[type=range]")!;
    expect(slider.max).toBe("6");
    slider.value = "5";
    slider.dispatchEvent(new Event("change"));
    expect(model.get("layer")).toBe(5);
    const badge = r.root.querySelector(".tdw-badge")!;
    expect(badge.textContent).toBe("PCA preview · layer 3");
    model.setMany({ projection_kind: "umap", projection_layer: 5 });
    expect(badge.textContent).toBe("UMAP");
  });
});

describe("controls", () => {
  it("sends run / cancel and follows busy", () => {
    const { r, model } = render("controls", { busy: false });
    const buttons = Array.from(r.root.querySelectorAll("button"));
    const run = buttons.find((b) => b.textContent === "Run")!;
    const cancel = buttons.find((b) => b.textContent === "Cancel")!;
    expect(cancel.disabled).toBe(true);
    run.click();
    expect(model.sent).toContainEqual({ type: "run" });
    model.setMany({ busy: true, status: "extracting", progress: 0.5, tokens_per_second: 1500, eta_seconds: 65 });
    expect(run.disabled).toBe(true);
    expect(cancel.disabled).toBe(false);
    expect(r.root.querySelector(".tdw-status-row")?.textContent).toContain("1,500 tokens/s");
    expect(r.root.querySelector(".tdw-status-row")?.textContent).toContain("ETA 1 min 05 s");
    expect(r.root.querySelector<HTMLElement>(".tdw-progress-bar")?.style.width).toBe("50.0%");
    cancel.click();
    expect(model.sent).toContainEqual({ type: "cancel" });
  });

  it("sets traits from inputs and rejects an invalid k", () => {
    const { r, model } = render("controls", { k: 20 });
    const k = r.root.querySelector<HTMLInputElement>("input[aria-label=k]")!;
    k.value = "35";
    k.dispatchEvent(new Event("change"));
    expect(model.get("k")).toBe(35);
    k.value = "-2";
    k.dispatchEvent(new Event("change"));
    expect(model.get("k")).toBe(35);
    expect(k.value).toBe("35");
    const estimator = r.root.querySelector<HTMLSelectElement>("select[aria-label=Estimator]")!;
    estimator.value = "gride";
    estimator.dispatchEvent(new Event("change"));
    expect(model.get("estimator")).toBe("gride");
    expect(model.saves).toBe(2);
  });

  it("keeps a value that is not among the choices selectable", () => {
    const { r } = render("controls", { estimator: "custom-est" });
    const estimator = r.root.querySelector<HTMLSelectElement>("select[aria-label=Estimator]")!;
    expect(estimator.value).toBe("custom-est");
  });

  it("sends pasted prompts", () => {
    const { r, model } = render("controls");
    r.root.querySelector<HTMLTextAreaElement>("textarea")!.value = "first prompt\nsecond <b>prompt</b>";
    Array.from(r.root.querySelectorAll("button")).find((b) => b.textContent === "Use pasted prompts")!.click();
    expect(model.sent).toContainEqual({ type: "prompts_text", text: "first prompt\nsecond <b>prompt</b>" });
  });

  it("shows errors and clears them on dismiss", () => {
    const { r, model } = render("controls", { error: "" });
    const box = r.root.querySelector<HTMLElement>(".tdw-error")!;
    expect(box.hidden).toBe(true);
    model.set("error", "Model 'x' not found: pass an alias or a hub id.");
    expect(box.hidden).toBe(false);
    box.querySelector("button")!.click();
    expect(box.hidden).toBe(true);
    expect(model.get("error")).toBe("");
    model.set("error", "again");
    expect(box.hidden).toBe(false);
  });
});

describe("export messages", () => {
  it("answers an export request from Python with the request id", async () => {
    const { model } = render("explorer");
    model.receive({ type: "export", view: "curve", format: "svg", request_id: "abc" });
    await tick();
    const reply = model.sent.find((m) => (m as { type?: string }).type === "export_result") as Record<string, unknown>;
    expect(reply).toMatchObject({ type: "export_result", request_id: "abc", view: "curve", format: "svg" });
    expect(String(reply.data)).toContain("<svg");
  });

  it("answers with an error for a view that is not rendered", async () => {
    const { model } = render("curve");
    model.receive({ type: "export", view: "scatter", format: "png", request_id: 7 });
    await tick();
    expect(model.sent).toContainEqual(expect.objectContaining({ type: "export_result", request_id: 7, data: null }));
    const reply = model.sent[0] as { error?: string };
    expect(reply.error).toContain("scatter");
  });

  it("answers with an error from a view without images", async () => {
    const { model } = render("metrics");
    model.receive({ type: "export", view: "metrics", format: "png", request_id: "m" });
    await tick();
    expect(model.sent).toEqual([expect.objectContaining({ type: "export_result", request_id: "m", data: null })]);
  });
});

describe("theme", () => {
  it("applies an explicit theme and follows changes of the trait", () => {
    const { r, model } = render("metrics", { theme: "dark" });
    expect(r.root.classList.contains("tdw-dark")).toBe(true);
    model.set("theme", "light");
    expect(r.root.classList.contains("tdw-light")).toBe(true);
    expect(r.root.classList.contains("tdw-auto")).toBe(false);
  });

  it("follows JupyterLab's theme attribute in auto mode", async () => {
    document.body.setAttribute("data-jp-theme-light", "false");
    const { r } = render("metrics", { theme: "auto" });
    expect(r.root.classList.contains("tdw-dark")).toBe(true);
    expect(r.root.classList.contains("tdw-auto")).toBe(true);
    document.body.setAttribute("data-jp-theme-light", "true");
    await tick(10);
    expect(r.root.classList.contains("tdw-light")).toBe(true);
    document.body.removeAttribute("data-jp-theme-light");
  });
});
