"""Execute the reader-facing notebooks and write rendered HTML copies to docs/notebooks/.

A lecturer can then read the teaching material, with every figure and number, without
running anything. Usage (from the repository root)::

    python scripts/render_notebooks.py                 # teaching, its key, quickstart
    python scripts/render_notebooks.py teaching.ipynb  # just one
    python scripts/render_notebooks.py --executed DIR  # reuse executed copies in DIR

``--executed`` takes the outputs from copies of the notebooks executed earlier (for instance
by the test suite or nbclient), provided every code cell's source is identical to the stored
notebook's; prose edits since then are picked up from the stored notebook.

The notebooks run on the offline bundled model, so this works without internet. Widget
states are not embedded (they would add megabytes and need a live kernel to mean anything):
the Explorer appears as a placeholder in the HTML, while everything the quickstart reads back
from Python is there as text. Figures are PNG at the notebooks' own modest resolution.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
DEFAULT = ("teaching.ipynb", "teaching_key.ipynb", "quickstart.ipynb")
#: A single cell may run this long (seconds) before the render fails.
CELL_TIMEOUT_S = 900


def _with_outputs(notebook: Any, executed: Any, name: str) -> None:
    """Copy the outputs of an executed copy onto the stored notebook, code cell by code cell."""
    mine = [cell for cell in notebook.cells if cell.cell_type == "code"]
    theirs = [cell for cell in executed.cells if cell.cell_type == "code"]
    if [c.source for c in mine] != [c.source for c in theirs]:
        raise SystemExit(f"{name}: the executed copy's code differs from the notebook; re-execute")
    for cell, done in zip(mine, theirs, strict=True):
        cell.outputs, cell.execution_count = done.outputs, done.execution_count


def render(name: str, out_dir: Path = OUT, executed_dir: Path | None = None) -> Path:
    """Execute notebooks/<name> (or reuse an executed copy) and write <out_dir>/<stem>.html."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    started = time.perf_counter()
    if executed_dir is not None:
        _with_outputs(notebook, nbformat.read(executed_dir / name, as_version=4), name)
    else:
        client = nbclient.NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=CELL_TIMEOUT_S,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
    elapsed = time.perf_counter() - started
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    if errors:
        raise SystemExit(f"{name}: a cell failed ({errors[0].ename}); not rendering it")
    notebook.metadata.pop("widgets", None)  # no embedded widget state
    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": name}})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (Path(name).stem + ".html")
    target.write_text(body, encoding="utf-8")
    size_kb = target.stat().st_size / 1024
    how = "outputs reused" if executed_dir is not None else f"executed in {elapsed:.0f} s"
    print(f"{name}: {how} -> {target.relative_to(ROOT)} ({size_kb:.0f} KiB)")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT), help="notebooks to render")
    parser.add_argument(
        "--executed", type=Path, default=None, help="folder of executed copies to take outputs from"
    )
    args = parser.parse_args(argv)
    for name in args.names:
        render(name, executed_dir=args.executed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
