// Fails when a built bundle could load anything over the network: an import / export from an
// http(s) URL, a dynamic import of one, any fetch / XMLHttpRequest / importScripts / sendBeacon,
// or a CSS @import / url() of an http(s) URL. XML namespace strings such as the SVG namespace are
// plain strings and allowed.
import { readFileSync } from "node:fs";

const RULES = [
  ["static import/export from a URL", /\b(?:import|export)\b[^;'"`]*?\bfrom\s*["'`]\s*(?:https?:)?\/\//g],
  ["side-effect import of a URL", /\bimport\s*["'`]\s*(?:https?:)?\/\//g],
  ["dynamic import()", /\bimport\s*\(/g],
  ["fetch()", /\bfetch\s*\(/g],
  ["XMLHttpRequest", /\bXMLHttpRequest\b/g],
  ["importScripts()", /\bimportScripts\s*\(/g],
  ["navigator.sendBeacon", /\bsendBeacon\s*\(/g],
  ["WebSocket", /\bnew\s+WebSocket\s*\(/g],
  ["CSS @import of a URL", /@import\s+(?:url\()?\s*["']?\s*(?:https?:)?\/\//g],
  ["CSS url() of a URL", /url\(\s*["']?\s*(?:https?:)?\/\//g],
  ["script or link to a URL", /<(?:script|link)[^>]+(?:src|href)\s*=\s*["']?(?:https?:)?\/\//gi],
];

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/check-offline.mjs FILE...");
  process.exit(2);
}
let failures = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    console.error(`check-offline: cannot read ${file}: ${err.message}`);
    failures += 1;
    continue;
  }
  for (const [what, pattern] of RULES) {
    for (const match of text.matchAll(pattern)) {
      const at = match.index ?? 0;
      console.error(`check-offline: ${file}: ${what} at offset ${at}: ${text.slice(Math.max(0, at - 40), at + 80)}`);
      failures += 1;
    }
  }
}
if (failures > 0) {
  console.error(`check-offline: ${failures} network access(es) found`);
  process.exit(1);
}
console.log(`check-offline: ${files.join(", ")}: no network import or fetch`);
