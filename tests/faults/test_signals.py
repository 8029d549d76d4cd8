"""Ctrl-C in `tokendim report`: exit 130, no abort, no temporary folder, resumable from cache."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tokendim_widgets import extract
from tokendim_widgets.extraction import NAMESPACE
from tokendim_widgets.store import Store

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "model", "layer")


def _prompts(path: Path, n: int) -> Path:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _interrupt_at(stage: str, model: str, prompts: Path, out: Path, env: dict) -> tuple:
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "tokendim_widgets.cli", "report", "--model", model),
            *("--prompts", str(prompts), "--out", str(out)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:  # stage lines ("... extracting") on stdout, not a terminal
        seen.append(line.strip())
        if line.strip() == f"... {stage}":
            break
    else:  # pragma: no cover - the run ended before the stage
        child.wait()
        pytest.fail(f"no {stage!r} stage: {seen}, {child.stderr.read() if child.stderr else ''}")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    return child.returncode, err


@pytest.mark.parametrize(("stage", "n_prompts"), [("extracting", 800), ("estimating", 300)])
def test_ctrl_c_in_report_exits_130_cleanly(tiny_dir, tmp_path, child_env, stage, n_prompts):
    cache = tmp_path / "cache"
    env = {**child_env, "TOKENDIM_CACHE_DIR": str(cache)}
    prompts = _prompts(tmp_path / "prompts.txt", n_prompts)
    out = tmp_path / "report"
    code, err = _interrupt_at(stage, tiny_dir("llama"), prompts, out, env)
    assert code == 130, err
    assert err.strip().splitlines() == ["tokendim: interrupted"]  # no abort, no traceback
    assert not out.exists()  # the run created it and leaves nothing behind
    temporary = [p for p in cache.rglob(".tmp*")]
    assert temporary == []
    store = Store(cache)
    if stage == "estimating":  # the hidden states were cached before the interrupt
        assert len(store.keys(NAMESPACE)) == 1
        calls: list[tuple] = []
        extract(
            tiny_dir("llama"),
            prompts,
            cache_dir=cache,
            progress=lambda *args: calls.append(args),
        )
        assert calls and calls[0][2] == 0.0  # served from the cache, not recomputed
    else:
        assert store.keys(NAMESPACE) == []
