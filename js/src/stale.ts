// Stale results: after an error the views keep what they showed (it is still useful), but grey
// it out with a note saying it predates the error, until new results for the view arrive.

import { h } from "./dom";
import { getObjectList, getString, Subscriptions, type WidgetModel } from "./model";

/** The note shown over stale results; names the model the old results belong to when known. */
export function staleText(model: WidgetModel): string {
  const curves = getObjectList(model, "curves");
  const owner = curves.map((c) => (typeof c.model === "string" ? c.model : "")).find((m) => m.length > 0);
  const what = owner ? `results of ${owner}` : "results";
  return `Stale: ${what} from before the error. Fix the settings and run again.`;
}

/**
 * Marks `view` (a `.tdw-view` element) stale when the `error` trait becomes non-empty while the
 * view shows data, and fresh again when one of `dataTraits` changes or a run ends with status
 * "done" and no error. Returns the cleanup.
 */
export function markStale(
  model: WidgetModel,
  view: HTMLElement,
  dataTraits: string[],
  hasData: () => boolean,
): () => void {
  const subs = new Subscriptions(model);
  const note = h(view.ownerDocument, "div", "tdw-stale-note", { role: "status" });
  const header = view.querySelector(":scope > .tdw-view-header");
  view.insertBefore(note, header ? header.nextSibling : view.firstChild);
  const set = (stale: boolean): void => {
    view.classList.toggle("tdw-stale", stale);
    view.dataset.stale = stale ? "1" : "0";
    const text = stale ? staleText(model) : "";
    if (note.textContent !== text) note.textContent = text;
  };
  const onError = (): void => {
    if (getString(model, "error").length > 0 && hasData()) set(true);
  };
  subs.traits(["error"], onError);
  subs.traits(dataTraits, () => set(false));
  // A run that finishes without error has made every result current, even one whose data did
  // not change (the same curve from the cache is not sent again).
  subs.traits(["status"], () => {
    if (getString(model, "status") === "done" && getString(model, "error").length === 0) set(false);
  });
  set(false);
  onError();
  return () => {
    subs.dispose();
    note.remove();
  };
}
