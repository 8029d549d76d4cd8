"""The notebooks: stored clean, executed top to bottom on the offline models, and honest.

The execution tests are slow (they load SmolLM2 and MiniLM). Each notebook is executed once
per test module (a module-scoped fixture), and the time check, the error check and the
numbers check all read that one execution. They run in the order the notebooks are listed:
the teaching notebook extracts its prompts into the test session's cache
(``TOKENDIM_CACHE_DIR``, set by ``tests/conftest.py`` and inherited by the kernels), and its
instructor key finds them there.

The numbers check (:func:`unbacked_numbers`) holds the notebooks we write for readers to one
rule: a number in the prose is either shown by an executed output or is structural. See its
docstring for what counts as structural.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = (
    "quickstart.ipynb",
    "paper_reproduction.ipynb",
    "teaching.ipynb",
    "teaching_key.ipynb",
)
#: Notebooks whose prose must not state a number that the outputs do not show.
HONEST = ("quickstart.ipynb", "teaching.ipynb", "teaching_key.ipynb")
#: Longest a reader-facing notebook may take, start to finish, from a fresh cache (seconds);
#: ``TOKENDIM_NOTEBOOK_LIMIT_S`` overrides it on a slower machine.
RUN_LIMIT_S = float(os.environ.get("TOKENDIM_NOTEBOOK_LIMIT_S", "180"))
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
    "teaching_key.ipynb": ("smollm2-135m",),
}


@pytest.fixture(scope="module")
def executed() -> Any:
    """Execute a notebook once per module; later calls return the same executed copy."""
    done: dict[str, tuple[Any, float]] = {}

    def run(name: str) -> tuple[Any, float]:
        if name not in done:
            done[name] = _execute(name)
        return done[name]

    return run


def _execute(name: str) -> tuple[Any, float]:
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
    return notebook, time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, executed: Any, record_property: Any) -> None:
    notebook, runtime = executed(name)
    record_property("runtime_s", round(runtime, 1))
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


@pytest.mark.slow
@pytest.mark.parametrize("name", HONEST)
def test_notebook_runs_within_limit(name: str, executed: Any) -> None:
    # A lecturer runs these before class: they must finish in minutes. Wall time means
    # nothing on a machine running several times more work than it has cores, so the check
    # is skipped there (with the measured time in the message).
    _, runtime = executed(name)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    if load > 2 * cores:
        pytest.skip(
            f"{name} took {runtime:.0f} s, but the load average is {load:.1f} on {cores} cores"
        )
    assert runtime <= RUN_LIMIT_S, f"{name} took {runtime:.0f} s (limit {RUN_LIMIT_S:.0f} s)"


@pytest.mark.slow
@pytest.mark.parametrize("name", HONEST)
def test_markdown_numbers_are_computed(name: str, executed: Any) -> None:
    notebook, _ = executed(name)
    missing = unbacked_numbers(notebook)
    assert not missing, f"{name}: numbers in the prose that no output shows: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("name", HONEST)
def test_student_view_is_clean(name: str, executed: Any) -> None:
    # No progress bars and no float32 artefacts (86.900002) in what a reader sees.
    notebook, _ = executed(name)
    text = _output_text(notebook)
    assert not re.search(r"\d+it/s|\d+%\|", text), f"{name}: a progress bar in the outputs"
    artefact = re.search(r"\b\d+\.\d*0000\d\b|\b\d+\.\d*9999\d\b", text)
    assert artefact is None, f"{name}: unrounded float printed: {artefact.group(0)!r}"


# --- the numbers rule ---------------------------------------------------------------------

#: A number as written in prose: digits, optional thousands commas and decimals, an optional
#: percent sign; not part of a word or identifier (SmolLM2, 135M, n1, float32 do not count).
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)(?![\w])")
#: A citation year: after "et al." or a pair of authors ("Levina & Bickel", "A and B").
_CITATION = re.compile(
    r"(?:et\s+al\.|[A-Z][\w-]+\s+(?:&|and)\s+[A-Z][\w-]+),?\s+\(?((?:19|20)\d\d)\)?"
)
#: A planned duration in a lesson plan ("10 min", "90-minute").
_DURATION = re.compile(r"(?<![\w.])(\d+)(?:\s*\+\s*\w+)?(?:\s|-)min")
#: Section and list numbering: "## 3. Title", "1. An exercise".
_ENUMERATOR = re.compile(r"^(?:\s*#+\s*|\s*)(\d+)\.\s", re.MULTILINE)


def _numbers(text: str) -> list[str]:
    """Every number of a text, normalised: no thousands commas, a trailing % kept."""
    return [
        (whole.replace(",", "") + (frac or "") + pct) for whole, frac, pct in _NUMBER.findall(text)
    ]


def _output_text(notebook: Any) -> str:
    parts: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(str(output.get("text", "")))
            for kind in ("text/plain", "text/markdown", "text/html"):
                value = output.get("data", {}).get(kind)
                if value is not None:
                    parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def unbacked_numbers(notebook: Any) -> list[str]:
    """Numbers in a notebook's markdown that neither an output nor a structural rule backs.

    A number in the prose passes when

    1. an executed output shows it, written the same way ("9.94" needs "9.94"; "47%" needs
       "47%"; thousands commas are ignored): every measured number must come from the run;
    2. or it is a literal of the notebook's own code and is not a percentage: a parameter the
       reader sees set (the 100 dimensions of the toy space, d = 5 of a cube, k = 20);
    3. or it is structural text: a citation year (after "et al." or a pair of authors' names),
       a section or list enumerator, a planned duration in minutes.

    Everything else is reported, so a claim typed into the prose ahead of the computation, or
    left behind when the computation changed, fails the test.
    """
    outputs = set(_numbers(_output_text(notebook)))
    code = "\n".join(
        "".join(cell.source) if isinstance(cell.source, list) else cell.source
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    literals = {n for n in _numbers(code) if not n.endswith("%")}
    missing: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        text = "".join(cell.source) if isinstance(cell.source, list) else cell.source
        for rule in (_CITATION, _DURATION, _ENUMERATOR):
            text = rule.sub(lambda match: match.group(0).replace(match.group(1), "#"), text)
        for number in _numbers(text):
            if number in outputs or number in literals:
                continue
            missing.append(number)
    return missing


def _toy_notebook(markdown: str, code: str, printed: str) -> Any:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    notebook.cells = [nbformat.v4.new_markdown_cell(markdown), cell]
    return notebook


def test_numbers_rule_accepts_what_the_outputs_show() -> None:
    notebook = _toy_notebook(
        "The estimate is 9.94, 47% of 1,468 tokens.", "print(x)", "9.94 47% 1468"
    )
    assert unbacked_numbers(notebook) == []


def test_numbers_rule_reports_a_number_stated_in_advance() -> None:
    notebook = _toy_notebook("The curve peaks at 9.9 at layer 18.", "print(x)", "9.94 at 20")
    assert unbacked_numbers(notebook) == ["9.9", "18"]


def test_numbers_rule_structural_exemptions() -> None:
    markdown = (
        "## 3. Pitfalls\n\n1. Hide a cube of d = 5 in 100 dimensions (Facco et al. 2017;\n"
        "MacKay and Ghahramani (2005); Levina & Bickel 2004). A 90-minute class: 10 min.\n"
        "SmolLM2-135M, n1, float32."
    )
    notebook = _toy_notebook(markdown, "X = cube(5)(2000, rng)\nAMBIENT = 100", "")
    assert unbacked_numbers(notebook) == []


def test_numbers_rule_percentages_need_an_output() -> None:
    # 20 is a code literal, but a percentage is a measurement: only an output can back it.
    notebook = _toy_notebook("About 20% of neighbours.", "k = 20", "")
    assert unbacked_numbers(notebook) == ["20%"]
    # A year without an author is not a citation.
    assert unbacked_numbers(_toy_notebook("In 2017 it rose.", "", "")) == ["2017"]
