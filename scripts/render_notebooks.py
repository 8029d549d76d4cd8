"""Execute the reader-facing notebooks and write rendered HTML copies to docs/notebooks/.

A lecturer can then read the teaching material, with every figure and number, without
running anything. Usage (from the repository root)::

    python scripts/render_notebooks.py                 # teaching, its key, quickstart
    python scripts/render_notebooks.py teaching.ipynb  # just one

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

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
DEFAULT = ("teaching.ipynb", "teaching_key.ipynb", "quickstart.ipynb")
#: A single cell may run this long (seconds) before the render fails.
CELL_TIMEOUT_S = 900


def render(name: str, out_dir: Path = OUT) -> Path:
    """Execute notebooks/<name> in a fresh kernel and write <out_dir>/<stem>.html."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    notebook.metadata.pop("widgets", None)  # no embedded widget state
    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": name}})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (Path(name).stem + ".html")
    target.write_text(body, encoding="utf-8")
    size_kb = target.stat().st_size / 1024
    print(f"{name}: executed in {elapsed:.0f} s -> {target.relative_to(ROOT)} ({size_kb:.0f} KiB)")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT), help="notebooks to render")
    args = parser.parse_args(argv)
    for name in args.names:
        render(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
