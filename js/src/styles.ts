// One stylesheet per document (or shadow root), every rule scoped under .tdw-root. Colours are
// CSS variables: fixed palettes for an explicit light / dark theme, the host's JupyterLab
// variables (with the same fallbacks) when the theme is "auto".

export const STYLE_VERSION = "2";

const LIGHT = `
  --tdw-bg: #ffffff; --tdw-panel: #ffffff; --tdw-fg: #1f2328; --tdw-muted: #667085;
  --tdw-grid: #e4e7ec; --tdw-border: #d0d5dd; --tdw-accent: #2f6fdb; --tdw-accent-fg: #ffffff;
  --tdw-selection: #e8590c; --tdw-missing: #8f959e; --tdw-hover: #f2f4f7;
  --tdw-error-bg: #fdecec; --tdw-error-fg: #b42318; --tdw-shadow: rgba(16, 24, 40, 0.18);
  --tdw-focus: #ffe066;`;
const DARK = `
  --tdw-bg: #111418; --tdw-panel: #181c22; --tdw-fg: #e6e9ee; --tdw-muted: #98a2b3;
  --tdw-grid: #2c323b; --tdw-border: #3a414c; --tdw-accent: #6ea8fe; --tdw-accent-fg: #0b1220;
  --tdw-selection: #ffa94d; --tdw-missing: #6b7380; --tdw-hover: #232932;
  --tdw-error-bg: #3b1d1d; --tdw-error-fg: #ffb4ab; --tdw-shadow: rgba(0, 0, 0, 0.5);
  --tdw-focus: #8a6d00;`;

function hostVars(theme: "light" | "dark"): string {
  const fb = theme === "light"
    ? { bg: "#ffffff", fg: "#1f2328", muted: "#667085", border: "#d0d5dd", grid: "#e4e7ec", accent: "#2f6fdb", error: "#b42318" }
    : { bg: "#181c22", fg: "#e6e9ee", muted: "#98a2b3", border: "#3a414c", grid: "#2c323b", accent: "#6ea8fe", error: "#ffb4ab" };
  return `
  --tdw-bg: var(--jp-layout-color0, ${fb.bg}); --tdw-panel: var(--jp-layout-color0, ${fb.bg});
  --tdw-fg: var(--jp-ui-font-color0, ${fb.fg}); --tdw-muted: var(--jp-ui-font-color2, ${fb.muted});
  --tdw-border: var(--jp-border-color1, ${fb.border}); --tdw-grid: var(--jp-border-color2, ${fb.grid});
  --tdw-accent: var(--jp-brand-color1, ${fb.accent}); --tdw-error-fg: var(--jp-error-color1, ${fb.error});`;
}

export const CSS = `
.tdw-root.tdw-light {${LIGHT}}
.tdw-root.tdw-dark {${DARK}}
.tdw-root.tdw-auto.tdw-light {${hostVars("light")}}
.tdw-root.tdw-auto.tdw-dark {${hostVars("dark")}}
.tdw-root {
  --tdw-font: var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  color: var(--tdw-fg); background: var(--tdw-bg); font-family: var(--tdw-font);
  font-size: 13px; line-height: 1.4; box-sizing: border-box; width: 100%; max-width: 100%;
  color-scheme: light;
}
.tdw-root.tdw-dark { color-scheme: dark; }
.tdw-root *, .tdw-root *::before, .tdw-root *::after { box-sizing: border-box; }
.tdw-root [hidden] { display: none !important; }

.tdw-root .tdw-view {
  position: relative; background: var(--tdw-panel); border: 1px solid var(--tdw-border);
  border-radius: 6px; padding: 8px 10px; min-width: 0;
}
.tdw-root .tdw-view-header { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; margin-bottom: 6px; min-height: 26px; }
.tdw-root .tdw-view-title { font-weight: 600; }
.tdw-root .tdw-tools { display: flex; align-items: center; gap: 4px; margin-left: auto; flex-wrap: wrap; }
.tdw-root .tdw-view-footer { display: flex; align-items: center; gap: 12px; margin-top: 6px; flex-wrap: wrap; }
.tdw-root .tdw-muted { color: var(--tdw-muted); font-size: 12px; }
.tdw-root .tdw-empty {
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--tdw-muted); text-align: center; padding: 16px; pointer-events: none;
}
.tdw-root .tdw-empty.tdw-empty-inline { position: static; padding: 8px; }

.tdw-root .tdw-btn {
  font: inherit; font-size: 12px; line-height: 1.2; color: var(--tdw-fg); background: var(--tdw-panel);
  border: 1px solid var(--tdw-border); border-radius: 4px; padding: 3px 8px; cursor: pointer;
}
.tdw-root .tdw-btn:hover:not(:disabled) { background: var(--tdw-hover); }
.tdw-root .tdw-btn:disabled { opacity: 0.5; cursor: default; }
.tdw-root .tdw-btn:focus-visible, .tdw-root .tdw-input:focus-visible, .tdw-root .tdw-select:focus-visible,
.tdw-root .tdw-scatter-stage:focus-visible, .tdw-root .tdw-curve-svg:focus-visible {
  outline: 2px solid var(--tdw-accent); outline-offset: 1px;
}
.tdw-root .tdw-btn-primary { background: var(--tdw-accent); color: var(--tdw-accent-fg, #fff); border-color: var(--tdw-accent); font-weight: 600; padding: 4px 14px; }
.tdw-root .tdw-btn-primary:hover:not(:disabled) { background: var(--tdw-accent); filter: brightness(1.08); }
.tdw-root .tdw-btn-icon { padding: 0 6px; font-size: 16px; line-height: 1.2; border: none; background: transparent; }
.tdw-root .tdw-segmented { display: inline-flex; }
.tdw-root .tdw-segmented .tdw-btn { border-radius: 0; margin-left: -1px; }
.tdw-root .tdw-segmented .tdw-btn:first-child { border-radius: 4px 0 0 4px; margin-left: 0; }
.tdw-root .tdw-segmented .tdw-btn:last-child { border-radius: 0 4px 4px 0; }
.tdw-root .tdw-btn.tdw-active { background: var(--tdw-accent); color: var(--tdw-accent-fg, #fff); border-color: var(--tdw-accent); }
.tdw-root .tdw-input, .tdw-root .tdw-select, .tdw-root .tdw-textarea {
  font: inherit; font-size: 12px; color: var(--tdw-fg); background: var(--tdw-bg);
  border: 1px solid var(--tdw-border); border-radius: 4px; padding: 3px 6px; min-width: 0;
}
.tdw-root .tdw-select-small { padding: 1px 4px; }
.tdw-root .tdw-input-num { width: 72px; }
.tdw-root .tdw-inline-label { font-size: 12px; color: var(--tdw-muted); display: inline-flex; align-items: center; gap: 4px; }
.tdw-root .tdw-badge {
  font-size: 11px; padding: 1px 7px; border-radius: 9px; border: 1px solid var(--tdw-border);
  color: var(--tdw-muted); white-space: nowrap;
}
.tdw-root .tdw-badge[data-kind="umap"] { color: var(--tdw-accent); border-color: var(--tdw-accent); }

/* Tooltip */
.tdw-root .tdw-tooltip {
  position: absolute; left: 0; top: 0; z-index: 10; pointer-events: none; max-width: 380px;
  background: var(--tdw-panel); color: var(--tdw-fg); border: 1px solid var(--tdw-border);
  border-radius: 5px; padding: 6px 8px; box-shadow: 0 4px 14px var(--tdw-shadow); font-size: 12px;
}
.tdw-root .tdw-tip-context { font-family: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace); white-space: pre-wrap; word-break: break-word; margin-bottom: 3px; }
.tdw-root .tdw-ctx-token { color: var(--tdw-muted); }
.tdw-root .tdw-ctx-more { color: var(--tdw-muted); opacity: 0.7; }
.tdw-root .tdw-ctx-focus { color: var(--tdw-fg); font-weight: 700; background: var(--tdw-focus); border-radius: 2px; outline: 1px solid var(--tdw-border); }
.tdw-root .tdw-tip-line { color: var(--tdw-fg); white-space: nowrap; }

/* Curve */
.tdw-root .tdw-curve-body { position: relative; width: 100%; }
.tdw-root .tdw-curve-svg { display: block; width: 100%; height: auto; touch-action: none; user-select: none; }
.tdw-root .tdw-c-hit { cursor: crosshair; }
.tdw-root .tdw-c-legend-item { cursor: pointer; }

/* Scatter */
.tdw-root .tdw-scatter-stage { position: relative; width: 100%; overflow: hidden; touch-action: none; cursor: crosshair; border-radius: 4px; }
.tdw-root .tdw-scatter-stage[data-mode="pan"] { cursor: grab; }
.tdw-root .tdw-scatter-gl, .tdw-root .tdw-scatter-overlay { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.tdw-root .tdw-scatter-legend {
  position: absolute; left: 8px; bottom: 8px; display: flex; align-items: center; gap: 6px;
  font-size: 11px; color: var(--tdw-fg); background: var(--tdw-panel); opacity: 0.92;
  border: 1px solid var(--tdw-border); border-radius: 4px; padding: 2px 6px; pointer-events: none;
}
.tdw-root .tdw-legend-bar { width: 90px; height: 8px; border-radius: 2px; }
.tdw-root .tdw-slider-label { display: flex; align-items: center; gap: 8px; flex: 1 1 240px; min-width: 200px; }
.tdw-root .tdw-slider { flex: 1; accent-color: var(--tdw-accent); }
.tdw-root .tdw-layer-text { font-variant-numeric: tabular-nums; white-space: nowrap; min-width: 86px; }

/* Heatmap */
.tdw-root .tdw-heatmap-wrap { position: relative; width: 100%; }
.tdw-root .tdw-heatmap-canvas { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.tdw-root .tdw-heatmap-scroller { position: absolute; inset: 0; overflow-y: auto; overflow-x: hidden; cursor: pointer; }
.tdw-root .tdw-heatmap-spacer { width: 1px; }

/* Metrics: essential numbers always readable (cards when narrow), the rest on demand */
.tdw-root .tdw-metrics-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 8px; }
.tdw-root .tdw-card { border: 1px solid var(--tdw-border); border-left: 4px solid var(--tdw-accent); border-radius: 4px; padding: 6px 8px; min-width: 0; }
.tdw-root .tdw-card-title { font-weight: 600; overflow-wrap: anywhere; }
.tdw-root .tdw-card-sub { font-size: 11px; color: var(--tdw-muted); overflow-wrap: anywhere; }
.tdw-root .tdw-card dl { display: grid; grid-template-columns: minmax(0, max-content) minmax(0, 1fr); gap: 2px 10px; margin: 6px 0 4px; font-size: 12px; }
.tdw-root .tdw-card dt { color: var(--tdw-muted); }
.tdw-root .tdw-card dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.tdw-root .tdw-verdict { display: inline-block; max-width: 100%; font-size: 11px; padding: 0 6px; border-radius: 8px; border: 1px solid var(--tdw-border); overflow-wrap: anywhere; }
.tdw-root .tdw-verdict[data-verdict="expansion-contraction"] { color: var(--tdw-accent); border-color: var(--tdw-accent); }
.tdw-root .tdw-metrics-more { margin-top: 6px; font-size: 12px; }
.tdw-root .tdw-metrics-more summary { cursor: pointer; color: var(--tdw-muted); }
.tdw-root .tdw-table-wrap { overflow-x: auto; }
.tdw-root .tdw-table { border-collapse: collapse; width: 100%; font-size: 12px; }
.tdw-root .tdw-table th { text-align: left; font-weight: 600; color: var(--tdw-muted); border-bottom: 1px solid var(--tdw-border); padding: 3px 8px; white-space: nowrap; }
.tdw-root .tdw-table td { border-bottom: 1px solid var(--tdw-grid); padding: 3px 8px; }
.tdw-root .tdw-table td.tdw-num { text-align: right; font-variant-numeric: tabular-nums; }

/* Controls */
.tdw-root .tdw-controls-grid { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: flex-end; }
.tdw-root .tdw-field { display: flex; flex-direction: column; gap: 2px; min-width: 0; }
.tdw-root .tdw-field-label { font-size: 11px; color: var(--tdw-muted); text-transform: uppercase; letter-spacing: 0.03em; }
.tdw-root .tdw-field .tdw-input[type="text"] { width: 240px; max-width: 100%; }
.tdw-root .tdw-check { display: inline-flex; align-items: center; gap: 4px; font-size: 12px; margin-top: 2px; }
.tdw-root .tdw-field-error { font-size: 11px; color: var(--tdw-error-fg); min-height: 0; max-width: 160px; }
.tdw-root .tdw-field-error:empty { display: none; }
.tdw-root .tdw-input.tdw-invalid { border-color: var(--tdw-error-fg); outline: 1px solid var(--tdw-error-fg); }
.tdw-root .tdw-actions { display: flex; gap: 6px; margin-left: auto; }
.tdw-root .tdw-prompt-input { margin-top: 8px; font-size: 12px; }
.tdw-root .tdw-prompt-input summary { cursor: pointer; color: var(--tdw-muted); }
.tdw-root .tdw-textarea { display: block; width: 100%; margin: 6px 0; resize: vertical; font-family: var(--jp-code-font-family, ui-monospace, monospace); }
.tdw-root .tdw-row { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.tdw-root .tdw-file { font-size: 12px; color: var(--tdw-muted); }
.tdw-root .tdw-status-row { display: flex; align-items: center; gap: 10px; margin-top: 8px; flex-wrap: wrap; }
.tdw-root .tdw-status { font-weight: 600; min-width: 90px; }
.tdw-root .tdw-status-error { color: var(--tdw-error-fg); }
.tdw-root .tdw-status-done { color: var(--tdw-accent); }
.tdw-root .tdw-progress { flex: 1 1 160px; max-width: 360px; height: 6px; border-radius: 3px; background: var(--tdw-grid); overflow: hidden; }
.tdw-root .tdw-progress-bar { height: 100%; width: 0; background: var(--tdw-accent); transition: width 0.2s linear; }
.tdw-root .tdw-error {
  display: flex; align-items: flex-start; gap: 8px; margin-top: 8px; padding: 6px 8px; border-radius: 4px;
  background: var(--tdw-error-bg); color: var(--tdw-error-fg); border: 1px solid var(--tdw-error-fg);
}
.tdw-root .tdw-error-text { flex: 1; white-space: pre-wrap; word-break: break-word; }
.tdw-root .tdw-error .tdw-btn-icon { color: var(--tdw-error-fg); }

/* Stale results (after an error, until new results arrive) */
.tdw-root .tdw-stale-note {
  display: none; font-size: 12px; color: var(--tdw-error-fg); background: var(--tdw-error-bg);
  border: 1px dashed var(--tdw-error-fg); border-radius: 4px; padding: 2px 8px; margin-bottom: 6px;
}
.tdw-root .tdw-view.tdw-stale > .tdw-stale-note { display: block; }
.tdw-root .tdw-view.tdw-stale > :not(.tdw-stale-note):not(.tdw-view-header) { opacity: 0.45; filter: grayscale(0.8); }

/* Explorer layout */
.tdw-root .tdw-explorer {
  display: grid; gap: 10px; width: 100%;
  grid-template-columns: minmax(0, 1fr) minmax(0, 1.15fr);
  grid-template-areas: "controls controls" "left right" "bottom bottom";
}
.tdw-root .tdw-explorer.tdw-narrow { grid-template-columns: minmax(0, 1fr); grid-template-areas: "controls" "left" "right" "bottom"; }
.tdw-root .tdw-area { min-width: 0; display: flex; flex-direction: column; gap: 10px; }
.tdw-root .tdw-area-controls { grid-area: controls; }
.tdw-root .tdw-area-left { grid-area: left; }
.tdw-root .tdw-area-right { grid-area: right; }
.tdw-root .tdw-area-bottom { grid-area: bottom; }
.tdw-root .tdw-unknown { color: var(--tdw-error-fg); padding: 8px; }
.tdw-root .tdw-sweep-panels { display: flex; flex-wrap: wrap; gap: 8px; }
.tdw-root .tdw-sweep-panels svg { flex: 1 1 320px; max-width: 520px; height: auto; }
.tdw-root .tdw-sweep text { fill: var(--tdw-fg); font-size: 10px; }
.tdw-root .tdw-sweep-legend { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0; }
.tdw-root .tdw-sweep-item { background: none; color: var(--tdw-fg); border: 1px solid var(--tdw-border, #ccc); padding: 1px 6px; cursor: pointer; font: inherit; }
.tdw-root .tdw-sweep-item.tdw-selected { font-weight: 600; }
`;

const injected = new WeakSet<Node>();

/** Inject the stylesheet once into the document or shadow root that will hold `el`. */
export function ensureStyles(el: HTMLElement): void {
  const root = el.getRootNode();
  const doc = el.ownerDocument;
  const isShadow = typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot;
  const target: Node = isShadow ? root : doc;
  if (injected.has(target)) return;
  const container: ParentNode | null = isShadow ? (root as ShadowRoot) : doc.head ?? doc.documentElement;
  if (!container) return;
  let style = container.querySelector<HTMLStyleElement>("style[data-tdw-styles]");
  if (!style) {
    style = doc.createElement("style");
    style.setAttribute("data-tdw-styles", STYLE_VERSION);
    container.appendChild(style);
  }
  if (style.getAttribute("data-tdw-styles") !== STYLE_VERSION || style.textContent !== CSS) {
    // A newer bundle in the same page (re-executed cell) replaces the older rules.
    style.setAttribute("data-tdw-styles", STYLE_VERSION);
    style.textContent = CSS;
  }
  injected.add(target);
}
