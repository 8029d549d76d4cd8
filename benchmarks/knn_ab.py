"""Two versions of the library, the same kNN work, alternating fresh processes, one thread.

Compares the exact kNN search (and the estimator curves built on it) of two checkouts of
tokendim-widgets on the product path, the SmolLM2 layers of the README example at k = 64, and
on the synthetic benchmark cloud (benchmarks/estimators.py's ``make_cloud``, 10^4 x 768). Each
measurement runs in a fresh process with torch and BLAS on one thread; the two versions
alternate, so machine load affects both alike. The graphs must be identical bit for bit.

Usage::

    python benchmarks/knn_ab.py OLD_CHECKOUT NEW_CHECKOUT --rounds 3
    python benchmarks/knn_ab.py OLD NEW --task values   # every estimator's value, per layer
    python benchmarks/knn_ab.py OLD NEW --task correlation  # TwoNN and correlation per layer
    python benchmarks/knn_ab.py OLD NEW --task pca      # the PCA preview instead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = (1, 10, 20, 30)

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
task, layers = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
out = {}
if task == "knn":
    import tokendim_widgets as td
    from tokendim_widgets.knn import build_graph
    hs = td.extract("smollm2-135m", "mixed")
    for layer in layers:
        X = np.ascontiguousarray(hs.layer(layer), dtype=np.float32)
        start = time.perf_counter()
        g = build_graph(X, 64, device="cpu")
        out[f"layer {layer}"] = time.perf_counter() - start
        raw = g.distances.tobytes() + g.indices.tobytes()
        out[f"hash {layer}"] = hashlib.sha256(raw).hexdigest()
    sys.path.insert(0, sys.argv[3])
    from estimators import make_cloud
    X = make_cloud(10_000)
    start = time.perf_counter()
    g = build_graph(X, 64, device="cpu")
    out["synthetic"] = time.perf_counter() - start
    raw = g.distances.tobytes() + g.indices.tobytes()
    out["hash synthetic"] = hashlib.sha256(raw).hexdigest()
elif task == "values":
    import tokendim_widgets as td
    from tokendim_widgets.estimators import ESTIMATORS, make_estimator
    hs = td.extract("smollm2-135m", "mixed")
    for layer in layers:
        X = np.ascontiguousarray(hs.layer(layer), dtype=np.float32)
        for name in ESTIMATORS:
            est = make_estimator(name)
            if "device" in est.get_params():
                est.set_params(device="cpu")
            start = time.perf_counter()
            est.fit(X)
            out[f"{name} {layer}"] = time.perf_counter() - start
            out[f"hash {name} {layer}"] = repr(
                (est.dimension_, tuple(est.dimension_interval_), est.standard_error_)
            )
elif task == "correlation":
    import tokendim_widgets as td
    from tokendim_widgets.estimators import CorrelationDimension, TwoNN
    hs = td.extract("smollm2-135m", "mixed")
    for layer in layers:
        X = np.ascontiguousarray(hs.layer(layer), dtype=np.float32)
        start = time.perf_counter()
        TwoNN(device="cpu").fit(X)
        out[f"twonn {layer}"] = time.perf_counter() - start
        start = time.perf_counter()
        est = CorrelationDimension(device="cpu").fit(X)
        out[f"corr {layer}"] = time.perf_counter() - start
        out[f"hash corr {layer}"] = repr(
            (est.dimension_, tuple(est.dimension_interval_), est.n_exact_rows_)
        )
elif task == "pca":
    import tokendim_widgets as td
    from tokendim_widgets.projection import pca_2d
    hs = td.extract("smollm2-135m", "mixed")
    for layer in layers:
        X = np.ascontiguousarray(hs.layer(layer), dtype=np.float32)
        pca_2d(X)  # first call: imports, BLAS warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            Y = pca_2d(X)
            times.append(time.perf_counter() - start)
        out[f"layer {layer}"] = min(times)
        out[f"scores {layer}"] = Y[:3].tolist()
print(json.dumps(out))
"""


def run(checkout: str, task: str, layers: str) -> dict[str, object]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=checkout,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, task, layers, str(HERE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task", choices=("knn", "values", "correlation", "pca"), default="knn")
    parser.add_argument("--layers", default=",".join(map(str, LAYERS)))
    args = parser.parse_args()
    results: dict[str, list[dict[str, object]]] = {"old": [], "new": []}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for which in order:
            results[which].append(run(getattr(args, which), args.task, args.layers))
    keys = [k for k in results["old"][0] if not k.startswith(("hash", "scores"))]
    print(f"{'':12s} {'old (s)':>9s} {'new (s)':>9s} {'new/old':>8s}   median of {args.rounds}")
    for key in keys:
        old = statistics.median(float(r[key]) for r in results["old"])  # type: ignore[arg-type]
        new = statistics.median(float(r[key]) for r in results["new"])  # type: ignore[arg-type]
        print(f"{key:12s} {old:9.3f} {new:9.3f} {new / old:8.2f}")
    same = [
        k
        for k in results["old"][0]
        if k.startswith(("hash", "scores"))
        and any(r[k] != results["old"][0][k] for r in results["old"] + results["new"])
    ]
    print("identical results" if not same else f"DIFFERENT: {same}")


if __name__ == "__main__":
    main()
