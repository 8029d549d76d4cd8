// Bundles every view into one self-contained ES module for anywidget: no CDN, no runtime fetch.
// `node build.mjs --harness` also bundles the standalone dev harness (js/dev, never shipped).
import { build } from "esbuild";

const harness = process.argv.includes("--harness");

await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  outfile: "../tokendim_widgets/static/widget.js",
  logLevel: "info",
});

if (harness) {
  await build({
    entryPoints: ["dev/harness.ts"],
    bundle: true,
    format: "iife",
    target: "es2020",
    minify: false,
    sourcemap: "inline",
    outfile: "dev/build/harness.js",
    logLevel: "info",
  });
}
