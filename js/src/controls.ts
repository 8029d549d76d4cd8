// The controls: model, prompts, estimator and cloud choices, Run / Cancel, progress and errors.
// Inputs set their trait and save; buttons and prompt uploads send custom messages to Python.

import type { View, ViewContext } from "./context";
import { button, h, syncChildren } from "./dom";
import { getBool, getInt, getNumber, getString, getStringList, Subscriptions } from "./model";

let instances = 0;

/** Largest prompt file read in the browser (larger files should be loaded from Python). */
export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

/** "1 h 02 min", "3 min 05 s", "12 s"; "" when unknown (negative). */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/**
 * Parse a typed positive integer ("17", " 17 "); an error message instead when it is not one.
 * An empty field is allowed for `scale` (it means "the estimator's default").
 */
export function parsePositiveInt(text: string, allowEmpty: boolean): { value: number | null; error: string } {
  const t = text.trim();
  if (t === "") return allowEmpty ? { value: null, error: "" } : { value: null, error: "enter a whole number ≥ 1" };
  if (!/^\d+$/.test(t)) return { value: null, error: "enter a whole number ≥ 1" };
  const value = Number(t);
  if (!Number.isSafeInteger(value) || value < 1) return { value: null, error: "enter a whole number ≥ 1" };
  return { value, error: "" };
}

/**
 * What the progress line says about time. An ETA belongs to the stage that reported it: it is
 * shown only while that stage runs and while it is above half a second (a stage that never
 * reports one, or a stale 0 from the previous stage, shows the time spent in the stage instead).
 */
export function timeText(busy: boolean, eta: number, etaStage: string, stage: string, elapsedSeconds: number): string {
  if (!busy) return "";
  if (etaStage === stage && Number.isFinite(eta) && eta >= 0.5) return `ETA ${formatEta(eta)}`;
  if (elapsedSeconds >= 1) return `${formatEta(elapsedSeconds)} in this stage`;
  return "";
}

/** Fill a select with choices, keeping the current value selectable even when not listed. */
export function syncOptions(select: HTMLSelectElement, choices: string[], value: string): void {
  const list = value && !choices.includes(value) ? [...choices, value] : choices;
  const doc = select.ownerDocument;
  const options = syncChildren(select, list.length, () => h(doc, "option"));
  list.forEach((c, i) => {
    if (options[i].value !== c) options[i].value = c;
    if (options[i].textContent !== c) options[i].textContent = c;
  });
  if (select.value !== value) select.value = value;
}

export class ControlsView implements View {
  readonly el: HTMLDivElement;
  private readonly subs: Subscriptions;
  private readonly modelInput: HTMLInputElement;
  private readonly modelList: HTMLDataListElement;
  private readonly promptSelect: HTMLSelectElement;
  private readonly shuffled: HTMLInputElement;
  private readonly estimator: HTMLSelectElement;
  private readonly k: HTMLInputElement;
  private readonly scale: HTMLInputElement;
  private readonly cloud: HTMLSelectElement;
  private readonly gaussian: HTMLInputElement;
  private readonly numberErrors: Record<"k" | "scale", HTMLSpanElement>;
  /** Numeric fields with a typed, uncommitted value: never overwritten by a trait update. */
  private readonly dirty = new Set<HTMLInputElement>();
  private etaStage = "";
  private stage = "";
  private stageStart = 0;
  private readonly run: HTMLButtonElement;
  private readonly cancel: HTMLButtonElement;
  private readonly textarea: HTMLTextAreaElement;
  private readonly usePasted: HTMLButtonElement;
  private readonly file: HTMLInputElement;
  private readonly note: HTMLSpanElement;
  private readonly statusText: HTMLSpanElement;
  private readonly progress: HTMLDivElement;
  private readonly progressBar: HTMLDivElement;
  private readonly rate: HTMLSpanElement;
  private readonly eta: HTMLSpanElement;
  private readonly errorBox: HTMLDivElement;
  private readonly errorText: HTMLDivElement;
  private dismissedError = "";

  constructor(private readonly ctx: ViewContext) {
    const doc = ctx.doc;
    const model = ctx.model;
    this.subs = new Subscriptions(model);
    const id = `tdw-${++instances}`;
    this.el = h(doc, "div", "tdw-view tdw-controls");
    this.el.dataset.view = "controls";

    const field = (label: string, control: HTMLElement, extra?: HTMLElement): HTMLDivElement => {
      const wrap = h(doc, "div", "tdw-field");
      const span = h(doc, "span", "tdw-field-label");
      span.textContent = label;
      if (!control.getAttribute("aria-label")) control.setAttribute("aria-label", label);
      wrap.append(span, control);
      if (extra) wrap.appendChild(extra);
      return wrap;
    };
    const grid = h(doc, "div", "tdw-controls-grid");
    this.modelInput = h(doc, "input", "tdw-input", {
      type: "text",
      list: `${id}-models`,
      placeholder: "alias, hub id, folder or .gguf",
      spellcheck: "false",
      autocomplete: "off",
    });
    this.modelList = h(doc, "datalist", "", { id: `${id}-models` });
    this.promptSelect = h(doc, "select", "tdw-select", { "aria-label": "Prompt set" });
    this.shuffled = h(doc, "input", "", { type: "checkbox" });
    const shuffledLabel = h(doc, "label", "tdw-check", { title: "Shuffle the words of each prompt (control)" });
    const shuffledText = h(doc, "span");
    shuffledText.textContent = "shuffled control";
    shuffledLabel.append(this.shuffled, shuffledText);
    this.estimator = h(doc, "select", "tdw-select", { "aria-label": "Estimator" });
    this.k = h(doc, "input", "tdw-input tdw-input-num", { type: "number", min: "1", step: "1", "aria-label": "k" });
    this.scale = h(doc, "input", "tdw-input tdw-input-num", { type: "number", min: "1", step: "1", "aria-label": "scale" });
    this.cloud = h(doc, "select", "tdw-select", { "aria-label": "Cloud" });
    this.gaussian = h(doc, "input", "", { type: "checkbox" });
    const gaussianLabel = h(doc, "label", "tdw-check", {
      title: "Also draw the curve of Gaussian points of the same size and spread (a null control, dashed)",
    });
    const gaussianText = h(doc, "span");
    gaussianText.textContent = "Gaussian control";
    gaussianLabel.append(this.gaussian, gaussianText);
    this.numberErrors = {
      k: h(doc, "span", "tdw-field-error", { role: "status" }),
      scale: h(doc, "span", "tdw-field-error", { role: "status" }),
    };
    this.run = button(doc, "Run", "Run the analysis with these settings", "tdw-btn tdw-btn-primary");
    this.cancel = button(doc, "Cancel", "Cancel the running analysis", "tdw-btn");
    const actions = h(doc, "div", "tdw-actions");
    actions.append(this.run, this.cancel);
    grid.append(
      field("Model", this.modelInput, this.modelList),
      field("Prompts", this.promptSelect, shuffledLabel),
      field("Estimator", this.estimator),
      field("k", this.k, this.numberErrors.k),
      field("Scale", this.scale, this.numberErrors.scale),
      field("Cloud", this.cloud, gaussianLabel),
      actions,
    );

    const details = h(doc, "details", "tdw-prompt-input");
    const summary = h(doc, "summary");
    summary.textContent = "Paste or upload prompts";
    this.textarea = h(doc, "textarea", "tdw-textarea", {
      rows: "4",
      placeholder: "One prompt per line (a blank line separates multi-line prompts)",
      spellcheck: "false",
    });
    const row = h(doc, "div", "tdw-row");
    this.usePasted = button(doc, "Use pasted prompts", "Send the pasted text as the prompt set");
    this.file = h(doc, "input", "tdw-file", {
      type: "file",
      accept: ".txt,.text,.md,.jsonl,.json,.csv,.tsv",
      "aria-label": "Upload a prompt file",
    });
    this.note = h(doc, "span", "tdw-muted");
    row.append(this.usePasted, this.file, this.note);
    details.append(summary, this.textarea, row);

    const statusRow = h(doc, "div", "tdw-status-row");
    this.statusText = h(doc, "span", "tdw-status");
    this.progress = h(doc, "div", "tdw-progress", { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" });
    this.progressBar = h(doc, "div", "tdw-progress-bar");
    this.progress.appendChild(this.progressBar);
    this.rate = h(doc, "span", "tdw-muted");
    this.eta = h(doc, "span", "tdw-muted");
    statusRow.append(this.statusText, this.progress, this.rate, this.eta);

    this.errorBox = h(doc, "div", "tdw-error", { role: "alert" });
    this.errorText = h(doc, "div", "tdw-error-text");
    const dismiss = button(doc, "×", "Dismiss", "tdw-btn tdw-btn-icon");
    this.errorBox.append(this.errorText, dismiss);

    this.el.append(grid, details, statusRow, this.errorBox);

    // Inputs -> traits.
    const setAndSave = (name: string, value: unknown): void => {
      model.set(name, value);
      model.save_changes();
    };
    this.subs.dom(this.modelInput, "change", () => setAndSave("model_ref", this.modelInput.value.trim()));
    this.subs.dom(this.promptSelect, "change", () => setAndSave("prompt_set", this.promptSelect.value));
    this.subs.dom(this.shuffled, "change", () => setAndSave("shuffled", this.shuffled.checked));
    this.subs.dom(this.estimator, "change", () => setAndSave("estimator", this.estimator.value));
    this.subs.dom(this.cloud, "change", () => setAndSave("cloud", this.cloud.value));
    this.subs.dom(this.gaussian, "change", () => {
      const others = getStringList(model, "controls").filter((c) => c !== "gaussian");
      setAndSave("controls", this.gaussian.checked ? [...others, "gaussian"] : others);
    });
    for (const [input, name] of [
      [this.k, "k"],
      [this.scale, "scale"],
    ] as const) {
      // Typing marks the field dirty (kept through other trait updates); Enter and blur commit.
      this.subs.dom(input, "input", () => {
        this.dirty.add(input);
        this.showNumberError(name, parsePositiveInt(input.value, name === "scale").error);
      });
      this.subs.dom(input, "keydown", (event: KeyboardEvent) => {
        // The notebook must not see Enter / Escape (it would run the cell or leave edit mode).
        if (event.key === "Enter") {
          event.preventDefault();
          event.stopPropagation();
          this.commitNumber(input, name);
        } else if (event.key === "Escape") {
          event.stopPropagation();
          this.dirty.delete(input);
          this.showNumberError(name, "");
          this.updateEstimator();
        }
      });
      this.subs.dom(input, "change", () => this.commitNumber(input, name));
      this.subs.dom(input, "blur", () => this.commitNumber(input, name));
    }
    this.subs.dom(this.run, "click", () => {
      // Commit what was typed without pressing enter.
      this.commitNumber(this.k, "k");
      this.commitNumber(this.scale, "scale");
      const typed = this.modelInput.value.trim();
      if (typed !== getString(model, "model_ref")) setAndSave("model_ref", typed);
      model.send({ type: "run" });
    });
    this.subs.dom(this.cancel, "click", () => model.send({ type: "cancel" }));
    this.subs.dom(this.usePasted, "click", () => {
      const text = this.textarea.value;
      if (text.trim().length === 0) {
        this.note.textContent = "Nothing to send: paste some prompts first.";
        return;
      }
      model.send({ type: "prompts_text", text });
      this.note.textContent = "Pasted prompts sent.";
    });
    this.subs.dom(this.file, "change", () => void this.upload());
    this.subs.dom(dismiss, "click", () => {
      this.dismissedError = getString(model, "error");
      this.errorBox.hidden = true;
      setAndSave("error", "");
    });

    // Traits -> inputs.
    this.subs.traits(["model_ref", "model_choices"], () => this.updateModel());
    this.subs.traits(["prompt_set", "prompt_choices", "shuffled"], () => this.updatePrompts());
    this.subs.traits(["estimator", "estimator_choices", "k", "scale", "cloud", "cloud_choices", "controls"], () =>
      this.updateEstimator(),
    );
    this.etaStage = getString(model, "status");
    // An ETA belongs to the stage that was running when it arrived.
    this.subs.traits(["eta_seconds"], () => {
      this.etaStage = getString(model, "status");
    });
    this.subs.traits(["status", "progress", "tokens_per_second", "eta_seconds", "busy"], () => this.updateStatus());
    this.subs.traits(["error"], () => this.updateError());
    this.updateModel();
    this.updatePrompts();
    this.updateEstimator();
    this.updateStatus();
    this.updateError();
    const win = doc.defaultView;
    if (win) {
      const clock = win.setInterval(() => {
        if (getBool(model, "busy")) this.updateStatus();
      }, 1000);
      this.subs.add(() => win.clearInterval(clock));
    }
  }

  private showNumberError(name: "k" | "scale", message: string): void {
    const input = name === "k" ? this.k : this.scale;
    this.numberErrors[name].textContent = message;
    input.classList.toggle("tdw-invalid", message.length > 0);
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /** Commit a typed number: set and save the trait when valid, else keep it and say why. */
  private commitNumber(input: HTMLInputElement, name: "k" | "scale"): void {
    if (!this.dirty.has(input)) return;
    const { value, error } = parsePositiveInt(input.value, name === "scale");
    this.showNumberError(name, error);
    if (error) return; // the typed text stays, marked invalid, until corrected or Escape
    this.dirty.delete(input);
    const model = this.ctx.model;
    const next = value ?? 0;
    if (getInt(model, name, 0) !== next) {
      model.set(name, next);
      model.save_changes();
    }
  }

  private async upload(): Promise<void> {
    const file = this.file.files?.[0];
    if (!file) return;
    if (file.size > MAX_UPLOAD_BYTES) {
      this.note.textContent = `${file.name} is larger than 50 MB: load it from Python instead.`;
      return;
    }
    try {
      const text = await file.text();
      this.ctx.model.send({ type: "prompts_file", name: file.name, text });
      this.note.textContent = `${file.name} sent.`;
    } catch (err) {
      this.note.textContent = `Could not read ${file.name}: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      this.file.value = "";
    }
  }

  private updateModel(): void {
    const model = this.ctx.model;
    const value = getString(model, "model_ref");
    // Do not overwrite what the user is typing.
    if (this.ctx.doc.activeElement !== this.modelInput && this.modelInput.value !== value) this.modelInput.value = value;
    const doc = this.ctx.doc;
    const choices = getStringList(model, "model_choices");
    const options = syncChildren(this.modelList, choices.length, () => h(doc, "option"));
    choices.forEach((c, i) => {
      if (options[i].value !== c) options[i].value = c;
    });
  }

  private updatePrompts(): void {
    const model = this.ctx.model;
    syncOptions(this.promptSelect, getStringList(model, "prompt_choices"), getString(model, "prompt_set"));
    this.shuffled.checked = getBool(model, "shuffled");
  }

  private updateEstimator(): void {
    const model = this.ctx.model;
    syncOptions(this.estimator, getStringList(model, "estimator_choices"), getString(model, "estimator"));
    syncOptions(this.cloud, getStringList(model, "cloud_choices"), getString(model, "cloud"));
    const k = String(getInt(model, "k", 0) || "");
    const scale = String(getInt(model, "scale", 0) || "");
    // A typed value that is not committed yet is never replaced.
    if (!this.dirty.has(this.k) && this.k.value !== k) this.k.value = k;
    if (!this.dirty.has(this.scale) && this.scale.value !== scale) this.scale.value = scale;
    this.gaussian.checked = getStringList(model, "controls").includes("gaussian");
  }

  private updateStatus(): void {
    const model = this.ctx.model;
    const status = getString(model, "status", "idle") || "idle";
    const busy = getBool(model, "busy");
    const progress = Math.max(0, Math.min(1, getNumber(model, "progress", 0)));
    const tps = getNumber(model, "tokens_per_second", 0);
    const eta = getNumber(model, "eta_seconds", -1);
    this.statusText.textContent = status;
    this.statusText.className = `tdw-status tdw-status-${status.replace(/[^a-z]+/gi, "-")}`;
    this.progressBar.style.width = `${(progress * 100).toFixed(1)}%`;
    this.progress.setAttribute("aria-valuenow", String(Math.round(progress * 100)));
    this.progress.classList.toggle("tdw-progress-active", busy);
    this.rate.textContent = busy && tps > 0 ? `${Math.round(tps).toLocaleString()} tokens/s` : "";
    const now = Date.now();
    if (status !== this.stage) {
      this.stage = status;
      this.stageStart = now;
    }
    const text = timeText(busy, eta, this.etaStage, status, (now - this.stageStart) / 1000);
    if (this.eta.textContent !== text) this.eta.textContent = text;
    this.run.disabled = busy;
    this.cancel.disabled = !busy;
    this.el.dataset.status = status;
    this.el.classList.toggle("tdw-busy", busy);
  }

  private updateError(): void {
    const message = getString(this.ctx.model, "error");
    if (message !== this.dismissedError) this.dismissedError = "";
    this.errorText.textContent = message;
    this.errorBox.hidden = message.length === 0 || message === this.dismissedError;
  }

  dispose(): void {
    this.subs.dispose();
    this.el.remove();
  }
}
