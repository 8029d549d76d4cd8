// Runtime of a standalone HTML export (tokendim_widgets.export.export_html): the same views as the
// notebook widget, driven by a static in-page model instead of a kernel.
//
// The exported page holds one `<script type="application/json" id="tdw-data">` element (the data,
// bulk arrays as base64 of little-endian float32 / int32 bytes) and this bundle inlined as a module
// script. `boot` decodes the data into a `StaticModel` and mounts the view. What the kernel does in
// a notebook, the static model does in the page:
//   * a change of `layer` (curve click or drag, the slider, a heatmap click) swaps in that layer's
//     projection, embedded for every layer, so the scatter moves to the new layer at once;
//   * selections (`selected_tokens`), hover and colouring are plain trait changes that every view
//     already follows;
//   * what needs Python (Run, Cancel, model / prompt / estimator inputs, pasted or uploaded
//     prompts) is disabled and hidden, with a "static export" note in their place.
// Nothing is fetched: the page works from file:// with the network off.

import { mount, type Rendered } from "./index";
import { LocalModel } from "./local_model";

/** id of the element that holds the export's JSON. */
export const DATA_ELEMENT_ID = "tdw-data";
/** id of the element the view is mounted into (created when the page has none). */
export const APP_ELEMENT_ID = "tdw-app";
/** The data layout this runtime reads (export.py writes the same string). */
export const EXPORT_FORMAT = "tokendim-static/1";

/** What export.py writes into the data element. */
export interface StaticExport {
  format: string;
  /** Plain JSON traits (curves, metrics, scalars...). */
  state: Record<string, unknown>;
  /** Binary traits: name -> base64 of the little-endian bytes. */
  buffers?: Record<string, string>;
  /**
   * Every layer's 2-D projection: base64 of float32, `kinds.length` blocks of `n_tokens * 2`
   * values (x, y interleaved, NaN = not shown), block `i` for layer `i`.
   */
  projections?: { kinds: string[]; n_tokens: number; data: string } | null;
}


/** Decode base64 (standard alphabet, padding optional) into bytes. */
export function decodeBase64(text: string): Uint8Array {
  const clean = text.replace(/[\s=]+/g, "");
  // atob is in every browser (and in Node >= 16); its binary string maps 1:1 to bytes.
  const binary = atob(clean);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The projections of every layer, as views into one decoded buffer (no copies). */
export class LayerProjections {
  constructor(
    readonly kinds: string[],
    readonly nTokens: number,
    private readonly bytes: Uint8Array,
  ) {
    const need = kinds.length * nTokens * 2 * 4;
    if (bytes.byteLength < need) {
      throw new Error(`projection data holds ${bytes.byteLength} bytes, ${need} expected`);
    }
  }

  get nLayers(): number {
    return this.kinds.length;
  }

  /** True when the layer has a projection (a kind other than ""). */
  has(layer: number): boolean {
    return Number.isInteger(layer) && layer >= 0 && layer < this.kinds.length && this.kinds[layer] !== "";
  }

  /** The layer's projection as the `projection` trait value (a DataView, like anywidget's). */
  view(layer: number): DataView {
    const size = this.nTokens * 2 * 4;
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + layer * size, size);
  }
}

/**
 * The WidgetModel of a standalone page: traits live in the page; `layer` changes bring that
 * layer's embedded projection; messages meant for Python are recorded and otherwise ignored.
 */
export class StaticModel extends LocalModel {
  constructor(
    initial: Record<string, unknown>,
    readonly projections: LayerProjections | null = null,
  ) {
    super(initial);
    const layer = this.state.layer;
    if (typeof layer === "number") Object.assign(this.state, this.projectionTraits(layer));
  }

  set(name: string, value: unknown): void {
    const values: Record<string, unknown> = { [name]: value };
    // In a notebook the kernel answers a layer change with that layer's projection; here it is
    // already in the page, so it arrives together with the layer.
    if (name === "layer" && typeof value === "number") Object.assign(values, this.projectionTraits(value));
    this.setMany(values);
  }

  private projectionTraits(layer: number): Record<string, unknown> {
    const p = this.projections;
    if (!p || !p.has(layer)) return {};
    return { projection: p.view(layer), projection_kind: p.kinds[layer], projection_layer: layer };
  }
}

/** Build the static model from an export's data. */
export function modelFromExport(data: StaticExport): StaticModel {
  if (!data || typeof data !== "object" || data.format !== EXPORT_FORMAT) {
    const found = data && typeof data === "object" ? String((data as { format?: unknown }).format) : typeof data;
    throw new Error(`not a tokendim export (format ${found}; this page reads ${EXPORT_FORMAT})`);
  }
  const state: Record<string, unknown> = { ...(data.state ?? {}) };
  for (const [name, text] of Object.entries(data.buffers ?? {})) {
    state[name] = dataView(decodeBase64(text));
  }
  let projections: LayerProjections | null = null;
  if (data.projections && data.projections.kinds.length > 0) {
    const p = data.projections;
    projections = new LayerProjections(p.kinds, p.n_tokens, decodeBase64(p.data));
  }
  return new StaticModel(state, projections);
}

/** The text of the note that replaces the controls that need Python. */
export const STATIC_NOTE =
  "Static export: computed with the settings above. Layers, selections and colouring stay " +
  "interactive; to change the model, prompts or estimator, run the analysis again in Python.";

/** Disable and hide what needs a kernel, and say why. */
export function freezeControls(root: HTMLElement): void {
  root.dataset.static = "1";
  for (const controls of Array.from(root.querySelectorAll<HTMLElement>(".tdw-controls"))) {
    controls.dataset.static = "1";
    const inputs = controls.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | HTMLButtonElement>(
      "input, select, textarea, button",
    );
    for (const input of Array.from(inputs)) {
      input.disabled = true;
      input.title = "static export";
    }
    for (const part of Array.from(controls.querySelectorAll<HTMLElement>(".tdw-prompt-input, .tdw-actions, .tdw-status-row, .tdw-error"))) {
      part.hidden = true;
    }
    const doc = controls.ownerDocument;
    const note = doc.createElement("div");
    note.className = "tdw-static-note";
    note.textContent = STATIC_NOTE;
    note.style.color = "var(--tdw-muted)";
    note.style.marginTop = "6px";
    note.style.fontSize = "12px";
    controls.appendChild(note);
  }
}

/** What `boot` leaves on `window.tdwStatic` (browser tests and debugging). */
export interface StaticPage {
  model: StaticModel;
  rendered: Rendered;
}

declare global {
  interface Window {
    tdwStatic?: StaticPage;
  }
}

/** Read the export in `doc`, mount its view and freeze the controls. */
export function boot(doc: Document = document): StaticPage {
  const dataEl = doc.getElementById(DATA_ELEMENT_ID);
  if (!dataEl) throw new Error(`no #${DATA_ELEMENT_ID} element in the page`);
  const data = JSON.parse(dataEl.textContent ?? "null") as StaticExport;
  const model = modelFromExport(data);
  let app = doc.getElementById(APP_ELEMENT_ID);
  if (!app) {
    app = doc.createElement("div");
    app.id = APP_ELEMENT_ID;
    doc.body.appendChild(app);
  }
  const rendered = mount(model, app);
  freezeControls(rendered.root);
  const page = { model, rendered };
  const win = doc.defaultView;
  if (win) win.tdwStatic = page;
  return page;
}

function showFailure(doc: Document, err: unknown): void {
  const box = doc.createElement("pre");
  box.className = "tdw-static-error";
  box.textContent = `tokendim-widgets: this export could not be shown: ${err instanceof Error ? err.message : String(err)}`;
  box.style.color = "#b42318";
  (doc.getElementById(APP_ELEMENT_ID) ?? doc.body).appendChild(box);
}

// Boot when loaded into an exported page (tests import the module without a data element).
if (typeof document !== "undefined" && document.getElementById(DATA_ELEMENT_ID)) {
  try {
    boot(document);
    document.body.dataset.tdwReady = "1";
  } catch (err) {
    document.body.dataset.tdwReady = "error";
    showFailure(document, err);
  }
}
