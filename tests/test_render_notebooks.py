"""scripts/render_notebooks.py: outputs reused only from an executed copy of the same code."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "render_notebooks.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("render_notebooks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(code: str, printed: str | None = None) -> Any:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    if printed is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        cell.execution_count = 1
    notebook.cells = [nbformat.v4.new_markdown_cell("prose"), cell]
    return notebook


def test_outputs_are_copied_when_the_code_matches() -> None:
    stored, executed = _notebook("print(1 + 1)"), _notebook("print(1 + 1)", printed="2\n")
    _script()._with_outputs(stored, executed, "toy.ipynb")
    assert stored.cells[1].outputs[0]["text"] == "2\n"
    assert stored.cells[1].execution_count == 1


def test_outputs_of_other_code_are_refused() -> None:
    stored, executed = _notebook("print(1 + 2)"), _notebook("print(1 + 1)", printed="2\n")
    with pytest.raises(SystemExit, match="differs"):
        _script()._with_outputs(stored, executed, "toy.ipynb")
    assert stored.cells[1].outputs == []
