"""The on-disk store: keys, atomic entries, damage detection, interrupted writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from processes import in_new_process

from tokendim_widgets import store as store_module
from tokendim_widgets.store import Store, default_cache_dir, make_key

REPO = Path(__file__).resolve().parents[1]


def _write(store: Store, key: str = "k1") -> None:
    with store.writer("ns", key) as writer:
        writer.write_array("x", np.arange(12, dtype=np.float32).reshape(3, 4))
        big = writer.create_array("y", (5, 2), np.float32)
        big[:] = 7.0
        writer.write_table("t", pd.DataFrame({"a": [1, 2], "s": ["x", "<b>y</b>"]}))
        writer.write_json("doc", {"hello": ["world"]})
        writer.meta["note"] = "n"


def test_roundtrip_reads_back_memory_maps(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store)
    entry = store.get("ns", "k1")
    assert entry is not None
    x = entry.array("x")
    assert isinstance(x, np.memmap) and not x.flags.writeable
    np.testing.assert_array_equal(x, np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(entry.array("y"), np.full((5, 2), 7.0, dtype=np.float32))
    pd.testing.assert_frame_equal(
        entry.table("t"), pd.DataFrame({"a": [1, 2], "s": ["x", "<b>y</b>"]})
    )
    assert entry.json("doc") == {"hello": ["world"]}
    assert entry.meta == {"note": "n"}
    assert store.keys("ns") == ["k1"]
    assert [p.name for p in (tmp_path / "ns").iterdir()] == ["k1"]  # no temporary left


def test_table_fallback_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    store = Store(tmp_path)
    frame = pd.DataFrame(
        {"i": np.arange(3, dtype=np.int32), "f": [0.5, 1.5, 2.5], "s": list("abc")}
    )
    entry = store.put("ns", "k", tables={"t": frame})
    assert (entry.path / "t.npz").exists() and not (entry.path / "t.parquet").exists()
    back = entry.table("t")
    assert back["s"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(back["i"], frame["i"])
    np.testing.assert_array_equal(back["f"], frame["f"])


def test_keys_are_canonical_and_content_sensitive() -> None:
    assert make_key({"a": 1, "b": [1, 2]}) == make_key({"b": [1, 2], "a": 1})
    assert make_key({"a": 1}) != make_key({"a": 2})
    assert make_key("x", None) != make_key("x", 0)
    assert make_key({"a": np.int64(3)}) == make_key({"a": 3})
    assert len(make_key("x")) == 64
    with pytest.raises(TypeError):
        make_key(object())


def test_format_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = make_key("same")
    monkeypatch.setattr(store_module, "FORMAT_VERSION", store_module.FORMAT_VERSION + 1)
    assert make_key("same") != before


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKENDIM_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert Store().root == tmp_path / "env"
    assert Store(tmp_path / "arg").root == tmp_path / "arg"  # the argument wins
    monkeypatch.delenv("TOKENDIM_CACHE_DIR")
    # Without the variable: the platform's user cache folder, as platformdirs names it.
    assert default_cache_dir().name in ("tokendim-widgets", "Cache")
    assert "tokendim-widgets" in default_cache_dir().parts
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir() == tmp_path / "xdg" / "tokendim-widgets"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert default_cache_dir() == Path.home() / ".cache" / "tokendim-widgets"


def test_an_exception_inside_the_writer_publishes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.writer("ns", "k") as writer:
        writer.write_array("x", np.zeros(3))
        raise RuntimeError("boom")
    assert store.get("ns", "k") is None
    assert list((tmp_path / "ns").iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    ["truncate", "delete_file", "flip_byte", "bad_manifest", "no_manifest", "wrong_key"],
)
def test_damaged_entries_are_detected_and_removed(tmp_path: Path, damage: str) -> None:
    store = Store(tmp_path)
    _write(store)
    path = store.path("ns", "k1")
    if damage == "truncate":
        data = (path / "x.npy").read_bytes()
        (path / "x.npy").write_bytes(data[:-8])
    elif damage == "delete_file":
        (path / "t.parquet").unlink()
    elif damage == "flip_byte":  # same size and time: only the checksum can tell
        stat = (path / "y.npy").stat()
        data = bytearray((path / "y.npy").read_bytes())
        data[-1] ^= 0xFF
        (path / "y.npy").write_bytes(bytes(data))
        os.utime(path / "y.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif damage == "bad_manifest":
        (path / "manifest.json").write_text("{not json")
    elif damage == "no_manifest":
        (path / "manifest.json").unlink()
    elif damage == "wrong_key":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["key"] = "other"
        (path / "manifest.json").write_text(json.dumps(manifest))
    # This process wrote the entry (so knows its checksums) but the files changed since:
    # they are checked again, as a new process would.
    assert store.get("ns", "k1") is None
    assert not path.exists()
    _write(store)  # and it can be written again
    assert store.get("ns", "k1") is not None


COUNT_HASHES = """
import sys
from tokendim_widgets import store
calls = []
real = store.file_sha256
store.file_sha256 = lambda path: calls.append(path) or real(path)
entries = store.Store(sys.argv[1])
for _ in range(2):
    assert entries.get("ns", "k1") is not None
    print(len(calls))
"""


def test_checksums_are_verified_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    _write(store)
    calls = []
    real = store_module.file_sha256
    monkeypatch.setattr(store_module, "file_sha256", lambda p: calls.append(p) or real(p))
    assert store.get("ns", "k1") is not None
    assert calls == []  # the writer's own process knows the files it wrote
    first, second = map(int, in_new_process(COUNT_HASHES, tmp_path).split())
    assert first > 0  # a new process checks them...
    assert second == first  # ...once: its second read only checks sizes and times


def test_concurrent_writers_of_one_key_leave_one_valid_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.writer("ns", "k")
    second = store.writer("ns", "k")
    for writer in (first, second):
        writer.write_array("x", np.ones(4))
    first.commit()
    second.commit()
    entry = store.get("ns", "k")
    assert entry is not None
    np.testing.assert_array_equal(entry.array("x"), np.ones(4))
    assert sorted(p.name for p in (tmp_path / "ns").iterdir()) == ["k"]


DIES_MID_WRITE = """
import os, sys
from tokendim_widgets.store import Store
writer = Store(sys.argv[1]).writer("ns", "k")
writer.write_json("doc", 1)
os._exit(0)  # no clean-up: its temporary folder stays behind
"""


def test_temporary_folders_of_dead_writers_are_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path)
    in_new_process(DIES_MID_WRITE, tmp_path)
    (stale,) = (tmp_path / "ns").iterdir()
    alive = store.writer("ns", "k3")  # this process's writer, still open
    (mine,) = set((tmp_path / "ns").iterdir()) - {stale}
    with store.writer("ns", "k2") as writer:
        writer.write_json("doc", 1)
    assert not stale.exists()
    assert mine.exists()  # a live writer's folder is left alone
    alive.abort()


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from tokendim_widgets.store import Store
    store = Store(sys.argv[1])
    with store.writer("ns", "k") as writer:
        a = writer.create_array("x", (1000, 10), np.float32)
        a[:500] = 1.0
        open(sys.argv[2], "w").close()  # tell the parent we are mid-write
        time.sleep(60)
        a[500:] = 1.0
    """
)


def test_a_writer_killed_mid_write_leaves_no_valid_entry(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "cache"), str(marker)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the writer died before writing"
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    store = Store(tmp_path / "cache")
    assert store.get("ns", "k") is None
    leftovers = list((tmp_path / "cache" / "ns").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    with store.writer("ns", "k") as writer:  # recomputing cleans the dead writer's folder
        writer.write_array("x", np.zeros((1000, 10), np.float32))
    assert store.get("ns", "k") is not None
    assert [p.name for p in (tmp_path / "cache" / "ns").iterdir()] == ["k"]


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            store.path("ns", bad)
    with store.writer("ns", "k") as writer, pytest.raises(ValueError):
        writer.write_array("../escape", np.zeros(1))
    store.remove("ns", "k")
    assert store.get("ns", "k") is None


# ---- resumable writers ------------------------------------------------------------------
STATE = {"rows": 4, "plan": "abc"}


def test_a_resumable_writer_keeps_checkpointed_work_after_an_interruption(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(KeyboardInterrupt), store.resumable_writer("ns", "k", STATE) as writer:
        assert not writer.resumed
        array = writer.create_array("x", (4,), np.float32)
        array[:2] = [1.0, 2.0]
        writer.mark_done([0, 1])
        writer.checkpoint()
        array[2] = 3.0
        writer.mark_done([2])  # not checkpointed: the interrupt's abort records it
        raise KeyboardInterrupt
    assert store.get("ns", "k") is None and store.keys("ns") == []  # never served
    writer = store.resumable_writer("ns", "k", STATE)
    assert writer.resumed and writer.done_items() == [[0, 1], [2]]
    array = writer.create_array("x", (4,), np.float32)
    assert array[:3].tolist() == [1.0, 2.0, 3.0]
    array[3] = 4.0
    entry = writer.commit()
    assert entry.array("x").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert sorted(entry.files) == ["x.npy"]  # the log, state and owner files are not kept
    assert list((tmp_path / "ns").glob(".partial-*")) == []


def test_a_torn_log_line_is_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    writer = store.resumable_writer("ns", "k", STATE)
    writer.create_array("x", (4,), np.float32)
    writer.mark_done([0])
    writer.checkpoint()
    writer.abort()
    with open(writer.path / writer.LOG, "a") as log:
        log.write("[1, ")  # the writer died in the middle of a line
    again = store.resumable_writer("ns", "k", STATE)
    assert again.done_items() == [[0]]


def test_work_of_another_state_is_discarded(tmp_path: Path) -> None:
    store = Store(tmp_path)
    writer = store.resumable_writer("ns", "k", STATE)
    writer.create_array("x", (4,), np.float32)[:] = 7.0
    writer.mark_done([0])
    writer.abort()
    other = store.resumable_writer("ns", "k", {**STATE, "rows": 5})
    assert not other.resumed and other.done_items() == []
    assert not (other.path / "x.npy").exists()


def test_saved_state_survives_for_the_resumed_writer(tmp_path: Path) -> None:
    store = Store(tmp_path)
    writer = store.resumable_writer("ns", "k", STATE)
    writer.save_state(budget=128)
    writer.abort()
    assert store.resumable_writer("ns", "k", STATE).state["budget"] == 128


OWNER = """
import sys, time
from tokendim_widgets.store import Store
writer = Store(sys.argv[1]).resumable_writer("ns", "k", {"rows": 4, "plan": "abc"})
open(sys.argv[2], "w").close()  # tell the parent it owns the partial folder
time.sleep(60)
"""


def test_a_partial_owned_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    store = Store(tmp_path)
    marker = tmp_path / "owned"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path), str(marker)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert owner.poll() is None, "the owner died before taking the work"
            assert time.monotonic() < deadline, "the owner never started"
            time.sleep(0.05)
        # The partial folder is owned by another live process on this host.
        second = store.resumable_writer("ns", "k", STATE)
        assert not isinstance(second, store_module.ResumableWriter)
        second.abort()
    finally:
        owner.kill()
        owner.wait()
    # Its owner is dead now: the next writer takes the work over.
    assert isinstance(store.resumable_writer("ns", "k", STATE), store_module.ResumableWriter)
