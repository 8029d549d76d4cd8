// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { createPointRenderer, isSoftwareGL, sanitizePositions } from "../src/points_renderer";
import { fitTransform } from "../src/scatter";

function fakeGL(renderer: string): WebGLRenderingContext {
  let lost = false;
  return {
    RENDERER: 0x1f01,
    getExtension: (name: string) => {
      if (name === "WEBGL_debug_renderer_info") return { UNMASKED_RENDERER_WEBGL: 0x9246 };
      if (name === "WEBGL_lose_context") return { loseContext: () => (lost = true) };
      return null;
    },
    getParameter: (p: number) => (p === 0x9246 ? renderer : "WebKit WebGL"),
    get lost() {
      return lost;
    },
  } as unknown as WebGLRenderingContext;
}

describe("renderer choice", () => {
  it("recognises software WebGL", () => {
    expect(isSoftwareGL(fakeGL("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)"))).toBe(true);
    expect(isSoftwareGL(fakeGL("llvmpipe (LLVM 15.0.6, 256 bits)"))).toBe(true);
    expect(isSoftwareGL(fakeGL("ANGLE (Apple, ANGLE Metal Renderer: Apple M2, Unspecified Version)"))).toBe(false);
    expect(isSoftwareGL(fakeGL("NVIDIA GeForce RTX 4090/PCIe/SSE2"))).toBe(false);
  });

  it("replaces the canvas and leaves WebGL when it runs in software", () => {
    const stage = document.createElement("div");
    const canvas = document.createElement("canvas");
    canvas.className = "tdw-scatter-gl";
    stage.appendChild(canvas);
    const gl = fakeGL("SwiftShader driver");
    canvas.getContext = ((kind: string) => (kind === "webgl2" ? gl : null)) as typeof canvas.getContext;
    const renderer = createPointRenderer(canvas, "auto");
    expect(renderer.kind).not.toMatch(/webgl/);
    expect(renderer.canvas).not.toBe(canvas);
    expect(stage.firstElementChild).toBe(renderer.canvas);
    expect(renderer.canvas.className).toBe("tdw-scatter-gl");
    expect((gl as unknown as { lost: boolean }).lost).toBe(true);
  });

  it("never asks for WebGL with the canvas2d preference", () => {
    const canvas = document.createElement("canvas");
    const asked: string[] = [];
    canvas.getContext = ((kind: string) => {
      asked.push(kind);
      return null;
    }) as typeof canvas.getContext;
    createPointRenderer(canvas, "canvas2d");
    expect(asked).toEqual(["2d"]);
  });
});

describe("scatter geometry", () => {
  it("replaces non-finite coordinates and pads short arrays", () => {
    const out = sanitizePositions(new Float32Array([1, Number.NaN, Number.POSITIVE_INFINITY, 2]), 3);
    expect(Array.from(out)).toEqual([1, 1e9, 1e9, 2, 1e9, 1e9]);
    const clean = new Float32Array([1, 2, 3, 4]);
    expect(sanitizePositions(clean, 2)).toBe(clean);
  });

  it("fits bounds with equal aspect inside the clip square", () => {
    const [sx, sy, tx, ty] = fitTransform({ minX: 0, minY: 0, maxX: 10, maxY: 2 }, 400, 200, 0);
    // Equal pixels per unit on both axes.
    expect(sx * 200).toBeCloseTo(sy * 100);
    // The wide axis fills the width: x from -1 to 1.
    expect(0 * sx + tx).toBeCloseTo(-1);
    expect(10 * sx + tx).toBeCloseTo(1);
    // Centred vertically.
    expect(1 * sy + ty).toBeCloseTo(0);
  });
});
