"""Fixtures of the fault-injection suite: a small disk and helpers for child processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment of a child Python: this checkout first on the path, quiet libraries."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # One thread each: children of a test share the CPUs with the test run itself.
    env.update(
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_disk(size)`` -> a fresh tmpfs of that size (e.g. "64k"), unmounted afterwards.

    Skips where mounting is not possible (not root, no tmpfs, a container without the
    capability).
    """
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if not sys.platform.startswith("linux") or shutil.which("mount") is None:
            pytest.skip("needs Linux and mount(8) to make a small tmpfs")
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)
