"""Driver of the Ray sweep tests; runs inside the test's network namespace, on its cluster.

Usage: ``python ray_sweep_driver.py CONFIG.json``. Runs (1) a Ray sweep during which one worker
running a model is killed by its pid, (2) the same sweep again on the filled cache with every
forward pass made to fail in the workers, (3) the same sweep locally in this process on a
fresh cache; writes the results and a report (JSON) into the config's ``out`` folder.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray

from tokendim_widgets.store import Store
from tokendim_widgets.sweeps import sweep


def _marked_tasks(marker: bytes) -> list[int]:
    """Pids of this cluster's worker processes that are running a sweep task."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::tokendim-sweep") and marker in environ.split(b"\0"):
            pids.append(int(entry))
    return pids


def _kill_one(marker: bytes, record: dict[str, Any], stop: threading.Event) -> None:
    """Kill the first worker seen running a model, once it has run for a second."""
    first_seen: dict[int, float] = {}
    while not stop.is_set():
        now = time.monotonic()
        for pid in _marked_tasks(marker):
            first_seen.setdefault(pid, now)
            if now - first_seen[pid] > 1.0:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                os.kill(pid, signal.SIGKILL)
                record.update(pid=pid, title=title)
                return
        time.sleep(0.05)


def _forbid_forward() -> None:
    """Worker setup hook: any torch module call (a forward pass) raises."""
    import torch

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("forward pass in a sweep of cached models")

    torch.nn.Module.__call__ = refuse  # type: ignore[method-assign]


def _entries(root: str) -> dict[str, Any]:
    store = Store(root)
    complete, broken, temporary = 0, 0, []
    for namespace in ("hidden_states", "sweep"):
        for key in store.keys(namespace):
            if store.get(namespace, key, verify=True) is None:
                broken += 1
            else:
                complete += 1
        folder = Path(root) / namespace
        if folder.is_dir():
            temporary += [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    return {"complete": complete, "broken": broken, "temporary": temporary}


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    out = Path(cfg["out"])
    marker = f"TOKENDIM_RAY_TEST={cfg['marker']}".encode()
    common = {"estimators": cfg["estimators"], "progress": False}
    report: dict[str, Any] = {}

    ray.init(address=cfg["address"], log_to_driver=False)
    report["cpus"] = ray.cluster_resources().get("CPU", 0)
    report["nodes"] = sum(1 for node in ray.nodes() if node["Alive"])

    killed: dict[str, Any] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_one, args=(marker, killed, stop), daemon=True)
    watcher.start()
    started = time.perf_counter()
    first = sweep(
        cfg["models"], cfg["prompts"], executor="ray", cache_dir=cfg["cache_ray"], **common
    )
    report["ray_seconds"] = time.perf_counter() - started
    stop.set()
    watcher.join()
    report["killed"] = killed
    report["entries"] = _entries(cfg["cache_ray"])

    # Reconnect with a job-level setup hook: every worker of this job refuses forward passes.
    ray.shutdown()
    ray.init(
        address=cfg["address"],
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": _forbid_forward},
    )
    started = time.perf_counter()
    cached = sweep(
        cfg["models"], cfg["prompts"], executor="ray", cache_dir=cfg["cache_ray"], **common
    )
    report["cached_seconds"] = time.perf_counter() - started
    ray.shutdown()

    started = time.perf_counter()
    local = sweep(
        cfg["models"], cfg["prompts"], executor="local", cache_dir=cfg["cache_local"], **common
    )
    report["local_seconds"] = time.perf_counter() - started

    for name, result in (("ray", first), ("cached", cached), ("local", local)):
        result.curves.to_csv(out / f"{name}_curves.csv", index=False)
        result.metrics.to_csv(out / f"{name}_metrics.csv", index=False)
        result.models.to_csv(out / f"{name}_models.csv", index=False)
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
