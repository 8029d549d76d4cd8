"""The one-pass GGUF load gives what transformers' own ``from_pretrained(gguf_file=...)`` gives.

Same config, tokenizer (class, settings, saved files, token ids), weights bit for bit and
logits, on the tiny Llama written here and on the bundled models (slow, skipped when their
packages are missing); files outside the one-pass path (another architecture, a
``tokenizer_config.json`` beside the file, a Llama named "mistral") go through transformers'
standard path.
"""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_gguf import write_tiny_gguf

from tokendim_widgets import models
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.models import ALIASES, load_model, resolve_model

pytest.importorskip("gguf")
one_pass = pytest.importorskip("tokendim_widgets.gguf_loading")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo wörld: naïve café, ½ € ☕ 日本語 🤖",
    "  leading spaces,\ttabs and\nnew lines  ",
    "def add(a, b):\n    return a + b",
    "SELECT name FROM users WHERE age > 30;",
]


def _standard(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any, Any]:
    """Config, tokenizer and model as transformers loads the file itself."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    with models._quiet_transformers():
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, config=config, dtype=dtype
        )
    return config, tokenizer, model.eval()


def _one_pass(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any, Any]:
    from transformers import AutoModelForCausalLM

    plan = one_pass.plan(path)
    assert plan is not None
    with models._quiet_transformers():
        config = plan.config(str(path.parent))
        tokenizer = plan.tokenizer(config, str(path.parent), path.name)
        model = plan.model(AutoModelForCausalLM, config, dtype)
    return config, tokenizer, model


def _config(config: Any) -> dict[str, Any]:
    """The config as a dict, without the mark of a GGUF quantisation (which only the standard
    path sets, and the weights cache drops)."""
    out = config.to_dict()
    out.pop("quantization_config", None)
    return out


def _assert_same(path: Path, tmp_path: Path, dtype: torch.dtype = torch.float32) -> None:
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    plan = one_pass.plan(path)
    assert plan is not None
    assert plan.config_dict == load_gguf_checkpoint(str(path))["config"]
    config_a, tok_a, model_a = _one_pass(path, dtype)
    config_b, tok_b, model_b = _standard(path, dtype)

    assert _config(config_a) == _config(config_b)
    assert _config(model_a.config) == _config(model_b.config)
    assert model_a.generation_config.to_dict() == model_b.generation_config.to_dict()

    assert type(tok_a) is type(tok_b)
    assert tok_a.init_kwargs == tok_b.init_kwargs
    assert tok_a.special_tokens_map == tok_b.special_tokens_map
    for attribute in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(tok_a, attribute) == getattr(tok_b, attribute)
    assert getattr(tok_a, "add_bos_token", None) == getattr(tok_b, "add_bos_token", None)
    assert tok_a(TEXTS)["input_ids"] == tok_b(TEXTS)["input_ids"]
    assert tok_a.get_vocab() == tok_b.get_vocab()
    # What the weights cache keeps: the converted model's folder, file by file.
    for name, (model, tokenizer) in {"a": (model_a, tok_a), "b": (model_b, tok_b)}.items():
        (tmp_path / name).mkdir()
        models._save_converted(model, tokenizer, tmp_path / name)
    for file in sorted(p.name for p in (tmp_path / "b").iterdir()):
        if file != "model.safetensors":  # its header orders a hash map at random
            assert filecmp.cmp(tmp_path / "a" / file, tmp_path / "b" / file, shallow=False), file
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in (tmp_path / "b").iterdir()
    )

    assert type(model_a) is type(model_b) and not model_a.training
    weights_a, weights_b = model_a.state_dict(), model_b.state_dict()
    assert list(weights_a) == list(weights_b)
    for key, value in weights_b.items():
        assert weights_a[key].dtype == value.dtype and torch.equal(weights_a[key], value), key
    with torch.no_grad():
        for text in TEXTS:
            batch = tok_b(text, return_tensors="pt")
            assert torch.equal(model_a(**batch).logits, model_b(**batch).logits), text


def _checkpoint_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every parse by transformers' GGUF checkpoint reader (the standard path's)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    calls: list[str] = []
    real = gguf_utils.load_gguf_checkpoint

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gguf_utils, "load_gguf_checkpoint", spy)
    return calls


@pytest.fixture
def tokenizer(make_tokenizer) -> Any:
    return make_tokenizer("causal")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_tiny_llama_loads_as_transformers_loads_it(tmp_path, tokenizer, dtype):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer)
    _assert_same(path, tmp_path, dtype)


def test_the_header_reads_as_ggufs_reader_reads_it(tmp_path, tokenizer):
    import gguf

    path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer, architecture="qwen2", name="t")
    metadata, tensors, data_start = one_pass.read_header(path, {"tokenizer.ggml.merges"})
    reader = gguf.GGUFReader(path)
    assert [t.name for t in tensors] == [t.name for t in reader.tensors]
    for mine, theirs in zip(tensors, reader.tensors, strict=True):
        assert mine.shape == tuple(reversed(theirs.shape.tolist()))
        assert mine.ggml_type == theirs.tensor_type and mine.nbytes == theirs.n_bytes
        assert data_start + mine.offset == theirs.data_offset
    assert metadata["general.architecture"] == "qwen2" and metadata["general.name"] == "t"
    assert metadata["qwen2.block_count"] == 2 and metadata["tokenizer.ggml.add_bos_token"]
    assert metadata["tokenizer.ggml.tokens"] == len(tokenizer)  # not asked for: its length
    merges = reader.fields["tokenizer.ggml.merges"]
    assert metadata["tokenizer.ggml.merges"] == [
        merges.contents(i) for i in range(len(merges.data))
    ]


def test_the_names_match_transformers_weights_map(tmp_path, tokenizer):
    import gguf
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        get_gguf_hf_weights_map,
    )

    plan = one_pass.plan(write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer))
    config = plan.config(str(tmp_path))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    processor = TENSOR_PROCESSORS["llama"](config=plan.config_dict)
    table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    names = one_pass.weights_names(skeleton, processor, table)
    assert names == get_gguf_hf_weights_map(skeleton, processor)
    assert names["blk.1.attn_q.weight"] == "model.layers.1.self_attn.q_proj.weight"


def test_load_model_reads_a_listed_architecture_once(tmp_path, tokenizer, monkeypatch):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer)
    calls = _checkpoint_calls(monkeypatch)
    ticks: list[tuple[int, int]] = []
    model, tok = load_model(
        path, device="cpu", cache=False, progress=lambda d, t, r: ticks.append((d, t))
    )
    assert calls == []  # no parse by the standard reader: config, tokenizer, weights
    assert ticks[-1][0] == ticks[-1][1] == len(one_pass.plan(path).tensors)
    config_b, tok_b, model_b = _standard(path)
    batch = tok_b(TEXTS[1], return_tensors="pt")
    assert tok(TEXTS)["input_ids"] == tok_b(TEXTS)["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model_b(**batch).logits)
    calls.clear()  # the reference's three
    config, tok_c, spec, task = models.load_config(path)  # no cache entry: the metadata
    assert calls == [] and (spec.gguf_file, task) == ("tiny.gguf", "causal")
    assert _config(config) == _config(config_b)
    assert tok_c(TEXTS)["input_ids"] == tok_b(TEXTS)["input_ids"]


def test_another_architecture_goes_through_the_standard_path(tmp_path, tokenizer, monkeypatch):
    path = write_tiny_gguf(tmp_path / "qwen.gguf", tokenizer, architecture="qwen2")
    assert one_pass.plan(path) is None
    calls = _checkpoint_calls(monkeypatch)
    model, _ = load_model(path, device="cpu", cache=False, progress=False)
    assert calls == ["qwen.gguf"] * 3  # config, tokenizer's config, weights
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    _, tok_b, model_b = _standard(path)
    batch = tok_b(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model_b(**batch).logits)
    # ...and its weights cache entry is made and read as before.
    cached = load_model(path, device="cpu", progress=False)
    again = load_model(path, device="cpu", progress=False)
    with torch.no_grad():
        assert torch.equal(cached[0](**batch).logits, again[0](**batch).logits)
        assert torch.equal(cached[0](**batch).logits, model_b(**batch).logits)


@pytest.mark.parametrize("case", ["tokenizer_config", "mistral"])
def test_files_the_standard_path_may_read_otherwise_go_there(
    tmp_path, tokenizer, case, monkeypatch
):
    if case == "tokenizer_config":  # AutoTokenizer would choose the class from it
        path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer)
        (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "GPT2Tokenizer"}')
    else:  # transformers reads a Llama file named "mistral" as a Mistral model
        path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer, name="mistral")
    assert one_pass.plan(path) is None
    calls = _checkpoint_calls(monkeypatch)
    try:
        _, tok_b, model_b = _standard(path)
    except Exception as exc:  # what transformers and gguf make of it, whatever it is
        with pytest.raises(TokendimError, match=type(exc).__name__):
            load_model(path, device="cpu", cache=False, progress=False)
        return
    calls.clear()
    model, tok = load_model(path, device="cpu", cache=False, progress=False)
    assert calls  # the standard path
    assert type(model) is type(model_b) and type(tok) is type(tok_b)
    assert tok(TEXTS)["input_ids"] == tok_b(TEXTS)["input_ids"]


def test_a_truncated_file_goes_to_the_standard_path(tmp_path, tokenizer):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    assert one_pass.plan(path) is None


def _bundled(alias: str) -> Path:
    bundled = ALIASES[alias]
    if not bundled.is_installed():
        pytest.skip(f"{bundled.distribution} is not installed ({bundled.install_command})")
    path = resolve_model(alias).path
    assert path is not None
    return path


@pytest.mark.slow
def test_the_bundled_smollm2_loads_as_transformers_loads_it(tmp_path):
    _assert_same(_bundled("smollm2-135m"), tmp_path)


@pytest.mark.slow
def test_the_gemma3_alias_loads_as_transformers_loads_it(tmp_path):
    _assert_same(_bundled("gemma3-270m"), tmp_path)
