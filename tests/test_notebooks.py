"""The three notebooks: stored clean, and executed top to bottom on the offline models.

The execution tests are slow (they load SmolLM2 and MiniLM). They run in the order the
notebooks are listed: the quickstart extracts SmolLM2's hidden states into the test session's
cache (``TOKENDIM_CACHE_DIR``, set by ``tests/conftest.py`` and inherited by the kernels), and
the other two notebooks find them there.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = ("quickstart.ipynb", "paper_reproduction.ipynb", "teaching.ipynb")
#: Longest a single cell may run before the test fails (the slowest cells load a model and
#: run it, about a minute on two busy CPU cores).
CELL_TIMEOUT_S = 900


def _read(name: str) -> dict[str, Any]:
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code cell"
    for cell in code:
        assert cell.outputs == [], f"{name}: a cell was saved with its outputs"
        assert cell.execution_count is None, f"{name}: a cell was saved with an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_parses(name: str) -> None:
    for index, cell in enumerate(_read(name)["cells"]):
        if cell["cell_type"] == "code":
            try:
                ast.parse(_source(cell))
            except SyntaxError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{name}, cell {index}: {exc}")


def test_quickstart_ends_waiting_for_the_explorer() -> None:
    # Headless, the Explorer computes on a background thread: without a final wait the kernel
    # would be shut down before the last parameter change has been computed.
    code = [c for c in _read("quickstart.ipynb")["cells"] if c["cell_type"] == "code"]
    assert _source(code[-1]).strip().startswith("explorer.wait(")


def _require_offline_models(*aliases: str) -> None:
    from tokendim_widgets.models import ALIASES

    for alias in aliases:
        if ALIASES[alias].locate() is None:
            pytest.skip(f"{alias} is not installed ({ALIASES[alias].install_command})")


NEEDS = {
    "quickstart.ipynb": ("smollm2-135m",),
    "paper_reproduction.ipynb": ("smollm2-135m", "minilm-l6"),
    "teaching.ipynb": ("smollm2-135m",),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, record_property: Any) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _require_offline_models(*NEEDS[name])
    if name == "quickstart.ipynb":
        from tokendim_widgets.widgets.views import STATIC

        if not (STATIC / "widget.js").exists():
            pytest.skip("the front end is not built (npm run build in js/)")

    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    # "python3" is the kernel of this interpreter: jupyter_client runs a kernelspec whose
    # command is `python` with sys.executable, so the kernel sees this environment (and
    # TOKENDIM_CACHE_DIR, set for the test session).
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name} failed:\n{exc}")
    record_property("runtime_s", round(time.perf_counter() - started, 1))

    errors = [
        (index, output)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{name}: error output in cell(s) {[i for i, _ in errors]}"
    ran = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in ran), f"{name}: a cell did not run"
