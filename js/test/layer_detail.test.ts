// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { FakeModel } from "../dev/fake_model";
import { mount, type Rendered } from "../src/index";
import {
  clampWindow,
  histogram,
  LayerDetailView,
  logScale,
  logTicks,
  readCorrelation,
  windowSlope,
} from "../src/layer_detail";

const XSS = '<img src=x onerror="window.__tdwPwned=1">';

/** C(r) of a 3-dimensional cloud: r^3 below r = 1, then 1. */
function cube(): { radii: number[]; curve: number[]; slope: number[] } {
  const radii = Array.from({ length: 40 }, (_, i) => 0.05 * Math.pow(1.1, i));
  const curve = radii.map((r) => Math.min(1, r ** 3));
  const slope = radii.map((r) => (r < 1 ? 3 : 0));
  return { radii, curve, slope };
}

function state(): Record<string, unknown> {
  const c = cube();
  return {
    _view: "layer_detail",
    theme: "light",
    layer: 3,
    n_layers: 8,
    panel_status: { scale: "ready", correlation: "ready", convergence: "computing", prompts: "ready" },
    scale_curve: [1, 2, 4, 8, 16].map((n1, i) => ({
      n1,
      n2: 2 * n1,
      radius: 1 + i,
      dimension: 5 + 0.1 * i,
      lower: 4.6 + 0.1 * i,
      upper: 5.4 + 0.1 * i,
      interval_method: "group bootstrap",
    })),
    correlation: { ...c, default_window: [0.1, 0.5], n_counted: 500, n_points: 520 },
    window: [0.1, 0.5],
    window_fit: { dimension: 3.01, lower: 2.9, upper: 3.1, r_min: 0.1, r_max: 0.5, n_radii: 17 },
    convergence: [
      { n: 800, dimension: 5.1, lower: 4.8, upper: 5.4, estimator: "twonn" },
      { n: 400, dimension: 4.7, lower: 4.2, upper: 5.2, estimator: "twonn" },
    ],
    prompts: [
      { prompt: 0, n_tokens: 30, dimension: 4, lower: 3, upper: 5, text: XSS },
      { prompt: 1, n_tokens: 31, dimension: 6, lower: 5, upper: 7, text: "plain" },
      { prompt: 2, n_tokens: 29, dimension: 5, lower: 4, upper: 6, text: "" },
    ],
    prompt_note: "TwoNN per prompt; 1 prompt(s) with fewer than 16 distinct tokens left out.",
    selected_prompts: [1],
  };
}

let mounted: Rendered[] = [];
afterEach(() => {
  for (const r of mounted) r.dispose();
  mounted = [];
  document.body.innerHTML = "";
});

function render(): { model: FakeModel; r: Rendered; view: LayerDetailView } {
  const model = new FakeModel(state());
  const el = document.createElement("div");
  document.body.appendChild(el);
  const r = mount(model, el);
  mounted.push(r);
  return { model, r, view: r.view as LayerDetailView };
}

describe("layer detail helpers", () => {
  it("fits the window's slope as least squares of log C on log r", () => {
    const c = cube();
    const fit = windowSlope(c.radii, c.curve, 0.1, 0.5);
    expect(fit?.dimension).toBeCloseTo(3, 6);
    expect(fit?.n).toBe(c.radii.filter((r) => r >= 0.1 && r <= 0.5).length);
    // Above r = 1, C is flat: a window across the bend has a smaller slope.
    expect(windowSlope(c.radii, c.curve, 0.5, 3)!.dimension).toBeLessThan(2.5);
    // Fewer than three radii with pairs: no estimate.
    expect(windowSlope(c.radii, c.curve, 0.1, 0.11)).toBeNull();
    expect(windowSlope([1, 2, 3, 4], [0, 0, 0.5, 1], 1, 4)).toBeNull();
  });

  it("keeps a dragged window ordered, inside the grid and at least 1% wide", () => {
    expect(clampWindow(0.5, 0.2, [0.1, 1])).toEqual([0.2, 0.5]);
    expect(clampWindow(0.01, 5, [0.1, 1])).toEqual([0.1, 1]);
    const [a, b] = clampWindow(0.3, 0.3, [0.1, 1]);
    expect(b / a).toBeCloseTo(1.01, 6);
  });

  it("maps radii on a log scale and back", () => {
    const s = logScale([1, 100], [0, 200]);
    expect(s(10)).toBeCloseTo(100);
    expect(s.invert(50)).toBeCloseTo(Math.sqrt(10));
    expect(logTicks(0.3, 30)).toEqual([0.5, 1, 2, 5, 10, 20]);
    expect(logTicks(80, 150)).toEqual([80, 150]);
  });

  it("bins values into a histogram, ignoring missing ones", () => {
    expect(histogram([0, 0.5, 1, 2, Number.NaN, 5], 0, 2, 2)).toEqual([2, 2]);
  });

  it("reads no correlation from a malformed trait", () => {
    expect(readCorrelation(null)).toBeNull();
    expect(readCorrelation({ radii: [1] })).toBeNull();
  });
});

describe("layer detail view", () => {
  it("draws four labelled panels with the layer in the title", () => {
    const { r } = render();
    const panels = r.root.querySelectorAll(".tdw-ld-panel");
    expect(Array.from(panels).map((p) => (p as HTMLElement).dataset.panel)).toEqual([
      "scale",
      "correlation",
      "convergence",
      "prompts",
    ]);
    expect(r.root.querySelector(".tdw-view-title")?.textContent).toBe("Layer 3 of 8 in detail");
    const labels = Array.from(r.root.querySelectorAll(".tdw-ld-xlabel")).map((e) => e.textContent);
    expect(labels).toContain("neighbour rank n1 (n2 = 2 n1)");
    expect(labels).toContain("radius r (log scale)");
    expect(r.root.querySelectorAll(".tdw-ld-ylabel").length).toBe(4);
    // Every band explains itself in a tooltip.
    const band = r.root.querySelector("[data-panel='scale'] .tdw-ld-band title");
    expect(band?.textContent).toContain("resampled");
    expect(r.root.querySelector("[data-panel='convergence'] .tdw-ld-status")?.textContent).toBe("computing…");
    expect(r.root.querySelectorAll("[data-panel='scale'] .tdw-ld-dot")).toHaveLength(5);
    expect(r.root.querySelectorAll("[data-panel='convergence'] .tdw-ld-err")).toHaveLength(2);
  });

  it("shows Python's window fit with its interval, and a preview for a window it has not fitted", () => {
    const { model, r, view } = render();
    const panel = r.root.querySelector<HTMLElement>("[data-panel='correlation']")!;
    expect(panel.dataset.fit).toBe("python");
    expect(panel.querySelector(".tdw-ld-caption")?.textContent).toContain("slope 3.01 [2.90, 3.10]");
    expect(panel.querySelectorAll(".tdw-ld-handle")).toHaveLength(2);
    expect(view.loInput.value).toBe("0.1000");
    view.setWindow([0.5, 3], false);
    expect(panel.dataset.fit).toBe("preview");
    expect(panel.querySelector(".tdw-ld-caption")?.textContent).toContain("(preview)");
    // Python answers for that window: its value replaces the preview.
    model.set("window", [0.5, 3]);
    model.set("window_fit", { dimension: 2.2, lower: 2.0, upper: 2.4, r_min: 0.5, r_max: 3, n_radii: 19 });
    expect(panel.dataset.fit).toBe("python");
    expect(panel.querySelector(".tdw-ld-caption")?.textContent).toContain("slope 2.20");
  });

  it("sends a typed window to Python and refuses an empty one", () => {
    const { model, view } = render();
    view.loInput.value = "0.2";
    view.hiInput.value = "0.8";
    view.loInput.dispatchEvent(new Event("change"));
    expect(model.get("window")).toEqual([0.2, 0.8]);
    expect(model.saved.at(-1)?.window).toEqual([0.2, 0.8]);
    // Typing one end keeps the other's exact value, not its rounded text.
    model.set("window", [0.123456789, 0.8]);
    view.hiInput.value = "0.9";
    view.hiInput.dispatchEvent(new Event("change"));
    expect(model.get("window")).toEqual([0.123456789, 0.9]);
    const saves = model.saved.length;
    view.hiInput.value = "0.1";
    view.hiInput.dispatchEvent(new Event("change"));
    expect(model.saved.length).toBe(saves);
    expect(view.hiInput.value).toBe("0.9000");
  });

  it("moves a window edge by dragging it", () => {
    const { model, r, view } = render();
    const handle = r.root.querySelector<SVGRectElement>("[data-panel='correlation'] .tdw-ld-handle[data-edge='hi']")!;
    handle.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, clientX: 0 }));
    // happy-dom lays nothing out: client x is read in viewBox units.
    const target = view.rScale!(0.8);
    document.dispatchEvent(new PointerEvent("pointermove", { clientX: target }));
    document.dispatchEvent(new PointerEvent("pointerup", {}));
    const w = model.get("window") as number[];
    expect(w[0]).toBeCloseTo(0.1);
    expect(w[1]).toBeCloseTo(0.8, 2);
    expect(model.saved.at(-1)?.window).toEqual(w);
  });

  it("draws one dot per prompt, text never as HTML, and a click asks Python to select it", () => {
    const { model, r } = render();
    const sent: unknown[] = [];
    model.onSend = (content) => sent.push(content);
    const dots = r.root.querySelectorAll<SVGCircleElement>(".tdw-ld-prompt");
    expect(dots).toHaveLength(3);
    expect(r.root.querySelector("img")).toBeNull();
    expect(dots[0].querySelector("title")?.textContent).toContain(XSS);
    expect(Array.from(dots).map((d) => d.classList.contains("tdw-ld-selected"))).toEqual([false, true, false]);
    dots[2].dispatchEvent(new Event("click"));
    expect(sent.at(-1)).toEqual({ type: "select_prompt", prompt: 2 });
    // A click on the selected prompt clears the selection.
    r.root.querySelectorAll<SVGCircleElement>(".tdw-ld-prompt")[1].dispatchEvent(new Event("click"));
    expect(sent.at(-1)).toEqual({ type: "select_prompt", prompt: null });
    model.set("selected_prompts", [2]);
    const panel = r.root.querySelector<HTMLElement>("[data-panel='prompts']")!;
    expect(panel.dataset.selected).toBe("1");
    expect(panel.querySelector(".tdw-ld-caption")?.textContent).toContain("left out");
  });

  it("removes its listeners when disposed", () => {
    const { model, r } = render();
    r.dispose();
    mounted = [];
    model.set("layer", 5);
    expect(r.root.isConnected).toBe(false);
    expect(model.listenerCount()).toBe(0);
  });
});
