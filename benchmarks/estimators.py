"""Estimator benchmark: our kNN + estimators against scikit-dimension and dadapy, same data.

What it measures, at N = 2000, 5000 and 10000 points in D = 768 (float32):

* single estimators, cold: ours = exact kNN graph + one estimator; each reference = one call of
  its estimator on the raw points (each such call runs its own neighbour search);
* the suite of all four (TwoNN, MLE with local values, GRIDE multiscale, correlation dimension):
  ours = one kNN graph (64 neighbours), then the four estimators on it; the references = the
  faster reference of each estimator, one after another (nothing is shared between those calls,
  so their suite costs the sum of the four single timings, which is what is reported). "suite":
  our correlation dimension's window counts are those of all pairs, exact, as the reference's
  (the graph's lists, plus an exact pass for the few points whose 64 neighbours all lie inside
  the window); "suite_graph": it counts only the pairs the graph holds (exact while no point
  has all its 64 neighbours inside the window, see "censored").

Every measurement runs in a fresh worker process (benchmarks/refs/run_*.py) that loads the same
.npy file, imports its library, then times the estimator call alone, ``--calls`` times (default
2): imports and data loading are excluded from "seconds" and included in "wall" (process start
to exit, seen by this driver). The tables report the steady state (the best call after the
first); the first call of each process, which also pays one-time start-up costs, is listed
below each table. Memory is the peak RSS of the worker during a timed call, minus its RSS just
before the call (the Linux high-water mark is reset before each call; see refs/_harness.py), so
it covers numpy, BLAS and torch allocations alike. On CUDA the peak of torch's allocator is
printed as well.

dadapy needs numpy<2 and runs from its own environment, made by benchmarks/setup_references.sh
(benchmarks/.venv-refs); without it the benchmark runs the other two and says so.

The data: a 10-dimensional nonlinear manifold in R^768, x = sin(z A + phi) + noise, with latent
coordinates z uniform in [0, 1]^10, A a fixed 10 x 768 standard normal matrix, phases phi uniform
in [0, 2 pi), and Gaussian noise of standard deviation 0.02 per coordinate; seeded, so every
library and every run sees the same points. At this sampling the estimators read about 9.

Usage::

    python benchmarks/estimators.py                    # N = 2000, 5000, 10000 (a few minutes)
    python benchmarks/estimators.py --quick            # smoke run: N = 1000, all estimators
    python benchmarks/estimators.py --device cuda      # our side on the GPU, references on CPU
    python benchmarks/estimators.py --repeats 3 --json results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REFS = HERE / "refs"
DEFAULT_REFS_PYTHON = (
    HERE / ".venv-refs" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
)

ESTIMATORS = ("twonn", "mle", "gride", "corrint")
SUITES = ("suite", "suite_graph")
ALL_TASKS = (*ESTIMATORS, *SUITES)
LABELS = {
    "twonn": "TwoNN (linear, 10% discarded)",
    "mle": "MLE k=20 + local values",
    "gride": "GRIDE multiscale n1=1..32",
    "corrint": "Correlation dim. k=10/20",
    "suite": "Suite (all four)",
    "suite_graph": "Suite, corr. dim. from graph",
}
# Which tasks each library's worker offers (dadapy has neither MLE nor a correlation dimension).
TASKS = {
    "ours": (*ESTIMATORS, "suite", "suite_graph"),
    "skdim": ESTIMATORS,
    "dadapy": ("twonn", "gride"),
}
TARGET_SINGLE = 2.0
TARGET_SUITE = 10.0


def make_cloud(
    n: int,
    d: int = 768,
    intrinsic: int = 10,
    noise: float = 0.02,
    seed: int = 0,
) -> np.ndarray:
    """A seeded ``intrinsic``-dimensional nonlinear manifold in R^d, plus Gaussian noise.

    Parameters
    ----------
    n, d : int
        Number of points and ambient dimension.
    intrinsic : int
        Dimension of the latent cube that is embedded.
    noise : float
        Standard deviation of the isotropic Gaussian noise, per coordinate.
    seed : int
        The map (A, phi) depends on ``seed`` only, not on ``n``, so clouds of different sizes
        lie on the same manifold.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (n, d).

    Examples
    --------
    >>> make_cloud(5, d=16).shape
    (5, 16)
    """
    rng_map = np.random.default_rng([seed, 1])
    rng_points = np.random.default_rng([seed, 2])
    A = rng_map.normal(size=(intrinsic, d))
    phase = rng_map.uniform(0.0, 2.0 * np.pi, size=d)
    z = rng_points.uniform(size=(n, intrinsic))
    X = np.sin(z @ A + phase) + noise * rng_points.normal(size=(n, d))
    return X.astype(np.float32)


@dataclass
class Run:
    """The best (fastest) of the repeats of one (library, task, N).

    ``seconds``: steady state (the fastest call after the first in a worker process);
    ``first_seconds``: the first call in a fresh process; ``wall``: the whole worker process.
    """

    library: str
    task: str
    n: int
    seconds: float = float("inf")
    first_seconds: float = float("inf")
    wall: float = float("inf")
    peak_mib: float = float("nan")
    values: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def add(self, result: dict[str, Any], wall: float) -> None:
        if result["seconds"] < self.seconds:
            self.seconds = result["seconds"]
            self.peak_mib = result["peak_rss_increase_mib"]
            self.values = result["values"]
            self.extra = {k: v for k, v in result.items() if k not in {"values", "seconds"}}
        self.first_seconds = min(self.first_seconds, result.get("first_seconds", float("inf")))
        self.wall = min(self.wall, wall)


def worker_command(library: str, refs_python: Path, device: str, calls: int) -> list[str] | None:
    """The worker's command line, with ``{data}`` and ``{task}`` to fill in."""
    args = ["{data}", "{task}", "--calls", str(calls)]
    if library == "dadapy":
        if not refs_python.exists():
            return None
        return [str(refs_python), str(REFS / "run_dadapy.py"), *args]
    if library == "skdim":
        return [sys.executable, str(REFS / "run_skdim.py"), *args]
    return [sys.executable, str(REFS / "run_ours.py"), *args, "--device", device]


def worker_env(threads: int | None) -> dict[str, str]:
    """The workers' environment; ``threads`` caps every thread pool (BLAS, OpenMP, torch)."""
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def run_worker(
    cmd: list[str], data: Path, task: str, timeout: float, env: dict[str, str]
) -> tuple[dict[str, Any], float]:
    """Run one worker; return its JSON result and the wall time of the whole process."""
    fill = {"{data}": str(data), "{task}": task}
    argv = [fill.get(a, a) for a in cmd]
    start = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"exit {proc.returncode}: " + " ".join(tail))
    return json.loads(lines[-1]), wall


def fmt_value(run: Run | None, task: str) -> str:
    """The value(s) an estimator produced, short enough for one table cell."""
    if run is None or run.error is not None or not run.values:
        return "-"
    v = run.values
    if task in SUITES:
        parts = [fmt_value(Run("", t, 0, values=v.get(t, {})), t) for t in ESTIMATORS]
        return " / ".join(parts)
    if task == "gride":
        return " ".join(f"{x:.2f}" for x in v.get("dimensions", []))
    if task == "mle":
        local = v.get("local", {})
        return f"{v['dimension']:.3f} (local mean {local.get('mean', float('nan')):.3f})"
    censored = v.get("censored_fraction", 0.0)
    return f"{v['dimension']:.3f}" + (f" (censored {censored:.1%})" if censored > 0 else "")


def fmt_s(x: float) -> str:
    return "-" if not np.isfinite(x) else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ok(run: Run | None) -> Run | None:
    return run if run is not None and run.error is None else None


def report(runs: dict[tuple[str, str, int], Run], sizes: list[int]) -> dict[int, dict[str, float]]:
    """Print one table per N; return the speed-up of ours over the faster reference."""
    speedups: dict[int, dict[str, float]] = {}
    for n in sizes:
        print(f"\nN = {n}")
        head = (
            f"{'estimator':<31} {'ours s':>7} {'skdim s':>8} {'dadapy s':>9} {'speedup':>8}"
            f" {'ours MiB':>9} {'ref MiB':>8}  values: ours | skdim | dadapy"
        )
        print(head)
        print("-" * len(head))
        speedups[n] = {}
        best_ref: dict[str, Run] = {}
        for task in ALL_TASKS:
            ours = _ok(runs.get(("ours", task, n)))
            skdim = _ok(runs.get(("skdim", task, n)))
            dadapy = _ok(runs.get(("dadapy", task, n)))
            if task in SUITES:
                # Nothing is shared between reference calls: their suite costs the sum.
                complete = len(best_ref) == len(ESTIMATORS)
                ref_s = sum(r.seconds for r in best_ref.values()) if complete else float("nan")
                ref_mib = max((r.peak_mib for r in best_ref.values()), default=float("nan"))
                cells = ["-" if ours is None else fmt_s(ours.seconds), fmt_s(ref_s) + "*", ""]
                values = "ours: " + fmt_value(ours, task)
            else:
                candidates = [r for r in (skdim, dadapy) if r is not None]
                if candidates:
                    best_ref[task] = min(candidates, key=lambda r: r.seconds)
                ref_s = best_ref[task].seconds if task in best_ref else float("nan")
                ref_mib = best_ref[task].peak_mib if task in best_ref else float("nan")
                cells = [fmt_s(r.seconds) if r is not None else "-" for r in (ours, skdim, dadapy)]
                values = " | ".join(fmt_value(r, task) for r in (ours, skdim, dadapy))
            ours_s = ours.seconds if ours is not None else float("nan")
            speedup = ref_s / ours_s if np.isfinite(ref_s) and np.isfinite(ours_s) else float("nan")
            speedups[n][task] = speedup
            ours_mib = ours.peak_mib if ours is not None else float("nan")
            print(
                f"{LABELS[task]:<31} {cells[0]:>7} {cells[1]:>8} {cells[2]:>9}"
                f" {f'{speedup:.1f}x' if np.isfinite(speedup) else '-':>8}"
                f" {ours_mib:>9.0f} {ref_mib:>8.0f}  {values}"
            )
        print(
            "  speedup = faster reference / ours; * reference suite = sum of the faster reference"
            " per estimator (each searches again); its MiB = the largest of those"
        )
        breakdown = []
        for task in ALL_TASKS:
            ours = _ok(runs.get(("ours", task, n)))
            if ours is not None and ours.values.get("parts"):
                parts = ours.values["parts"]
                breakdown.append(f"{task}: " + " + ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        if breakdown:
            print("  ours, where the time goes (s): " + "; ".join(breakdown))
        cuda = [
            f"{task} {run.values['cuda_peak_mib']:.0f}"
            for task in ALL_TASKS
            if (run := _ok(runs.get(("ours", task, n)))) is not None
            and "cuda_peak_mib" in run.values
        ]
        if cuda:
            print("  ours, CUDA allocator peak (MiB): " + ", ".join(cuda))
        first = []
        for task in ESTIMATORS:
            cells = []
            for lib in ("ours", "skdim", "dadapy"):
                run = _ok(runs.get((lib, task, n)))
                if run is not None and np.isfinite(run.first_seconds):
                    cells.append(f"{lib} {fmt_s(run.first_seconds)}")
            if cells:
                first.append(f"{task}: " + ", ".join(cells))
        if first:
            print("  first call in a fresh process (s): " + "; ".join(first))
        for (lib, task, m), run in sorted(runs.items()):
            if m == n and run.error is not None:
                print(f"  ! {lib} {task}: {run.error}")
    return speedups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 1000 only")
    parser.add_argument("--sizes", default="2000,5000,10000", help="comma-separated N values")
    parser.add_argument("--dim", type=int, default=768, help="ambient dimension D")
    parser.add_argument("--device", default="auto", help="device of our kNN: auto, cpu, cuda")
    parser.add_argument("--repeats", type=int, default=1, help="fresh runs per cell; best kept")
    parser.add_argument(
        "--calls", type=int, default=2, help="calls per worker process (first = cold start)"
    )
    parser.add_argument(
        "--libraries", default="ours,skdim,dadapy", help="subset of ours,skdim,dadapy"
    )
    parser.add_argument(
        "--refs-python",
        type=Path,
        default=DEFAULT_REFS_PYTHON,
        help="interpreter of the dadapy environment (setup_references.sh makes it)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="cap every worker's thread pools (OMP/OpenBLAS/MKL_NUM_THREADS); default: all cores",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker run")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)

    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    libraries = [lib.strip() for lib in args.libraries.split(",") if lib.strip()]
    unknown = set(libraries) - set(TASKS)
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}; use ours, skdim, dadapy")

    print("Estimator benchmark: ours vs scikit-dimension vs dadapy, same data, fresh process each")
    print(
        f"date {dt.datetime.now().isoformat(timespec='seconds')}, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, device {args.device}"
    )
    if hasattr(os, "getloadavg"):
        print(f"load average at start (1, 5, 15 min): {_load()}")
    print(
        f"data: {args.dim}-D float32, 10-D sin manifold + noise 0.02, seed {args.seed};"
        f" N = {sizes}; best of {args.repeats} fresh run(s);"
        f" threads per worker: {args.threads or 'all cores'}"
    )
    print(
        "seconds: the estimator call(s) alone, best steady-state call (after the first in each"
        " worker process); MiB: peak RSS increase during a call"
    )

    if "ours" in libraries and args.device != "auto":
        # Fail before minutes of reference runs, not in every worker.
        sys.path.insert(0, str(HERE.parent))
        from tokendim_widgets.devices import resolve_device
        from tokendim_widgets.errors import TokendimError

        try:
            resolve_device(args.device)
        except TokendimError as exc:
            parser.error(str(exc))

    commands: dict[str, list[str]] = {}
    for lib in libraries:
        cmd = worker_command(lib, args.refs_python, args.device, args.calls)
        if cmd is None:
            print(
                f"note: {lib} skipped: no reference environment at {args.refs_python}"
                " (run benchmarks/setup_references.sh)"
            )
            continue
        commands[lib] = cmd

    env = worker_env(args.threads)
    runs: dict[tuple[str, str, int], Run] = {}
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tokendim-bench-") as tmp:
        for n in sizes:
            data = Path(tmp) / f"cloud_{n}.npy"
            np.save(data, make_cloud(n, d=args.dim, seed=args.seed))
            for _ in range(args.repeats):
                # Interleave libraries within each task so a burst of load from elsewhere
                # hits them alike rather than one library's whole column.
                for task in ALL_TASKS:
                    for lib, cmd in commands.items():
                        if task not in TASKS[lib]:
                            continue
                        run = runs.setdefault((lib, task, n), Run(lib, task, n))
                        try:
                            result, wall = run_worker(cmd, data, task, args.timeout, env)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            run.error = str(exc)
                            continue
                        run.add(result, wall)
                        records.append({**result, "wall": wall})
                        print(
                            f"  N={n} {lib:>6} {task:<8} {result['seconds']:8.3f} s"
                            f" (wall {wall:6.2f} s, +{result['peak_rss_increase_mib']:.0f} MiB)",
                            flush=True,
                        )

    speedups = report(runs, sizes)
    if hasattr(os, "getloadavg"):
        print(f"\nload average at end (1, 5, 15 min): {_load()}")

    n_max = max(sizes)
    line = [f"targets at N={n_max}:"]
    for task in ALL_TASKS:
        s = speedups[n_max].get(task, float("nan"))
        target = TARGET_SUITE if task in SUITES else TARGET_SINGLE
        if np.isfinite(s):
            verdict = "met" if s >= target else "MISSED"
            line.append(f"{task} {s:.1f}x (>= {target:.0f}x {verdict})")
        else:
            line.append(f"{task} - (not measured)")
    print(" ".join(line[:1]) + " " + "; ".join(line[1:]))
    if n_max < 10000:
        print("(the targets are defined at N = 10000; this run is smaller)")

    if args.json is not None:
        args.json.write_text(json.dumps({"records": records, "speedups": speedups}, indent=1))
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
