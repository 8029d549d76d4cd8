"""Sweeps on a real two-node Ray cluster, started by the test on loopback only.

The cluster (a head node and a second node, one CPU each) and its driver run inside a network
namespace of their own (``unshare -n``) where loopback is the only interface, so Ray reaches no
other address. One driver run (tests/ray_sweep_driver.py) serves every test of this module.
Teardown ends the cluster's processes by pid: they carry a marker in their environment that is
unique to this run (``ray stop`` would end every Ray process of the machine by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_sweep import PROMPTS

pytest.importorskip("ray", reason="Ray is part of the test extra: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("ray_sweep_driver.py")
SHIMS = Path(__file__).with_name("ray_shims")  # see ray_shims/rfc3987_syntax.py
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_PORT = 26390
# Fixed agent ports: a raylet given them does not wait for its agents to report theirs, which
# a busy machine can make it miss. Above Ray's default worker port range (10002-19999).
HEAD_PORTS = "--metrics-export-port=26401 --dashboard-agent-grpc-port=26402 "
HEAD_PORTS += "--dashboard-agent-listen-port=26403 --runtime-env-agent-port=26404"
NODE_PORTS = "--metrics-export-port=26411 --dashboard-agent-grpc-port=26412 "
NODE_PORTS += "--dashboard-agent-listen-port=26413 --runtime-env-agent-port=26414"


def _can_unshare() -> bool:
    try:
        done = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _session_of(pid: str) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[3])  # field 6: session id


def _marked(marker: str, session: int) -> list[int]:
    """Pids of this run's cluster: the Unix session the run was started in (Ray's daemons,
    agents and workers stay in it), or the run's marker in the environment (a process that
    rewrites its title can overwrite its environment block, so the session comes first)."""
    needle = f"TOKENDIM_RAY_TEST={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            if _session_of(entry) == session or needle in environ:
                pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _stop_cluster(marker: str, session: int) -> None:
    """End this run's cluster processes by pid: SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 1.0)):
        pids = _marked(marker, session)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and _marked(marker, session) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster_run(tiny_dir: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not _can_unshare():
        pytest.skip(
            "`unshare -n` is not permitted here: the Ray tests need a network "
            "namespace to keep the cluster on loopback (run as root)"
        )
    out = tmp_path_factory.mktemp("ray-sweep")
    marker = uuid.uuid4().hex
    ray_tmp = tempfile.mkdtemp(prefix="tdray-")  # short: Ray's socket paths have a length limit
    config = {
        "address": f"127.0.0.1:{HEAD_PORT}",
        "marker": marker,
        "out": str(out),
        "models": {arch: tiny_dir(arch) for arch in ("gpt2", "llama", "bert")},
        "prompts": PROMPTS,
        "estimators": ["twonn", "mle"],
        "cache_ray": str(out / "cache-ray"),
        "cache_local": str(out / "cache-local"),
    }
    (out / "config.json").write_text(json.dumps(config))
    # Ray 2.60's raylet gives its agents a fixed 15 s to start and exits when they miss it; a
    # busy machine (or tests run under `nice`) makes them miss it. So the cluster starts at a
    # raised priority and everything of this run goes back to low priority (by pid, every
    # process of the run's session) before any work: workers started later inherit it.
    script = f"""set -e
ip link set lo up
renice -n -10 -p $$ > /dev/null
{RAY} start --head --num-cpus=1 --port={HEAD_PORT} --include-dashboard=false \
  --temp-dir={ray_tmp} {HEAD_PORTS} > {out}/head.log 2>&1
{RAY} start --address=127.0.0.1:{HEAD_PORT} --num-cpus=1 {NODE_PORTS} > {out}/node.log 2>&1
for pid in $(ps -o pid= -s $$); do renice -n 10 -p "$pid" > /dev/null 2>&1 || true; done
{sys.executable} {DRIVER} {out}/config.json
"""
    env = dict(os.environ)
    env.update(
        TOKENDIM_RAY_TEST=marker,
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        # A busy machine (CI, shared runners) starts a raylet slowly: wait for it.
        RAY_raylet_start_wait_time_s="300",
        PYTHONPATH=os.pathsep.join(p for p in (str(SHIMS), str(REPO), env.get("PYTHONPATH")) if p),
    )
    # A session of its own (its id is the leader's pid): teardown finds every cluster process.
    proc = subprocess.Popen(
        ["unshare", "-n", "bash", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=900)
    finally:
        proc.kill()
        proc.wait()
        _stop_cluster(marker, proc.pid)
        raylet = Path(ray_tmp, "session_latest", "logs", "raylet.out")
        if raylet.exists():
            (out / "raylet.log").write_text(raylet.read_text(errors="replace")[-3000:])
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if proc.returncode != 0:
        logs = "".join(
            f"\n--- {name}\n{(out / name).read_text()[-3000:]}"
            for name in ("head.log", "node.log", "raylet.log")
            if (out / name).exists()
        )
        pytest.fail(f"cluster run failed ({proc.returncode}):\n{stderr[-4000:]}{logs}")
    yield out


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / f"{name}.csv")


def test_two_node_cluster_sweep_equals_local(cluster_run: Path) -> None:
    report = json.loads((cluster_run / "report.json").read_text())
    assert report["nodes"] == 2 and report["cpus"] == 2
    ray_models, local_models = _read(cluster_run, "ray_models"), _read(cluster_run, "local_models")
    assert list(ray_models["status"]) == ["computed"] * 3
    assert list(local_models["status"]) == ["computed"] * 3
    ray_curves, local_curves = _read(cluster_run, "ray_curves"), _read(cluster_run, "local_curves")
    assert len(ray_curves) == len(local_curves) == 2 * (3 + 4 + 3)  # estimators x layers
    for column in ("dimension", "lower", "upper", "depth", "n_distinct"):
        np.testing.assert_allclose(ray_curves[column], local_curves[column], rtol=1e-6)
    ray_metrics, local_metrics = (
        _read(cluster_run, "ray_metrics"),
        _read(cluster_run, "local_metrics"),
    )
    for column in ("working_dimension", "bits_per_byte", "loss", "bits_per_byte_upper"):
        np.testing.assert_allclose(ray_metrics[column], local_metrics[column], rtol=1e-6)


def test_killed_worker_is_retried_without_a_half_written_entry(cluster_run: Path) -> None:
    report = json.loads((cluster_run / "report.json").read_text())
    killed = report["killed"]
    assert killed.get("pid"), "no worker was seen running a model"
    models = _read(cluster_run, "ray_models")
    assert (models["status"] == "computed").all()
    # The model whose worker was killed ran again in another process.
    workers = [w.rsplit(":", 1)[1] for w in models["worker"]]
    assert str(killed["pid"]) not in workers
    assert report["entries"]["broken"] == 0
    assert report["entries"]["complete"] == 6  # hidden states and sweep result of 3 models
    assert report["entries"]["temporary"] == []


def test_cached_sweep_runs_no_forward_pass(cluster_run: Path) -> None:
    models = _read(cluster_run, "cached_models")
    # Workers where every forward pass raises: all three read back from the shared cache.
    assert list(models["status"]) == ["cached"] * 3, models["error"].tolist()
    pd.testing.assert_frame_equal(
        _read(cluster_run, "cached_curves"), _read(cluster_run, "ray_curves")
    )
