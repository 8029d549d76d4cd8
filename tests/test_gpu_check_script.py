"""benchmarks/gpu_check.sh on a machine without CUDA: it stops at once, before any step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device: the script runs for real")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_without_cuda_the_script_skips_before_installing_or_testing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "SKIP: no CUDA device" in done.stdout
    # Nothing after the device check ran: no environment report, install or test suite.
    assert "package registry" not in done.stdout and "test suite" not in done.stdout
    assert not list(tmp_path.iterdir())
    assert time.monotonic() - started < 60
