"""Benchmark worker for tokendim_widgets' kNN graph and estimators (the project's environment).

Usage: ``python benchmarks/refs/run_ours.py DATA.npy TASK [--device auto|cpu|cuda]``; prints one
JSON line (see ``_harness.py``). The counterpart of run_skdim.py / run_dadapy.py: same data,
same formulas, timed the same way.

* A single-estimator task is cold: duplicate removal + the exact kNN graph at the estimator's
  ``required_neighbors`` + the estimate; exactly what ``Estimator().fit(X)`` does, written out
  so the two parts can be timed apart (``values["parts"]``). The correlation dimension is timed
  as ``CorrelationDimension().fit(X)`` whole (it sizes its own graph, ``3 * k2`` neighbours).
* ``suite``: one graph at the largest ``required_neighbors`` of the four (64, for GRIDE), then
  the four estimators fitted on it (``fit(knn=graph)``: no second search); the correlation
  dimension's window counts are those of every pair (``fit(X, knn=graph)``: the graph's lists
  plus an exact pass for the points it censors), as the reference's.
* ``suite_graph``: the same, but the correlation dimension counts only the pairs the graph
  holds (``fit(knn=graph)``): no pass over all pairs, exact only while no point has all its
  64 neighbours inside r_max (``censored_fraction`` in the values).

On CUDA the timed region ends after the results are back on the host (they are numpy), so no
asynchronous work is left out.
"""

from __future__ import annotations

import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import _harness as h  # the workers run as scripts: their folder is on sys.path
import numpy as np

# The repository root, so the benchmark measures the working tree without an install.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from tokendim_widgets.estimators import (
    GRIDE,
    MLE,
    CorrelationDimension,
    TwoNN,
)
from tokendim_widgets.knn import KNNGraph, build_graph


def _device() -> str:
    return str(h.OPTIONS.get("device", "auto"))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_cuda_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _cuda_peak(out: dict[str, Any]) -> None:
    if torch.cuda.is_available():
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20


def _estimators() -> dict[str, Any]:
    """The four estimators, set to the formulas the references compute."""
    device = _device()
    return {
        # Linear fit on the smallest 90% of log(mu) (skdim TwoNN(), dadapy compute_id_2NN()).
        "twonn": TwoNN(method="linear", discard_fraction=0.1, device=device),
        # k = 20, local values; global = inverse of the mean of inverses (skdim's default).
        "mle": MLE(k=20, aggregate="harmonic", device=device),
        # Scales n1 = 1 .. 32, n2 = 2 n1 (skdim GRIDE(multiscale=True), dadapy range_max=64).
        "gride": GRIDE(range_max=64, device=device),
        # Slope between the medians of the 10th and 20th neighbour distances (skdim CorrInt()).
        "corrint": CorrelationDimension(k1=10, k2=20, method="two_point", device=device),
    }


def _values(name: str, est: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"dimension": h.as_float(est.dimension_)}
    if name == "mle":
        out["local"] = h.local_summary(est.local_dimensions_)
    if name == "gride":
        out["scales"] = h.as_list(est.scales_)
        out["dimensions"] = h.as_list(est.dimensions_)
    if name == "corrint":
        out["censored_fraction"] = h.as_float(est.censored_fraction_)
    return out


def _fit(name: str, est: Any, X: np.ndarray, graph: KNNGraph, *, graph_only: bool) -> Any:
    if name == "corrint" and not graph_only:
        # Exact window counts, as skdim's CorrInt (which counts every pair): the graph's lists
        # plus an exact pass for the rows it censors; what CorrelationDimension().fit(X)
        # does, minus its own neighbour search.
        return est.fit(X, knn=graph)
    # Count only the pairs the graph holds: exact up to the smallest k-th neighbour
    # distance; ``censored_fraction`` (in the values) says how many points r_max cuts.
    return est.fit(knn=graph)


def _single(name: str) -> h.Task:
    def task(X: np.ndarray) -> dict[str, Any]:
        est = _estimators()[name]
        _reset_cuda_peak()
        if name == "corrint":
            # What CorrelationDimension().fit(X) does: its own graph (3 * k2 neighbours), the
            # window counted exactly from it plus the rows it censors, the curve from a sample.
            t0 = time.perf_counter()
            est.fit(X)
            _sync()
            out = _values(name, est)
            out["parts"] = {"fit": time.perf_counter() - t0}
            _cuda_peak(out)
            return out
        t0 = time.perf_counter()
        graph = build_graph(X, est.required_neighbors, device=_device())
        _sync()
        t1 = time.perf_counter()
        _fit(name, est, X, graph, graph_only=False)
        _sync()
        t2 = time.perf_counter()
        out = _values(name, est)
        out["parts"] = {"knn": t1 - t0, "estimate": t2 - t1}
        _cuda_peak(out)
        return out

    return task


def _suite(graph_only: bool) -> h.Task:
    def task(X: np.ndarray) -> dict[str, Any]:
        ests = _estimators()
        _reset_cuda_peak()
        t0 = time.perf_counter()
        k = max(e.required_neighbors for e in ests.values())
        graph = build_graph(X, k, device=_device())
        _sync()
        parts = {"knn": time.perf_counter() - t0}
        out: dict[str, Any] = {}
        for name, est in ests.items():
            t = time.perf_counter()
            _fit(name, est, X, graph, graph_only=graph_only)
            _sync()
            parts[name] = time.perf_counter() - t
            out[name] = _values(name, est)
        out["parts"] = parts
        _cuda_peak(out)
        return out

    return task


def _versions() -> dict[str, str]:
    from tokendim_widgets.devices import resolve_device

    info = {
        "torch": version("torch"),
        "torch_threads": str(torch.get_num_threads()),
        "device": str(resolve_device(_device())),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


if __name__ == "__main__":
    tasks = {name: _single(name) for name in ("twonn", "mle", "gride", "corrint")}
    tasks["suite"] = _suite(graph_only=False)
    tasks["suite_graph"] = _suite(graph_only=True)
    h.main("tokendim_widgets", tasks, _versions)
