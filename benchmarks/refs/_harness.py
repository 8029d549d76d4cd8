"""Timing and memory harness shared by the benchmark workers.

Each worker process runs ONE task on ONE data file and prints one JSON line. A fresh process per
task keeps the measurements independent: no warm caches from an earlier task, no memory left over,
and the peak-memory figure belongs to that task alone.

This module must import under both environments the benchmark uses: the project's (numpy 2,
Python 3.10+) and benchmarks/.venv-refs (numpy 1.26 for dadapy). So: standard library and numpy
only, and nothing newer than Python 3.9 syntax at runtime.

Each task runs ``--calls`` times (default 2) in the process: the first call pays one-time costs
(thread pools, lazy initialisation), the later ones show the steady state.

Memory: the figure reported is the largest, over the calls, of the peak resident set size (RSS)
during a call minus the RSS just before it. On Linux the kernel's high-water mark (VmHWM) is
reset through /proc/self/clear_refs right before each call, so the peak is that of the call
alone. Elsewhere the process-lifetime ``ru_maxrss`` is used, which can only over-report (the
baseline of imports), never miss a call's own peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Task = Callable[[np.ndarray], dict[str, Any]]

_STATUS = "/proc/self/status"

#: The parsed command line of this worker, for tasks that need an option (``device``).
OPTIONS: dict[str, Any] = {}


def _status_kib(field: str) -> int | None:
    """Return a ``/proc/self/status`` field in KiB, or None off Linux."""
    try:
        with open(_STATUS) as fh:
            text = fh.read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark for this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, Linux KiB.
    return peak // 1024 if sys.platform == "darwin" else peak


def _current_rss_kib() -> int:
    rss = _status_kib("VmRSS")
    return rss if rss is not None else _maxrss_kib()


def _measure_once(task: Task, X: np.ndarray) -> tuple[float, dict[str, Any], float, bool]:
    """(seconds, values, peak RSS increase in MiB, peak exact?) of one call of ``task(X)``."""
    rss_before = _current_rss_kib()
    exact_peak = _reset_peak() and _status_kib("VmHWM") is not None
    start = time.perf_counter()
    values = task(X)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if exact_peak else _maxrss_kib()
    assert peak is not None
    return seconds, values, max(0, peak - rss_before) / 1024, exact_peak


def measure(task: Task, X: np.ndarray, calls: int = 2) -> dict[str, Any]:
    """Run ``task(X)`` ``calls`` times in this process; return its values, times and memory.

    The first call of a process pays one-time costs (thread pools, lazy imports, allocator
    warm-up); later calls show the steady state a long-lived session sees. Both are kept:
    ``first_seconds`` and ``seconds`` (the fastest later call; the first when ``calls == 1``).
    """
    rss_before = _current_rss_kib()
    runs = [_measure_once(task, X) for _ in range(max(1, calls))]
    times = [r[0] for r in runs]
    # Report the fastest steady-state call, with the inner timings ("parts") of that call.
    best = 0 if len(runs) == 1 else 1 + int(np.argmin(times[1:]))
    return {
        "seconds": times[best],
        "first_seconds": times[0],
        "call_seconds": times,
        "values": runs[best][1],
        "rss_before_mib": rss_before / 1024,
        "peak_rss_increase_mib": max(r[2] for r in runs),
        "peak_method": "VmHWM reset" if all(r[3] for r in runs) else "ru_maxrss",
    }


def thread_info() -> dict[str, Any]:
    """BLAS / OpenMP thread pools of this process (threadpoolctl when installed)."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    info["pools"] = [
        {"api": p.get("internal_api"), "threads": p.get("num_threads")} for p in threadpool_info()
    ]
    return info


def main(library: str, tasks: dict[str, Task], versions: Callable[[], dict[str, str]]) -> None:
    """Command line of every worker: ``WORKER DATA.npy TASK``; prints one JSON line."""
    parser = argparse.ArgumentParser(description=f"Run one {library} benchmark task.")
    parser.add_argument("data", help="float32 .npy file (n_points, n_features)")
    parser.add_argument("task", choices=sorted(tasks))
    parser.add_argument("--calls", type=int, default=2, help="calls in this process")
    parser.add_argument("--device", default="auto", help="for workers that can use a GPU")
    args = parser.parse_args()
    OPTIONS.update(vars(args))

    started = time.perf_counter()
    X = np.load(args.data)
    result = measure(tasks[args.task], X, args.calls)
    result.update(
        library=library,
        task=args.task,
        n=int(X.shape[0]),
        d=int(X.shape[1]),
        versions={"python": platform.python_version(), "numpy": np.__version__, **versions()},
        threads=thread_info(),
        in_process_seconds=time.perf_counter() - started,
    )
    print(json.dumps(result))


def as_float(value: Any) -> float:
    """A plain float for JSON (numpy scalars, 0-d arrays and torch scalars alike)."""
    return float(np.asarray(value, dtype=np.float64))


def as_list(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def local_summary(local: Any) -> dict[str, float]:
    """Summary of per-point values: enough to compare two implementations by eye."""
    arr = np.asarray(local, dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    return {
        "n": float(arr.size),
        "n_finite": float(finite.size),
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "median": float(np.median(finite)) if finite.size else float("nan"),
        "harmonic_mean": float(1.0 / np.mean(1.0 / finite)) if finite.size else float("nan"),
    }
