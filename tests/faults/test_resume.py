"""An extraction interrupted by Ctrl-C or a kill resumes from its last checkpoint.

A child process extracts with small batches and is interrupted after a few of them; the same
call, run again, computes only the batches not recorded done and gives exactly the bytes of
an uninterrupted run. The partial result is never served as a finished entry.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tokendim_widgets import extract
from tokendim_widgets.extraction import NAMESPACE
from tokendim_widgets.store import Store

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "model", "layer")
BATCH_TOKENS = 64

CHILD = """
import json, sys, time
import tokendim_widgets.extraction as extraction
extraction.CHECKPOINT_SECONDS = 0.0  # record every batch, so the test knows what is kept
def progress(done, total, rate):
    print(done, flush=True)
    time.sleep(0.05)  # slow enough for the parent's signal to land mid-run
texts = json.loads(open(sys.argv[2]).read())
extraction.extract(sys.argv[1], texts, batch_tokens=int(sys.argv[3]), progress=progress,
                   device="cpu")
"""


def _texts(n: int) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))) for _ in range(n)]


def _interrupted_child(model: str, texts_file: Path, sig: int, after: int, env: dict) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, model, str(texts_file), str(BATCH_TOKENS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    for lines, _ in enumerate(child.stdout, start=1):
        if lines == after + 1:  # the first call reports 0 tokens done
            child.send_signal(sig)
            break
    else:  # pragma: no cover - the run ended first
        child.wait()
        pytest.fail(f"the child ended before the signal: {child.stderr.read()}")
    child.communicate(timeout=120)
    return child.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_extraction_resumes_with_the_same_bytes(tiny_dir, tmp_path, child_env, sig):
    model = tiny_dir("llama")
    texts = _texts(80)
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts))
    cache = tmp_path / "cache"
    env = {**child_env, "TOKENDIM_CACHE_DIR": str(cache)}

    code = _interrupted_child(model, texts_file, sig, after=5, env=env)
    assert code != 0  # it was interrupted, not finished
    store = Store(cache)
    assert store.keys(NAMESPACE) == []  # nothing served as finished
    partial = list((cache / NAMESPACE).glob(".partial-*"))
    assert len(partial) == 1

    reference_calls: list[int] = []
    reference = extract(
        model,
        texts,
        batch_tokens=BATCH_TOKENS,
        device="cpu",
        cache=False,
        progress=lambda done, total, rate: reference_calls.append(done),
    )
    resumed_calls: list[int] = []
    resumed = extract(
        model,
        texts,
        batch_tokens=BATCH_TOKENS,
        device="cpu",
        cache_dir=cache,
        progress=lambda done, total, rate: resumed_calls.append(done),
    )
    all_batches = len(reference_calls) - 1
    computed = len(resumed_calls) - 1
    assert resumed_calls[0] > 0  # started from the tokens done before the interrupt
    assert 0 < computed <= all_batches - 5  # at least the 5 recorded batches were skipped
    assert resumed_calls[-1] == reference_calls[-1]
    for i in range(reference.n_layers):
        assert np.array_equal(np.asarray(resumed.layer(i)), np.asarray(reference.layer(i)))
    assert resumed.tokens.equals(reference.tokens)
    assert store.keys(NAMESPACE) == [resumed.cache_key]
    assert not partial[0].exists()  # published: the partial folder became the entry


def test_a_cancelled_extraction_resumes(tiny_dir, tmp_path):
    from tokendim_widgets import Cancelled

    model = tiny_dir("llama")
    texts = _texts(60)
    calls: list[int] = []

    def stop_after_three() -> bool:
        return len(calls) > 3

    with pytest.raises(Cancelled, match="resumes"):
        extract(
            model,
            texts,
            batch_tokens=BATCH_TOKENS,
            cache_dir=tmp_path,
            cancel=stop_after_three,
            progress=lambda done, total, rate: calls.append(done),
        )
    again: list[int] = []
    states = extract(
        model,
        texts,
        batch_tokens=BATCH_TOKENS,
        cache_dir=tmp_path,
        progress=lambda done, total, rate: again.append(done),
    )
    assert again[0] >= calls[-1] > 0  # the batches done before the cancel were kept
    reference = extract(model, texts, batch_tokens=BATCH_TOKENS, cache=False, progress=False)
    assert np.array_equal(np.asarray(states.layer(-1)), np.asarray(reference.layer(-1)))


def test_a_partial_result_of_other_work_is_not_resumed(tiny_dir, tmp_path):
    model = tiny_dir("llama")
    texts = _texts(40)
    calls: list[int] = []
    with pytest.raises(Exception, match="resumes"):
        extract(
            model,
            texts,
            batch_tokens=BATCH_TOKENS,
            cache_dir=tmp_path,
            cancel=lambda: len(calls) > 2,
            progress=lambda done, total, rate: calls.append(done),
        )
    (partial,) = (tmp_path / NAMESPACE).glob(".partial-*")
    state = json.loads((partial / "state.json").read_text())
    state["request"]["rows"] += 1  # as if another plan had been started under this key
    (partial / "state.json").write_text(json.dumps(state))
    again: list[int] = []
    extract(
        model,
        texts,
        batch_tokens=BATCH_TOKENS,
        cache_dir=tmp_path,
        progress=lambda done, total, rate: again.append(done),
    )
    assert again[0] == 0  # started afresh
