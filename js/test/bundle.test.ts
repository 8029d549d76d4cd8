import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import * as entry from "../src/index";

const script = path.resolve(__dirname, "..", "scripts", "check-offline.mjs");

function check(source: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "tdw-offline-"));
  const file = path.join(dir, "bundle.js");
  writeFileSync(file, source);
  const run = spawnSync(process.execPath, [script, file], { encoding: "utf8" });
  return { status: run.status, output: run.stdout + run.stderr };
}

describe("anywidget entry", () => {
  it("exports render only through the default object (anywidget warns about a named render)", () => {
    expect(typeof entry.default.render).toBe("function");
    expect("render" in entry).toBe(false);
  });
});

describe("check-offline", () => {
  it("accepts a bundle whose only URLs are XML namespaces", () => {
    const result = check('const NS="http://www.w3.org/2000/svg";export{NS};');
    expect(result.status).toBe(0);
  });

  it.each([
    ['import x from "https://cdn.example/x.js";', "static import"],
    ['export * from "http://cdn.example/x.js";', "static import"],
    ['import "https://cdn.example/x.js";', "side-effect import"],
    ['const m = await import("https://cdn.example/x.js");', "dynamic import"],
    ['fetch("https://example.com/data.json");', "fetch"],
    ['const s = "@import url(https://fonts.example/css)";', "CSS @import"],
  ])("rejects %s", (source, what) => {
    const result = check(source);
    expect(result.status).toBe(1);
    expect(result.output).toContain(what);
  });

  it("passes on the built widget bundle", () => {
    // Build first so the check runs on what is shipped.
    execFileSync(process.execPath, ["build.mjs"], { cwd: path.resolve(__dirname, ".."), stdio: "ignore" });
    const run = spawnSync(process.execPath, [script, path.resolve(__dirname, "..", "..", "tokendim_widgets", "static", "widget.js")], {
      encoding: "utf8",
    });
    expect(run.status).toBe(0);
    // Token text must never be parsed as HTML: no HTML-string sinks anywhere in the bundle.
    const bundle = readFileSync(path.resolve(__dirname, "..", "..", "tokendim_widgets", "static", "widget.js"), "utf8");
    expect(bundle).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment/);
  });
});
