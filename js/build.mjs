// Bundles every view into one self-contained ES module for anywidget: no CDN, no runtime fetch.
// A second entry, src/standalone.ts, is the runtime of standalone HTML exports (the same views with a
// static in-page model); export.py inlines it into the exported page.
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

// Entered through a side-effect import so that the inlined module exports nothing: it only boots.
await build({
  stdin: { contents: 'import "./src/standalone";', resolveDir: ".", sourcefile: "standalone-entry.js" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  outfile: "../tokendim_widgets/static/standalone.js",
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
