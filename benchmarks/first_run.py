"""The quickstart notebook's "Run All", timed fresh (empty cache folder) and warm.

Each run executes ``notebooks/quickstart.ipynb`` with nbclient in a new kernel (a fresh
process), with ``TOKENDIM_CACHE_DIR`` pointing at a cache folder: first an empty one (``fresh``:
the model is de-quantised and cached, the hidden states extracted), then the same folder again
(``warm``: model weights and hidden states cached). Prints the wall time of each run, from the
kernel's start to the last cell's end, and its slowest cells.

    python benchmarks/first_run.py [--notebook notebooks/quickstart.ipynb] [--warm-runs 2]

Targets on the 2-core reference machine: warm < 12 s, fresh < 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _seconds(cell: Any) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = dt.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def run_all(notebook: Path, cache_dir: Path, timeout: int) -> tuple[float, list[tuple[int, float]]]:
    """Seconds of one Run All in a new kernel, and the seconds of each code cell."""
    import nbclient
    import nbformat

    os.environ["TOKENDIM_CACHE_DIR"] = str(cache_dir)  # the kernel inherits it
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    total = time.perf_counter() - started
    cells = [(i, _seconds(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    return total, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "notebooks" / "quickstart.ipynb")
    parser.add_argument("--warm-runs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        runs = [("fresh", *run_all(args.notebook, cache, args.timeout))]
        for _ in range(args.warm_runs):
            runs.append(("warm", *run_all(args.notebook, cache, args.timeout)))
    for name, total, cells in runs:
        slowest = sorted(cells, key=lambda c: -c[1])[:3]
        detail = ", ".join(f"cell {i} {s:.1f} s" for i, s in slowest)
        print(f"{name:<6} {total:6.1f} s   (slowest: {detail})")


if __name__ == "__main__":
    main()
