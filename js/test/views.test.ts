// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { asInt32, encodeInt32 } from "../src/codecs";
import { Tooltip, writeSelection } from "../src/dom";
import { mount, type Rendered } from "../src/index";
import { buildContext, TokenTable } from "../src/tokens";
import type { ExplorerView } from "../src/explorer";
import type { CurveView } from "../src/curve";
import type { MetricsView } from "../src/metrics";
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
    const table = r.root.querySelector("table.tdw-metrics-full")!;
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
    expect(Array.from(r.root.querySelectorAll("table.tdw-metrics-full th")).map((t) => t.textContent)).toEqual(["a", "b"]);
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

  it("sets traits from inputs and keeps an invalid k with an inline message", () => {
    const { r, model } = render("controls", { k: 20 });
    const k = r.root.querySelector<HTMLInputElement>("input[aria-label=k]")!;
    k.value = "35";
    k.dispatchEvent(new Event("input"));
    k.dispatchEvent(new Event("change"));
    expect(model.get("k")).toBe(35);
    k.value = "-2";
    k.dispatchEvent(new Event("input"));
    k.dispatchEvent(new Event("change"));
    expect(model.get("k")).toBe(35);
    expect(k.value).toBe("-2"); // what was typed stays, marked invalid
    expect(k.getAttribute("aria-invalid")).toBe("true");
    expect(r.root.querySelector(".tdw-field-error")?.textContent).toContain("whole number");
    const estimator = r.root.querySelector<HTMLSelectElement>("select[aria-label=Estimator]")!;
    estimator.value = "gride";
    estimator.dispatchEvent(new Event("change"));
    expect(model.get("estimator")).toBe("gride");
    expect(model.saves).toBe(2);
    // Escape gives the committed value back.
    k.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(k.value).toBe("35");
    expect(k.hasAttribute("aria-invalid")).toBe(false);
  });

  it("commits k on Enter, hides the Enter from the notebook, and on blur", () => {
    const { r, model } = render("controls", { k: 20, scale: 0 });
    const k = r.root.querySelector<HTMLInputElement>("input[aria-label=k]")!;
    let notebookSawEnter = false;
    r.root.addEventListener("keydown", () => (notebookSawEnter = true));
    k.value = "17";
    k.dispatchEvent(new Event("input"));
    const enter = new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true });
    k.dispatchEvent(enter);
    expect(model.get("k")).toBe(17);
    expect(model.saves).toBe(1);
    expect(notebookSawEnter).toBe(false);
    const scale = r.root.querySelector<HTMLInputElement>("input[aria-label=scale]")!;
    scale.value = "4";
    scale.dispatchEvent(new Event("input"));
    scale.dispatchEvent(new Event("blur"));
    expect(model.get("scale")).toBe(4);
    scale.value = "";
    scale.dispatchEvent(new Event("input"));
    scale.dispatchEvent(new Event("blur"));
    expect(model.get("scale")).toBe(0); // empty = the estimator's default
  });

  it("never replaces a typed, uncommitted value when another control changes", () => {
    const { r, model } = render("controls", { k: 20 });
    const k = r.root.querySelector<HTMLInputElement>("input[aria-label=k]")!;
    k.value = "17";
    k.dispatchEvent(new Event("input"));
    model.set("estimator", "mle"); // e.g. the estimator menu, or Python
    model.set("cloud", "last");
    expect(k.value).toBe("17");
    expect(model.get("k")).toBe(20);
    k.dispatchEvent(new Event("blur"));
    expect(model.get("k")).toBe(17);
    // Once committed, Python's value shows again.
    model.set("k", 8);
    expect(k.value).toBe("8");
  });

  it("toggles the Gaussian null control in the controls trait", () => {
    const { r, model } = render("controls", { controls: ["random_init"] });
    const box = Array.from(r.root.querySelectorAll("label.tdw-check"))
      .find((l) => l.textContent?.includes("Gaussian"))!
      .querySelector("input")!;
    expect(box.checked).toBe(false);
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(model.get("controls")).toEqual(["random_init", "gaussian"]);
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    expect(model.get("controls")).toEqual(["random_init"]);
    model.set("controls", ["gaussian"]);
    expect(box.checked).toBe(true);
  });

  it("shows an ETA only for the stage that reported it, never a stale 0", () => {
    const { r, model } = render("controls", { status: "extracting", busy: true, eta_seconds: 12 });
    const line = (): string => r.root.querySelector(".tdw-status-row")?.textContent ?? "";
    model.set("eta_seconds", 11);
    expect(line()).toContain("ETA 11 s");
    model.set("eta_seconds", 0);
    expect(line()).not.toContain("ETA");
    model.set("status", "estimating"); // the extraction's last ETA does not carry over
    expect(line()).not.toContain("ETA");
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

describe("metrics layout", () => {
  const rows = [
    { curve: "twonn", model: "m", estimator: "twonn", verdict: "expansion-contraction", working_dimension: "9.94 [8.70, 11.2]", working_layer: "18 (0.62)", final_dimension: "4.10 [3.90, 4.40]", contraction_ratio: "2.42 [2.1, 2.8]", auc: 7.1, n_distinct: 480 },
  ];
  const columns = [
    { key: "curve", label: "Curve" },
    { key: "model", label: "Model" },
    { key: "estimator", label: "Estimator" },
    { key: "verdict", label: "Shape" },
    { key: "working_dimension", label: "Working-space dim. [95% CI]" },
    { key: "working_layer", label: "Peak layer (p)" },
    { key: "final_dimension", label: "Final dim. [95% CI]" },
    { key: "contraction_ratio", label: "Contraction [95% CI]" },
    { key: "auc", label: "Mean dim. (AUC)", format: ".2f" },
    { key: "n_distinct", label: "Distinct points (min)", format: "d" },
  ];

  it("shows the essential numbers with intervals in a compact table, the rest under All metrics", () => {
    const { r } = render("metrics", { metrics: rows, metrics_columns: columns });
    const compact = r.root.querySelector("table.tdw-metrics-essential")!;
    expect(Array.from(compact.querySelectorAll("th")).map((t) => t.textContent)).toEqual([
      "Curve", "Shape", "Working-space dim. [95% CI]", "Peak layer (p)", "Final dim. [95% CI]", "Contraction [95% CI]",
    ]);
    expect(compact.textContent).toContain("9.94 [8.70, 11.2]");
    expect(compact.textContent).toContain("expansion-contraction");
    const more = r.root.querySelector<HTMLDetailsElement>("details.tdw-metrics-more")!;
    expect(more.hidden).toBe(false);
    expect(more.querySelector("table")!.querySelectorAll("th")).toHaveLength(columns.length);
  });

  it("shows one card per curve when narrow", () => {
    const { r } = render("metrics", { metrics: [...rows, { ...rows[0], curve: "mle" }], metrics_columns: columns });
    const view = r.root.querySelector<HTMLElement>(".tdw-metrics")!;
    // happy-dom has no layout: give the width the size observer would report.
    (r.view as MetricsView).layoutFor(380);
    expect(view.dataset.layout).toBe("cards");
    const cards = r.root.querySelectorAll(".tdw-card");
    expect(cards).toHaveLength(2);
    expect(cards[1].querySelector(".tdw-card-title")?.textContent).toBe("mle");
    expect(cards[0].querySelector("dd[data-key=working_dimension]")?.textContent).toBe("9.94 [8.70, 11.2]");
    expect(cards[0].querySelector(".tdw-verdict")?.textContent).toBe("expansion-contraction");
    expect(Array.from(cards[0].querySelectorAll("dt")).map((d) => d.textContent)).toEqual([
      "Shape", "Working dim.", "Peak layer (p)", "Final dim.", "Contraction",
    ]);
    expect(cards[0].textContent).toContain("value [95% interval]");
    expect(r.root.querySelector<HTMLElement>(".tdw-table-wrap")!.hidden).toBe(true);
    (r.view as MetricsView).layoutFor(900);
    expect(view.dataset.layout).toBe("table");
  });
});

describe("stale results", () => {
  it("greys the views with a note after an error until new results arrive", () => {
    const { r, model } = render("explorer");
    const curve = r.root.querySelector<HTMLElement>(".tdw-view[data-view=curve]")!;
    const metrics = r.root.querySelector<HTMLElement>(".tdw-view[data-view=metrics]")!;
    const heatmap = r.root.querySelector<HTMLElement>(".tdw-view[data-view=heatmap]")!;
    expect(curve.dataset.stale).toBe("0");
    model.set("error", "Could not load model 'nope': <b>not found</b>");
    for (const v of [curve, metrics, heatmap]) {
      expect(v.classList.contains("tdw-stale")).toBe(true);
      expect(v.querySelector(".tdw-stale-note")?.textContent).toContain("from before the error");
    }
    model.set("error", ""); // dismissing the message does not make old results fresh
    expect(curve.dataset.stale).toBe("1");
    model.set("curves", [...(model.get("curves") as unknown[])]);
    expect(curve.dataset.stale).toBe("0");
    expect(heatmap.dataset.stale).toBe("1");
    expect(r.root.querySelectorAll("b")).toHaveLength(0);
    model.set("status", "estimating");
    expect(heatmap.dataset.stale).toBe("1");
    model.set("status", "done"); // a successful run: everything shown is current again
    expect(heatmap.dataset.stale).toBe("0");
    expect(metrics.dataset.stale).toBe("0");
  });

  it("does not mark an empty view stale", () => {
    const { r, model } = render("curve", { curves: [] });
    model.set("error", "boom");
    expect(r.root.querySelector<HTMLElement>(".tdw-view")!.dataset.stale).toBe("0");
  });
});

describe("curve extras", () => {
  const base = { estimator: "twonn", model: "m", layers: [0, 1, 2, 3], lower: [1, 2, 3, 2], upper: [3, 4, 5, 4], peak_layer: 2, interval_method: "group bootstrap" };
  it("draws controls dashed, hides a curve from its legend entry, and no markers without data", () => {
    const { r, model } = render("curve", {
      curves: [
        { ...base, label: "twonn", dimension: [2, 3, 4, 3], layer_kinds: ["embedding", "residual", "residual", "final_norm"], peak_probability: [0, 0.2, 0.7, 0.1] },
        { ...base, label: "twonn · gaussian control", dimension: [5, 5, 5, 5], kind: "control", peak_layer: 1 },
      ],
    });
    const view = r.view as CurveView;
    view.draw();
    const lines = r.root.querySelectorAll(".tdw-c-lines path");
    expect(lines[1].getAttribute("stroke-dasharray")).toBe("6 4");
    expect(lines[0].getAttribute("stroke-dasharray")).toBe("none");
    expect(r.root.querySelector(".tdw-c-embedding-note")?.textContent).toBe("embeddings: not searched for the peak");
    expect(r.root.querySelectorAll(".tdw-c-strip rect")).toHaveLength(4);
    const legend = r.root.querySelectorAll<SVGGElement>(".tdw-c-legend-item");
    expect(legend[0].textContent).toContain("peak 2");
    legend[1].dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(lines[1].getAttribute("visibility")).toBe("hidden");
    expect(r.root.querySelectorAll(".tdw-c-peaks g")).toHaveLength(1);
    model.set("curves", []);
    view.draw();
    expect(r.root.querySelector(".tdw-c-rule-line")?.getAttribute("visibility")).toBe("hidden");
    expect(r.root.querySelectorAll(".tdw-c-peaks g, .tdw-c-peak-labels text")).toHaveLength(0);
  });
});
