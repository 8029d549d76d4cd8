"""Benchmark worker for scikit-dimension (runs in the project's environment).

Usage: ``python benchmarks/refs/run_skdim.py DATA.npy TASK``; prints one JSON line
(see ``_harness.py``). Every task calls the library the way a user would, with its defaults
except where a parameter is set to the formula the benchmark compares (see the comments), so
each call runs its own neighbour search.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import _harness as h  # the workers run as scripts: their folder is on sys.path
import numpy as np
from skdim.id import GRIDE, MLE, CorrInt, TwoNN


def twonn(X: np.ndarray) -> dict[str, Any]:
    # Linear fit on the smallest 90% of log(mu): dadapy's compute_id_2NN() formula.
    est = TwoNN(discard_fraction=0.1).fit(X)
    return {"dimension": h.as_float(est.dimension_)}


def mle(X: np.ndarray) -> dict[str, Any]:
    # k = 20 neighbours, a local value per point (dimension_pw_); the global value is the
    # inverse of the mean of inverses (comb="mle", MacKay-Ghahramani), the library default.
    est = MLE().fit(X, n_neighbors=20)
    return {"dimension": h.as_float(est.dimension_), "local": h.local_summary(est.dimension_pw_)}


def gride(X: np.ndarray) -> dict[str, Any]:
    # Scales n1 = 1, 2, ..., 32 with n2 = 2 n1 (neighbours up to 64), as dadapy's
    # return_id_scaling_gride(range_max=64).
    est = GRIDE(multiscale=True, range_max=64).fit(X)
    return {
        "scales": h.as_list(est.scales_),
        "dimensions": h.as_list(est.dimension_scales_),
        "dimension": h.as_float(est.dimension_),
    }


def corrint(X: np.ndarray) -> dict[str, Any]:
    # Radii = medians of the 10th and 20th neighbour distances; slope of log C(r).
    est = CorrInt(k1=10, k2=20).fit(X)
    return {"dimension": h.as_float(est.dimension_)}


def _versions() -> dict[str, str]:
    return {
        "scikit-dimension": version("scikit-dimension"),
        "scikit-learn": version("scikit-learn"),
    }


if __name__ == "__main__":
    h.main(
        "scikit-dimension",
        {"twonn": twonn, "mle": mle, "gride": gride, "corrint": corrint},
        _versions,
    )
