// The metrics table (working-space dimension, its layer, final dimension, contraction ratio...),
// one row per model and estimator. Cells are set with textContent only.

import type { View, ViewContext } from "./context";
import { h, syncChildren } from "./dom";
import { getObjectList, Subscriptions } from "./model";
import { formatWithSpec } from "./scales";

export interface MetricsColumn {
  key: string;
  label: string;
  format: string | null;
}

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

export class MetricsView implements View {
  readonly el: HTMLDivElement;
  readonly table: HTMLTableElement;
  private readonly headRow: HTMLTableRowElement;
  private readonly body: HTMLTableSectionElement;
  private readonly empty: HTMLDivElement;
  private readonly subs: Subscriptions;

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    this.subs = new Subscriptions(ctx.model);
    this.el = h(doc, "div", "tdw-view tdw-metrics");
    this.el.dataset.view = "metrics";
    const header = h(doc, "div", "tdw-view-header");
    const title = h(doc, "div", "tdw-view-title");
    title.textContent = "Metrics";
    header.appendChild(title);
    const wrap = h(doc, "div", "tdw-table-wrap");
    this.table = h(doc, "table", "tdw-table");
    const thead = h(doc, "thead");
    this.headRow = h(doc, "tr");
    thead.appendChild(this.headRow);
    this.body = h(doc, "tbody");
    this.table.append(thead, this.body);
    wrap.appendChild(this.table);
    this.empty = h(doc, "div", "tdw-empty tdw-empty-inline");
    this.empty.textContent = "No metrics yet.";
    this.el.append(header, wrap, this.empty);
    this.subs.traits(["metrics", "metrics_columns"], () => this.update());
    this.update();
  }

  update(): void {
    const doc = this.ctx.doc;
    const rows = getObjectList(this.ctx.model, "metrics");
    const columns = resolveColumns(getObjectList(this.ctx.model, "metrics_columns"), rows);
    const ths = syncChildren(this.headRow, columns.length, () => h(doc, "th", "", { scope: "col" }));
    columns.forEach((c, i) => {
      if (ths[i].textContent !== c.label) ths[i].textContent = c.label;
    });
    const trs = syncChildren(this.body, rows.length, () => h(doc, "tr"));
    rows.forEach((row, r) => {
      const tds = syncChildren(trs[r], columns.length, () => h(doc, "td"));
      columns.forEach((c, i) => {
        const value = row[c.key];
        const text = formatWithSpec(value, c.format);
        if (tds[i].textContent !== text) tds[i].textContent = text;
        tds[i].classList.toggle("tdw-num", typeof value === "number");
      });
    });
    this.empty.hidden = rows.length > 0;
    this.table.hidden = rows.length === 0;
    this.el.dataset.rows = String(rows.length);
  }

  dispose(): void {
    this.subs.dispose();
    this.el.remove();
  }
}
