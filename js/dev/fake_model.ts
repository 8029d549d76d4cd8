// A stand-in for the anywidget model (get / set / on / off / save_changes / send) so views can be
// rendered in unit tests and in the standalone harness page without Jupyter.

import { LocalModel } from "../src/local_model";

export class FakeModel extends LocalModel {
  /** The trait values at each save_changes call. */
  readonly saved: Array<Record<string, unknown>> = [];
  /** Called after every save_changes (a harness can play the Python side here). */
  onSave: ((model: FakeModel) => void) | null = null;
  /** Called after every send. */
  onSend: ((content: unknown, model: FakeModel) => void) | null = null;

  save_changes(): void {
    super.save_changes();
    this.saved.push({ ...this.state });
    this.onSave?.(this);
  }

  send(content: unknown): void {
    super.send(content);
    this.onSend?.(content, this);
  }
}
