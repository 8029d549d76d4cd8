"""De-quantised GGUF weights are cached: a second load reads them, damaged entries are re-made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from processes import in_new_process
from tiny_gguf import write_tiny_gguf

from tokendim_widgets import extract, models
from tokendim_widgets.models import WEIGHTS_NAMESPACE, load_model, model_identity, weights_key
from tokendim_widgets.store import Store

TEXTS = ["The quick brown fox jumps over the lazy dog.", "SELECT name FROM users;"]


@pytest.fixture
def gguf_file(tmp_path: Path, make_tokenizer) -> Path:
    pytest.importorskip("gguf")
    return write_tiny_gguf(tmp_path / "tiny.gguf", make_tokenizer("causal"))


def _outputs(pair) -> torch.Tensor:
    model, tokenizer = pair
    batch = tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _conversions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every read of a GGUF model's weights: through transformers (which de-quantises
    it then) or through the one-pass loader's public ``GgufPlan.state_dict``."""
    import transformers

    from tokendim_widgets import gguf_loading

    calls: list[str] = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        if kwargs.get("gguf_file"):
            calls.append(kwargs["gguf_file"])
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    if gguf_loading.AVAILABLE:
        real_state = gguf_loading.GgufPlan.state_dict

        def state_spy(plan, *args, **kwargs):
            calls.append(plan.path.name)
            return real_state(plan, *args, **kwargs)

        monkeypatch.setattr(gguf_loading.GgufPlan, "state_dict", state_spy)
    return calls


def test_a_second_load_reads_the_cache_and_gives_the_same_outputs(
    gguf_file, cache_dir, monkeypatch
):
    calls = _conversions(monkeypatch)
    ticks: list[tuple[int, int]] = []
    first = load_model(gguf_file, device="cpu", progress=lambda d, t, r: ticks.append((d, t)))
    assert calls == ["tiny.gguf"]
    total = ticks[-1][1]
    assert total > 10 and ticks[-1][0] == total  # one step per tensor, all done
    key = weights_key(model_identity(gguf_file)["sha256"])
    assert Store(cache_dir).keys(WEIGHTS_NAMESPACE) == [key]
    second = load_model(gguf_file, device="cpu", progress=False)
    assert calls == ["tiny.gguf"]  # not converted again
    assert torch.equal(_outputs(first), _outputs(second))
    assert first[1](TEXTS)["input_ids"] == second[1](TEXTS)["input_ids"]
    assert type(second[0]).__name__ == "LlamaForCausalLM"


def test_the_cached_model_extracts_the_same_states(gguf_file, cache_dir):
    cold = load_model(gguf_file, device="cpu", cache=False)
    load_model(gguf_file, device="cpu")  # converts and caches
    warm_pair = load_model(gguf_file, device="cpu")  # from the cache
    a = extract(cold, TEXTS, cache=False, progress=False)
    b = extract(warm_pair, TEXTS, cache=False, progress=False)
    for i in range(a.n_layers):
        assert (a.layer(i) == b.layer(i)).all()


def _damage(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))


def test_a_damaged_entry_is_removed_and_made_again(gguf_file, cache_dir, monkeypatch):
    calls = _conversions(monkeypatch)
    reference = _outputs(load_model(gguf_file, device="cpu"))
    store = Store(cache_dir)
    key = weights_key(model_identity(gguf_file)["sha256"])
    _damage(store.path(WEIGHTS_NAMESPACE, key))
    again = load_model(gguf_file, device="cpu")
    assert calls == ["tiny.gguf", "tiny.gguf"]  # detected and converted again
    assert torch.equal(_outputs(again), reference)
    assert store.get(WEIGHTS_NAMESPACE, key) is not None  # the new entry is intact


def test_an_unloadable_entry_is_made_again(gguf_file, cache_dir, monkeypatch):
    calls = _conversions(monkeypatch)
    load_model(gguf_file, device="cpu")
    store = Store(cache_dir)
    key = weights_key(model_identity(gguf_file)["sha256"])
    entry = store.get(WEIGHTS_NAMESPACE, key)
    assert entry is not None
    # An entry whose checksums hold but which transformers cannot load (written by a broken
    # writer): removed and converted again, never served.
    store.remove(WEIGHTS_NAMESPACE, key)
    with store.writer(WEIGHTS_NAMESPACE, key) as writer:
        for name in entry.files:
            (writer.path / name).write_bytes(b"{}" if name.endswith(".json") else b"")
        (writer.path / "model.safetensors").write_bytes(b"not a safetensors file")
    model, _ = load_model(gguf_file, device="cpu")
    assert calls == ["tiny.gguf", "tiny.gguf"]
    assert type(model).__name__ == "LlamaForCausalLM"


def test_without_the_cache_nothing_is_written(gguf_file, cache_dir, monkeypatch):
    calls = _conversions(monkeypatch)
    load_model(gguf_file, device="cpu", cache=False)
    assert calls == ["tiny.gguf"]  # read once, straight into the model
    assert not (cache_dir / WEIGHTS_NAMESPACE).exists()  # no entry, not even a started one


def test_loads_print_nothing_and_report_through_the_callback(gguf_file, cache_dir, capfd):
    ticks: list[tuple[int, int]] = []
    load_model(gguf_file, device="cpu", progress=lambda d, t, r: ticks.append((d, t)))
    load_model(gguf_file, device="cpu")  # default: no bar where nobody sees it (pytest)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no transformers bar, no log line, no bar of ours
    assert ticks[0] == (0, ticks[0][1]) and ticks[-1] == (ticks[0][1], ticks[0][1])


HASH_WITHOUT_HASHING = """
import sys
from tokendim_widgets import models
models.file_sha256 = lambda path: sys.exit(f"re-hashed {path}")
print(models.hash_file(sys.argv[1]))
"""


def test_the_file_hash_is_remembered_by_file_identity(gguf_file, cache_dir, monkeypatch):
    calls: list[object] = []
    real = models.file_sha256
    monkeypatch.setattr(models, "file_sha256", lambda p: calls.append(p) or real(p))
    first = models.hash_file(gguf_file)
    assert models.hash_file(gguf_file) == first and len(calls) == 1
    # A new process (nothing in memory): the memo in the cache folder answers.
    assert in_new_process(HASH_WITHOUT_HASHING, gguf_file).strip() == first
    replacement = gguf_file.with_name("copy.gguf")
    replacement.write_bytes(gguf_file.read_bytes())
    stat = gguf_file.stat()
    replacement.replace(gguf_file)  # same bytes, size and (restored) time, new inode
    os.utime(gguf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert models.hash_file(gguf_file) == first and len(calls) == 2  # hashed again


def test_load_config_reads_the_cached_entry_instead_of_the_gguf(gguf_file, cache_dir, monkeypatch):
    parsed = models.load_config(gguf_file)  # nothing cached yet: the GGUF metadata
    load_model(gguf_file, device="cpu")
    import transformers

    calls: list[dict] = []
    for loader in (transformers.AutoConfig, transformers.AutoTokenizer):
        real = loader.from_pretrained

        def spy(*args, real=real, **kwargs):
            calls.append(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(loader, "from_pretrained", spy)
    config, tokenizer, spec, task = models.load_config(gguf_file)
    assert calls and all("gguf_file" not in kwargs for kwargs in calls)
    assert (spec.gguf_file, task) == ("tiny.gguf", "causal")
    assert config.hidden_size == parsed[0].hidden_size
    assert config.num_hidden_layers == parsed[0].num_hidden_layers
    assert tokenizer(TEXTS)["input_ids"] == parsed[1](TEXTS)["input_ids"]
