"""A cached file changed on disk is never served, even after an earlier read verified it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tokendim_widgets import extract
from tokendim_widgets import store as store_module
from tokendim_widgets.extraction import NAMESPACE
from tokendim_widgets.store import Store

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "Intrinsic dimension measures how many directions a cloud uses.",
]


def _flip_last_byte(path: Path, *, keep_times: bool) -> None:
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # same size
    if keep_times:  # a careful vandal restores the modification time too (ctime still moves)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("keep_times", [False, True])
def test_a_file_changed_between_two_reads_is_detected(tmp_path, keep_times):
    store = Store(tmp_path)
    with store.writer("ns", "k") as writer:
        writer.write_array("x", np.arange(1000, dtype=np.float32))
    assert store.get("ns", "k") is not None  # verified once in this process
    time.sleep(0.01)  # a later change time on filesystems with coarse clocks
    _flip_last_byte(store.path("ns", "k") / "x.npy", keep_times=keep_times)
    assert store.get("ns", "k") is None
    assert not store.path("ns", "k").exists()


def test_an_unchanged_entry_is_not_hashed_again(tmp_path, monkeypatch):
    store = Store(tmp_path)
    with store.writer("ns", "k") as writer:
        writer.write_array("x", np.arange(10.0))
    calls: list[object] = []
    real = store_module.file_sha256
    monkeypatch.setattr(store_module, "file_sha256", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        assert store.get("ns", "k") is not None
    assert calls == []  # verified when written; its files have not changed since


def test_a_touched_but_intact_entry_is_rechecked_and_kept(tmp_path):
    store = Store(tmp_path)
    with store.writer("ns", "k") as writer:
        writer.write_array("x", np.arange(10.0))
    os.utime(store.path("ns", "k") / "x.npy")
    entry = store.get("ns", "k")
    assert entry is not None
    np.testing.assert_array_equal(entry.array("x"), np.arange(10.0))


def test_extraction_recomputes_a_layer_changed_in_the_same_process(tiny, cache_dir):
    pair = tiny("gpt2")
    first = extract(pair, PROMPTS, progress=False)
    expected = np.array(first.layer(1))
    path = Store(cache_dir).path(NAMESPACE, first.cache_key) / "layer_001.npy"
    del first
    assert extract(pair, PROMPTS, progress=False).cache_key is not None  # a verified read
    _flip_last_byte(path, keep_times=True)
    calls: list[int] = []
    again = extract(pair, PROMPTS, progress=lambda done, total, rate: calls.append(done))
    assert calls and calls[-1] > 0  # recomputed, not served
    np.testing.assert_array_equal(again.layer(1), expected)


# A writer killed (SIGKILL) or interrupted (SIGINT) in the middle of an extraction: nothing is
# published, the next run recomputes and the temporary folder of the dead writer is cleaned.
WRITER = textwrap.dedent(
    """
    import sys, time
    from tokendim_widgets import extract
    prompts = ["token %d of a long enough prompt for several batches" % i for i in range(400)]
    def progress(done, total, rate):
        print("batch", flush=True)
        time.sleep(0.2)
    extract(sys.argv[1], prompts, batch_tokens=64, progress=progress, cache_dir=sys.argv[2])
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_writer_stopped_mid_extraction_publishes_nothing(tiny_dir, tmp_path, child_env, sig):
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, tiny_dir("gpt2"), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "batch"  # it is writing
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "terminate called" not in err and "Fatal Python error" not in err
    store = Store(cache)
    assert store.keys(NAMESPACE) == []  # no entry published
    temporary = [p for p in (cache / NAMESPACE).iterdir() if p.name.startswith(".tmp")]
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err and temporary == []  # cleaned up on the way out
    prompts = [f"token {i} of a long enough prompt for several batches" for i in range(20)]
    states = extract(tiny_dir("gpt2"), prompts, progress=False, cache_dir=cache)
    assert states.cache_key in store.keys(NAMESPACE)
    assert not [p for p in (cache / NAMESPACE).iterdir() if p.name.startswith(".tmp")]
