// The metrics (working-space dimension, its layer, final dimension, contraction ratio...), one
// entry per curve. The essential numbers with their intervals and the verdict are always
// readable: a compact table when there is room, one card per curve when the view is narrow;
// every column stays available under "All metrics". Cells are set with textContent only.

import type { View, ViewContext } from "./context";
import { h, observeSize, syncChildren } from "./dom";
import { getObjectList, Subscriptions } from "./model";
import { categoricalHex, formatWithSpec } from "./scales";
import { markStale } from "./stale";

export interface MetricsColumn {
  key: string;
  label: string;
  format: string | null;
}

/** Below this width (CSS pixels) the metrics show one card per curve instead of a table. */
export const CARD_WIDTH = 560;

/** The columns always shown (when present), in this order; the first column names the curve. */
export const ESSENTIAL_KEYS = ["verdict", "working_dimension", "working_layer", "final_dimension", "contraction_ratio"];

/** Columns from the `metrics_columns` trait, or from the first row's keys when it is empty. */
export function resolveColumns(columns: Array<Record<string, unknown>>, rows: Array<Record<string, unknown>>): MetricsColumn[] {
  const out: MetricsColumn[] = [];
  for (const c of columns) {
    if (typeof c.key !== "string") continue;
    out.push({
      key: c.key,
      label: typeof c.label === "string" ? c.label : c.key,
      format: typeof c.format === "string" ? c.format : null,
    });
  }
  if (out.length === 0 && rows.length > 0) {
    for (const key of Object.keys(rows[0])) out.push({ key, label: key, format: null });
  }
  return out;
}

/**
 * Split the columns into the name column, the essential ones and the rest. Without the known
 * keys (a custom table) the first four columns after the name are the essential ones.
 */
export function splitColumns(columns: MetricsColumn[]): { name: MetricsColumn | null; essential: MetricsColumn[]; rest: MetricsColumn[] } {
  if (columns.length === 0) return { name: null, essential: [], rest: [] };
  const [name, ...others] = columns;
  let essential = ESSENTIAL_KEYS.map((k) => others.find((c) => c.key === k)).filter((c): c is MetricsColumn => c !== undefined);
  if (essential.length === 0) essential = others.slice(0, 4);
  const rest = others.filter((c) => !essential.includes(c));
  return { name, essential, rest };
}

/** The header row and body of a table, created on first use. */
function tableParts(table: HTMLTableElement): { headRow: HTMLTableRowElement; body: HTMLTableSectionElement } {
  const doc = table.ownerDocument;
  let head = table.querySelector(":scope > thead");
  if (!head) head = table.appendChild(doc.createElement("thead"));
  let headRow = head.querySelector(":scope > tr");
  if (!headRow) headRow = head.appendChild(doc.createElement("tr"));
  let body = table.querySelector(":scope > tbody");
  if (!body) body = table.appendChild(doc.createElement("tbody"));
  return { headRow: headRow as HTMLTableRowElement, body: body as HTMLTableSectionElement };
}

export class MetricsView implements View {
  readonly el: HTMLDivElement;
  /** The compact table (wide) and its full counterpart under "All metrics". */
  readonly table: HTMLTableElement;
  readonly fullTable: HTMLTableElement;
  readonly cards: HTMLDivElement;
  private readonly tableWrap: HTMLDivElement;
  private readonly more: HTMLDetailsElement;
  private readonly empty: HTMLDivElement;
  private readonly subs: Subscriptions;
  private narrow = false;
  private laidOutWidth = 0;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    this.subs = new Subscriptions(ctx.model);
    this.el = h(doc, "div", "tdw-view tdw-metrics");
    this.el.dataset.view = "metrics";
    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Metrics";
    header.appendChild(title);
    this.tableWrap = h(doc, "div", "tdw-table-wrap");
    this.table = h(doc, "table", "tdw-table tdw-metrics-essential");
    this.tableWrap.appendChild(this.table);
    this.cards = h(doc, "div", "tdw-metrics-cards");
    this.more = h(doc, "details", "tdw-metrics-more");
    const summary = h(doc, "summary");
    summary.textContent = "All metrics";
    const fullWrap = h(doc, "div", "tdw-table-wrap");
    this.fullTable = h(doc, "table", "tdw-table tdw-metrics-full");
    fullWrap.appendChild(this.fullTable);
    this.more.append(summary, fullWrap);
    this.empty = h(doc, "div", "tdw-empty tdw-empty-inline");
    this.empty.textContent = "No metrics yet.";
    this.el.append(header, this.tableWrap, this.cards, this.more, this.empty);
    this.subs.traits(["metrics", "metrics_columns"], () => {
      this.laidOutWidth = 0; // new rows may fit differently
      this.layoutFor(this.el.clientWidth);
      this.update();
    });
    this.subs.add(observeSize(this.el, () => this.layoutFor(this.el.clientWidth)));
    this.subs.add(markStale(ctx.model, this.el, ["metrics"], () => getObjectList(ctx.model, "metrics").length > 0));
    this.update();
  }

  /**
   * Cards below CARD_WIDTH pixels or when the compact table would not fit without scrolling
   * (long labels, big numbers), the table otherwise. The size observer calls this.
   */
  layoutFor(width: number): void {
    if (width <= 0 || width === this.laidOutWidth) return;
    this.laidOutWidth = width;
    this.narrow = width < CARD_WIDTH;
    this.update();
    if (!this.narrow && this.tableWrap.scrollWidth > this.tableWrap.clientWidth + 1) {
      this.narrow = true;
      this.update();
    }
  }

  private fillTable(table: HTMLTableElement, columns: MetricsColumn[], rows: Array<Record<string, unknown>>): void {
    const doc = this.ctx.doc;
    const { headRow, body } = tableParts(table);
    const ths = syncChildren(headRow, columns.length, () => h(doc, "th", "", { scope: "col" }));
    columns.forEach((c, i) => {
      if (ths[i].textContent !== c.label) ths[i].textContent = c.label;
    });
    const trs = syncChildren(body, rows.length, () => h(doc, "tr"));
    rows.forEach((row, r) => {
      const tds = syncChildren(trs[r], columns.length, () => h(doc, "td"));
      columns.forEach((c, i) => {
        const value = row[c.key];
        const text = formatWithSpec(value, c.format);
        if (tds[i].textContent !== text) tds[i].textContent = text;
        tds[i].dataset.key = c.key;
        tds[i].classList.toggle("tdw-num", typeof value === "number" || /^[\d.-]/.test(text));
      });
    });
  }

  private fillCards(name: MetricsColumn | null, essential: MetricsColumn[], rows: Array<Record<string, unknown>>, colors: Map<string, string>): void {
    const doc = this.ctx.doc;
    const cards = syncChildren(this.cards, rows.length, () => h(doc, "div", "tdw-card"));
    rows.forEach((row, r) => {
      const card = cards[r];
      card.textContent = "";
      const label = name ? formatWithSpec(row[name.key], name.format) : `curve ${r + 1}`;
      const title = h(doc, "div", "tdw-card-title");
      title.textContent = label;
      const sub = h(doc, "div", "tdw-card-sub");
      sub.textContent = [row.model, row.estimator].filter((v) => typeof v === "string" && v.length > 0).join(" · ");
      const dl = h(doc, "dl");
      let intervals = false;
      for (const c of essential) {
        const dt = h(doc, "dt");
        // Short labels in the narrow card; the interval level is said once, below.
        const short = c.label.replace(/\s*\[95% CI\]\s*$/, "");
        intervals ||= short !== c.label;
        dt.textContent = short.replace(/^Working-space dim\.$/, "Working dim.");
        dt.title = c.label;
        const dd = h(doc, "dd");
        dd.dataset.key = c.key;
        const text = formatWithSpec(row[c.key], c.format);
        if (c.key === "verdict") {
          const badge = h(doc, "span", "tdw-verdict");
          badge.dataset.verdict = text;
          badge.textContent = text;
          dd.appendChild(badge);
        } else dd.textContent = text;
        dl.append(dt, dd);
      }
      const color = colors.get(label);
      if (color) card.style.borderLeftColor = color;
      card.append(title, sub, dl);
      if (intervals) {
        const foot = h(doc, "div", "tdw-card-sub");
        foot.textContent = "value [95% interval]";
        card.appendChild(foot);
      }
    });
  }

  update(): void {
    const model = this.ctx.model;
    const rows = getObjectList(model, "metrics");
    const columns = resolveColumns(getObjectList(model, "metrics_columns"), rows);
    const { name, essential, rest } = splitColumns(columns);
    const colors = new Map<string, string>();
    getObjectList(model, "curves").forEach((c, i) => {
      if (typeof c.label === "string") colors.set(c.label, typeof c.color === "string" && c.color ? c.color : categoricalHex(i));
    });
    const compact = name ? [name, ...essential] : essential;
    if (this.narrow) {
      this.fillCards(name, essential, rows, colors);
      syncChildren(tableParts(this.table).body, 0, () => h(this.ctx.doc, "tr"));
    } else {
      this.fillTable(this.table, compact, rows);
      syncChildren(this.cards, 0, () => h(this.ctx.doc, "div"));
    }
    this.fillTable(this.fullTable, columns, rows);
    const has = rows.length > 0;
    this.empty.hidden = has;
    this.tableWrap.hidden = !has || this.narrow;
    this.cards.hidden = !has || !this.narrow;
    this.more.hidden = !has || rest.length === 0;
    this.el.dataset.rows = String(rows.length);
    this.el.dataset.layout = this.narrow ? "cards" : "table";
  }

  dispose(): void {
    this.subs.dispose();
    this.el.remove();
  }
}
