"""The examples in the docstrings run and print what they say.

Every module of the package is collected from the source tree (without importing it at
collection time) and its doctests are run with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``;
examples marked ``# doctest: +SKIP`` (those that load a real model) stay skipped.
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path
from types import ModuleType

import pytest

import tokendim_widgets
from tokendim_widgets.errors import TokendimError

PACKAGE_DIR = Path(tokendim_widgets.__file__).resolve().parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("tokendim_widgets", *parts)))
    return names


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except TokendimError as exc:  # the widgets need the built front end
        pytest.skip(f"{name} does not import here: {exc}")


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENDIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = _import(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    failed = sum(runner.run(test, out=report.write).failed for test in finder.find(module, name))
    assert failed == 0, f"{failed} failing example(s) in {name}:\n{report.getvalue()}"


def test_modules_are_found() -> None:
    names = _module_names()
    assert "tokendim_widgets.analysis" in names
    assert "tokendim_widgets.estimators" in names
    assert "tokendim_widgets.estimators.twonn" in names


def test_public_api_has_examples() -> None:
    missing = []
    for public in tokendim_widgets.__all__:
        if public == "__version__":
            continue
        try:
            obj = getattr(tokendim_widgets, public)
        except TokendimError as exc:  # the widgets need the built front end
            pytest.skip(f"tokendim_widgets.{public} does not import here: {exc}")
        if ">>>" not in (obj.__doc__ or ""):
            missing.append(public)
    assert not missing, f"public names without a docstring example: {missing}"
