// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { FakeModel } from "../dev/fake_model";
import { mount, type Rendered } from "../src/index";
import { bandPath, extent, linePath, readCurves } from "../src/sweep";
import { linearScale } from "../src/scales";

const XSS = '<img src=x onerror="window.__tdwPwned=1">';

function state(): Record<string, unknown> {
  const depth = [0, 0.5, 1];
  return {
    _view: "sweep",
    theme: "light",
    selected_model: "",
    x_label: "bits per byte",
    y_label: "working dimension",
    sweep_curves: [
      { model: "a", depth, dimension: [3, 9, 5], lower: [2, 8, 4], upper: [4, 10, 6] },
      { model: XSS, depth, dimension: [4, 7, null], lower: [3, 6, null], upper: [5, 8, null] },
    ],
    sweep_points: [
      { model: "a", x: 1.2, x_lower: 1.1, x_upper: 1.3, y: 9, y_lower: 8, y_upper: 10 },
      { model: XSS, x: 2.0, x_lower: null, x_upper: null, y: 7, y_lower: 6, y_upper: 8 },
    ],
    sweep_correlation: { rho: -1, lower: -1, upper: 0.5, n: 2 },
  };
}

let mounted: Rendered[] = [];
afterEach(() => {
  for (const r of mounted) r.dispose();
  mounted = [];
  document.body.innerHTML = "";
});

function render(): { model: FakeModel; r: Rendered } {
  const model = new FakeModel(state());
  const el = document.createElement("div");
  document.body.appendChild(el);
  const r = mount(model, el);
  mounted.push(r);
  return { model, r };
}

describe("sweep view", () => {
  it("draws one curve and band per model and a point with its error bars", () => {
    const { r } = render();
    expect(r.root.querySelectorAll(".tdw-sweep-line")).toHaveLength(2);
    expect(r.root.querySelectorAll(".tdw-sweep-band")).toHaveLength(2);
    const points = r.root.querySelectorAll(".tdw-sweep-point");
    expect(points).toHaveLength(2);
    expect(points[0].querySelectorAll(".tdw-xerr, .tdw-yerr")).toHaveLength(2);
    // No quality interval for the second model: its horizontal bar is left out.
    expect(points[1].querySelectorAll(".tdw-xerr")).toHaveLength(0);
    expect(r.root.querySelector(".tdw-sweep-caption")?.textContent).toContain("rho = -1");
  });

  it("renders model names as text, never as HTML", () => {
    const { r } = render();
    expect(r.root.querySelector("img")).toBeNull();
    const legend = Array.from(r.root.querySelectorAll(".tdw-sweep-item")).map((e) => e.textContent);
    expect(legend).toEqual(["a", XSS]);
  });

  it("sets selected_model on a click and highlights it", () => {
    const { model, r } = render();
    const point = r.root.querySelectorAll<SVGGElement>(".tdw-sweep-point")[1];
    point.dispatchEvent(new Event("click"));
    expect(model.get("selected_model")).toBe(XSS);
    expect(model.saved.at(-1)?.selected_model).toBe(XSS);
    const line = r.root.querySelector<SVGPathElement>(`.tdw-sweep-line[data-model="a"]`);
    line?.dispatchEvent(new Event("click"));
    expect(model.get("selected_model")).toBe("a");
    expect(r.root.querySelector(".tdw-sweep-item.tdw-selected")?.textContent).toBe("a");
  });

  it("splits lines at missing values and skips them in bands", () => {
    const sx = linearScale([0, 1], [0, 100]);
    const sy = linearScale([0, 10], [100, 0]);
    expect(linePath([0, 0.5, 1], [1, Number.NaN, 3], sx, sy)).toBe("M0.0,90.0M100.0,70.0");
    const [c] = readCurves([{ model: "m", depth: [0, 1], dimension: [1, 2], lower: [0, 1], upper: [2, 3] }]);
    expect(bandPath(c, sx, sy)).toBe("M0.0,80.0L100.0,70.0L100.0,90.0L0.0,100.0Z");
    expect(extent([Number.NaN])).toEqual([0, 1]);
    expect(extent([2, 2])).toEqual([1.5, 2.5]);
  });
});
