"""A full disk is a clear TokendimError naming the cache folder, never a killed process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tokendim_widgets import TokendimError, extract
from tokendim_widgets.store import Store

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "She opened the door, looked outside and smiled at the rain.",
]


def _fill(path: Path) -> None:
    """Fill the disk holding ``path`` to its last block."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".tmp"))


def test_an_array_larger_than_the_free_space_is_refused(small_disk):
    disk = small_disk("256k")
    store = Store(disk / "cache")
    with pytest.raises(TokendimError) as caught, store.writer("ns", "k") as writer:
        writer.create_array("x", (1000, 1000), np.float32)  # 4 MB on a 256 kB disk
    message = str(caught.value)
    assert str(disk / "cache") in message and "4.0 MB" in message and "cache=False" in message
    assert store.get("ns", "k") is None
    assert _leftovers(disk) == []  # the partial entry is removed


@pytest.mark.parametrize("what", ["json", "array", "table"])
def test_small_writes_on_a_full_disk_raise_our_error(small_disk, what):
    import pandas as pd

    disk = small_disk("64k")
    store = Store(disk / "cache")
    writer = store.writer("ns", "k")
    _fill(disk / "filler")
    with pytest.raises(TokendimError, match="Not enough disk space in the cache folder"):
        if what == "json":
            writer.write_json("doc", {"text": "x" * 20_000})
        elif what == "array":
            writer.write_array("x", np.ones(20_000))
        else:
            writer.write_table("t", pd.DataFrame({"a": np.arange(20_000)}))
    assert not writer.path.exists()


def test_a_full_disk_before_the_first_file_raises_our_error(small_disk):
    disk = small_disk("64k")
    _fill(disk / "filler")
    with pytest.raises(TokendimError, match="Not enough disk space in the cache folder"):
        Store(disk / "cache").put("ns", "k", arrays={"x": np.ones(10)})
    assert _leftovers(disk) == []


# Writes through a memory map whose file is then squeezed by another writer filling the
# disk: with the space reserved at creation, the writes land; without, the child dies of
# SIGBUS (exit -7). Run in a child so that a failure cannot take pytest down.
SQUEEZE = textwrap.dedent(
    """
    import os
    import sys
    import numpy as np
    from tokendim_widgets import TokendimError
    from tokendim_widgets.store import Store
    disk = sys.argv[1]
    store = Store(disk + "/cache")
    writer = store.writer("ns", "k")
    x = writer.create_array("x", (256, 256), np.float32)  # 256 kB of a 512 kB disk
    fd = os.open(disk + "/filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError:
        pass
    os.close(fd)
    x[:] = 1.0  # every page of the map is touched
    try:
        writer.commit()  # the manifest needs a little more room
        print("committed")
    except TokendimError as exc:
        print("refused:", exc)
    """
)


def test_a_disk_that_fills_during_a_memory_mapped_write_does_not_kill_the_process(
    small_disk, child_env
):
    disk = small_disk("512k")
    done = subprocess.run(
        [sys.executable, "-c", SQUEEZE, str(disk)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "Bus error" not in done.stderr
    assert done.stdout.startswith(("committed", "refused: Not enough disk space"))
    if done.stdout.startswith("refused"):
        assert _leftovers(disk) == []


def test_extraction_on_a_full_disk_says_how_much_is_needed(small_disk, tiny):
    disk = small_disk("16k")
    pair = tiny("gpt2")
    with pytest.raises(TokendimError) as caught:
        extract(pair, PROMPTS * 4, cache_dir=disk / "cache", progress=False)
    message = str(caught.value)
    assert str(disk / "cache") in message and "MB" in message
    assert "cache=False" in message
    assert _leftovers(disk) == [] and Store(disk / "cache").keys("hidden_states") == []
    # The advice works: without the cache the same call succeeds.
    states = extract(pair, PROMPTS * 4, cache=False, progress=False)
    assert states.n_tokens > 0
