"""The ``tokendim`` command: the headless report on a tiny model, bad input, and the help."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from tokendim_widgets import cli

# Sentences the tiny tokenizers were trained on (tests/conftest.py). Not imported from there:
# tests/browser has a conftest module of the same name, so `from conftest import` breaks
# collection of the whole suite.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "def add(a, b):  return a + b",
    "Intrinsic dimension measures how many directions a cloud uses.",
    "She opened the door, looked outside and smiled at the rain.",
    "SELECT name FROM users WHERE age > 30;",
]


def _prompt_file(folder: Path, n: int = 12) -> Path:
    path = folder / "prompts.txt"
    lines = [f"{CORPUS[i % 6]} {CORPUS[(i * 5 + 1) % 6]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pyarrow look uninstalled (the command looks for it with find_spec)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )


@pytest.fixture(scope="module")
def report(tiny_dir, tmp_path_factory):
    """One successful report on the tiny Llama (shared by the tests that read its files).

    No --format and no pyarrow: the data files fall back to CSV.
    """
    root = tmp_path_factory.mktemp("report")
    prompts = _prompt_file(root)
    out = root / "out"
    tiny_dir("llama")  # saved before stderr is captured
    # A module-scoped fixture cannot use capsys: redirect by hand.
    stdout, stderr = StringIO(), StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _without_pyarrow(monkeypatch)
            code = cli.main(
                [
                    "report",
                    "--model",
                    tiny_dir("llama"),
                    "--prompts",
                    str(prompts),
                    "--estimator",
                    "twonn",
                    "--estimator",
                    "mle,twonn",
                    "--k",
                    "8",
                    "--out",
                    str(out),
                    "--title",
                    "Tiny report",
                ]
            )
    finally:
        sys.stdout, sys.stderr = old
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_report_writes_html_data_and_summary(report):
    assert report["code"] == 0, report["stderr"]
    assert "Traceback" not in report["stderr"]
    out: Path = report["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.csv",
        "local_ids.csv",
        "metrics.csv",
        "projections.csv",
        "report.html",
        "summary.txt",
    ]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>Tiny report</title>" in html
    start = html.index('id="tdw-data">') + len('id="tdw-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    n_layers = data["state"]["n_layers"]
    assert n_layers == 4  # the tiny Llama: embeddings + 3 blocks
    assert data["projections"]["kinds"] == ["pca"] * n_layers  # every layer, for the page
    assert [c["label"] for c in data["state"]["curves"]] == ["twonn", "mle(k=8)"]

    curves = pd.read_csv(out / "curves.csv")
    assert sorted(set(curves["curve"])) == ["mle(k=8)", "twonn"]
    assert len(curves) == 2 * n_layers
    projections = pd.read_csv(out / "projections.csv")
    assert sorted(set(projections["layer"])) == list(range(n_layers))
    local = pd.read_csv(out / "local_ids.csv", keep_default_na=False, na_values={})
    assert list(local.columns[:5]) == ["row", "prompt", "position", "token_id", "token"]
    assert [c for c in local.columns if c.startswith("layer_")] == [
        f"layer_{i}" for i in range(n_layers)
    ]

    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary.startswith("tokendim report\nmodel ")
    assert "metrics:" in summary and "working_dimension" in summary
    # The summary is printed too, after the progress lines and before the list of files.
    assert summary in report["stdout"]
    assert f"wrote {out}" in report["stdout"] and "report.html" in report["stdout"]


def test_report_progress_without_a_terminal_is_one_line_per_stage(report):
    lines = [line for line in report["stdout"].splitlines() if line.startswith("... ")]
    # The session's stages (each once, its end state not), then the command's own.
    assert lines[-2:] == ["... pca projections", "... writing"]
    assert "... extracting" in lines and len(set(lines)) == len(lines)
    assert "... done" not in lines
    assert report["stderr"] == ""  # no bar: stderr is kept for errors


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_report_progress_on_a_terminal_is_one_bar(tiny_dir, tmp_path, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    prompts = _prompt_file(tmp_path)
    args = ["report", "--model", tiny_dir("llama"), "--prompts", str(prompts), "--k", "8"]
    code = cli.main([*args, "--out", str(tmp_path / "out"), "--format", "csv"])
    assert code == 0
    out = capsys.readouterr().out
    assert "... " not in out and "tokendim report" in out  # no stage lines; the summary
    frames = terminal.getvalue().split("\r")
    shown = [frame.split("  ")[0].strip() for frame in frames if frame.strip()]
    assert "extracting" in shown and "pca projections" in shown and "writing" in shown
    # The layers the session had not projected, counted up to the last one at 100%. The
    # session projects layers in the background until the command cancels it, so on a fast
    # run it may have projected them all: then there is nothing left to count.
    counted = [frame for frame in frames if frame.startswith("projections, layer")]
    if counted:
        assert any(re.match(r"projections, layer (\d+)/\1 .*100%$", frame) for frame in counted)
    assert frames[-1] == ""  # the bar is cleared at the end (written over, then \r)


def test_curve_command_still_works(tiny_dir, tmp_path, capsys):
    prompts = _prompt_file(tmp_path)
    code = cli.main(
        [
            "curve",
            "--model",
            tiny_dir("llama"),
            "--prompts",
            str(prompts),
            "--estimator",
            "twonn",
            "--out",
            str(tmp_path / "curves"),
        ]
    )
    assert code == 0
    assert (tmp_path / "curves" / "curve_twonn.csv").exists()
    assert "summary metrics" in capsys.readouterr().out


# ---- bad input: exit status 2, one line on stderr, no traceback, nothing left behind ------------
def _bad(args: list[str], capsys) -> str:
    code = cli.main(["report", *args])
    captured = capsys.readouterr()
    assert code == 2
    return _one_error_line(captured.err)


def test_unknown_model_path(tmp_path, capsys):
    prompts = _prompt_file(tmp_path)
    line = _bad(["--model", str(tmp_path / "no-model"), "--prompts", str(prompts)], capsys)
    assert line.startswith("tokendim: error: No such model file or folder")


def test_unknown_model_name(tmp_path, capsys):
    line = _bad(["--model", "not a model!", "--out", str(tmp_path / "out")], capsys)
    assert "Unknown model 'not a model!'" in line
    assert not (tmp_path / "out").exists()


def test_model_not_reachable_on_the_hub(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    prompts = _prompt_file(tmp_path)
    out = tmp_path / "out"
    line = _bad(
        ["--model", "no-such-org/no-such-model", "--prompts", str(prompts), "--out", str(out)],
        capsys,
    )
    assert "Cannot reach the Hugging Face hub" in line and "'no-such-org/no-such-model'" in line
    assert not out.exists()  # the folder made for the report is removed again


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_prompt_file(tmp_path, capsys, content):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    line = _bad(["--model", "smollm2-135m", "--prompts", str(path)], capsys)
    assert "holds no prompt" in line


def test_missing_prompt_file(tmp_path, capsys):
    line = _bad(["--prompts", str(tmp_path / "missing.txt")], capsys)
    assert "does not exist" in line


def test_output_folder_not_writable(tiny_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    prompts = _prompt_file(tmp_path)
    args = ["--model", tiny_dir("llama"), "--prompts", str(prompts)]
    line = _bad([*args, "--out", str(blocker / "report")], capsys)
    assert "Cannot write to the output folder" in line and "--out" in line


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere"
)
def test_read_only_output_folder(tiny_dir, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        prompts = _prompt_file(tmp_path)
        line = _bad(
            ["--model", tiny_dir("llama"), "--prompts", str(prompts), "--out", str(folder)], capsys
        )
        assert "Cannot write to the output folder" in line
    finally:
        folder.chmod(0o700)


def test_unknown_estimator(capsys):
    line = _bad(["--estimator", "twonn,magic"], capsys)
    assert line == (
        "tokendim: error: Unknown estimator 'magic': choose from twonn, mle, gride, "
        "correlation, pca."
    )


def test_umap_without_umap_learn(monkeypatch, capsys):
    from tokendim_widgets import projection

    monkeypatch.setattr(projection, "umap_available", lambda: False)
    line = _bad(["--umap"], capsys)
    assert "pip install" in line and "umap" in line


def test_parquet_without_pyarrow(monkeypatch, tmp_path, capsys):
    _without_pyarrow(monkeypatch)
    line = _bad(["--format", "parquet", "--out", str(tmp_path / "o")], capsys)
    assert "pyarrow" in line and "--format csv" in line
    # Without --format the report falls back to CSV: see the `report` fixture.


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--k", "0"], "argument --k: '0' must be at least 1"),
        (["--max-tokens", "many"], "argument --max-tokens: 'many' is not an integer"),
        (["--cloud", "nowhere"], "argument --cloud: invalid choice"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["report", *args])
    assert info.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert expected in line and "--help" in line


def test_errors_leave_the_process_as_it_was(capsys):
    before = dict(os.environ)
    _bad(["--estimator", "magic"], capsys)
    assert dict(os.environ) == before
    import logging

    assert not logging.getLogger("tokendim_widgets").handlers


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tokendim_widgets.cli", "report", "--model", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TOKENDIM_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2
    assert _one_error_line(result.stderr).startswith("tokendim: error: No such model")
    assert result.stdout == ""


# ---- help -------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_documents_every_command_and_option(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    top = capsys.readouterr().out
    for name in ("demo", "curve", "report"):
        assert name in top
    for name, sub in _subparsers(parser).items():
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
            assert action.help, (name, action.option_strings)
    report = _subparsers(parser)["report"]
    options = {o for a in report._actions for o in a.option_strings}
    assert {
        "--model",
        "--prompts",
        "--estimator",
        "--cloud",
        "--out",
        "--max-tokens",
        "--device",
        "--umap",
        "--format",
    } <= options


def test_estimator_names_match_the_registry():
    # The command lists them without importing the estimators (that would import torch).
    from tokendim_widgets.estimators import ESTIMATORS

    assert sorted(cli.ESTIMATOR_NAMES) == sorted(ESTIMATORS)
