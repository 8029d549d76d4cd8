"""Benchmark worker for dadapy (runs in benchmarks/.venv-refs, see setup_references.sh).

Usage: ``benchmarks/.venv-refs/bin/python benchmarks/refs/run_dadapy.py DATA.npy TASK``;
prints one JSON line (see ``_harness.py``). dadapy has no Levina-Bickel MLE and no correlation
dimension, so it takes part in TwoNN and GRIDE only. Each task builds a fresh ``Data`` object
(inside the timed region), so each runs its own neighbour search, as a user calling one
estimator does. ``Data`` keeps its default ``maxk`` (100 neighbours) and ``n_jobs`` (all cores).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import _harness as h  # the workers run as scripts: their folder is on sys.path
import numpy as np
from dadapy import Data


def twonn(X: np.ndarray) -> dict[str, Any]:
    # Linear fit on the smallest 90% of log(mu) (mu_fraction=0.9, the default).
    dim, _, _ = Data(X, verbose=False).compute_id_2NN()
    return {"dimension": h.as_float(dim)}


def gride(X: np.ndarray) -> dict[str, Any]:

    dims, _, ranks = Data(X, verbose=False).return_id_scaling_gride(range_max=64, return_ranks=True)
    # dadapy labels each scale by n2 = 2 n1; the benchmark labels scales by n1.
    return {
        "scales": [r / 2 for r in h.as_list(ranks)],
        "dimensions": h.as_list(dims),
        "dimension": h.as_float(np.asarray(dims)[0]),
    }


def _versions() -> dict[str, str]:
    return {
        "dadapy": version("dadapy"),
        "scikit-learn": version("scikit-learn"),
        "jax": version("jax"),
    }


if __name__ == "__main__":
    h.main("dadapy", {"twonn": twonn, "gride": gride}, _versions)
