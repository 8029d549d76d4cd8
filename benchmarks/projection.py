"""Benchmark of the 2-D projections: PCA preview, UMAP from the kNN graph, warm and cold.

Measured in one run, against baselines measured in the same run:

1. Warm (this process, everything imported and compiled):
   * the PCA preview (:func:`tokendim_widgets.projection.pca_2d`) against an exact thin SVD;
   * our UMAP from the precomputed exact kNN graph against umap-learn's default
     ``UMAP().fit_transform`` on the same cloud (seeded, which is serial like ours, and
     unseeded, umap-learn's parallel default), with the layout quality of each
     (trustworthiness at 10 neighbours on a 2000-point sample, and the share of each point's
     15 nearest neighbours that stay its neighbours in 2-D).
2. Cold, each in a FRESH Python process: the time from the request to the first UMAP layout,
   with umap-learn's default, with ours without warm-up, and with ours when
   :func:`~tokendim_widgets.projection.warm_up` was started ``--lead`` seconds before the
   request while a stand-in for the model kept the CPU busy (torch matrix products on every
   core). Two states of numba's on-disk cache (a benchmark-owned ``NUMBA_CACHE_DIR``):
   "first session" (empty: the first use after installing) and "later session" (filled by an
   earlier process), with and without our caching of umap-learn's kernels.

The cloud is synthetic by default (5000 x 576: eight curved 3-D patches in random
orientations, plus noise), or any (n, D) array saved with numpy (``--npy``), e.g. one layer of
the SmolLM2 hidden states.

Run from the repository root::

    python benchmarks/projection.py                      # synthetic, all scenarios (~6 min)
    python benchmarks/projection.py --npy layer15.npy    # a real layer
    python benchmarks/projection.py --cold later         # skip the first-session runs
    python benchmarks/projection.py --skip-warm --lead 60  # cold runs only, a longer overlap
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# umap-learn's own notices (the seed forcing one thread, spectral init on a disconnected
# graph) would interleave with the table; they do not change what is measured.
warnings.filterwarnings("ignore", category=UserWarning, module=r"(umap|sklearn)\.")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------------------------
# data


def synthetic_cloud(n: int = 5000, dim: int = 576, seed: int = 0) -> np.ndarray:
    """Eight curved 3-D patches (a rolled sheet each), randomly placed and oriented in ``dim``
    dimensions, plus isotropic noise: clusters with internal manifold structure."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 8, n)
    t = rng.uniform(0, 3 * np.pi, n)
    h = rng.uniform(-1, 1, n)
    patch = np.stack([t * np.cos(t), 3 * h, t * np.sin(t)], axis=1) / 3
    patch += rng.normal(size=(8, 3))[label] * 6
    frames = rng.normal(size=(8, 3, dim)) / np.sqrt(3)
    X = np.einsum("ni,nid->nd", patch, frames[label])
    X += rng.normal(size=(8, dim))[label] * 2 + 0.3 * rng.normal(size=(n, dim))
    return X.astype(np.float32)


def load_cloud(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    if args.npy:
        X = np.load(args.npy).astype(np.float32)
        if X.ndim != 2:
            raise SystemExit(f"--npy must hold an (n, D) array, got shape {X.shape}")
        return X, f"{Path(args.npy).name} ({X.shape[0]} x {X.shape[1]})"
    return synthetic_cloud(args.n, args.dim), f"synthetic ({args.n} x {args.dim})"


# --------------------------------------------------------------------------------------------
# helpers


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (after none: callers warm up themselves)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def quality(X: np.ndarray, Y: np.ndarray, neighbours: np.ndarray, seed: int = 0) -> str:
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    sub = rng.choice(len(X), min(2000, len(X)), replace=False)
    tw = trustworthiness(X[sub], Y[sub], n_neighbors=10)
    k = neighbours.shape[1]
    _, low = NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(Y)
    recall = np.mean([len(set(a) & set(b[1:])) / k for a, b in zip(neighbours, low, strict=True)])
    return f"trustworthiness {tw:.3f}, 15-NN recall {recall:.3f}"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------------------------
# 1. warm, in this process


def warm_part(X: np.ndarray, repeats: int) -> dict[str, float]:
    import umap

    from tokendim_widgets import projection as proj
    from tokendim_widgets.knn import build_graph

    results: dict[str, float] = {}
    print("\n== Warm (this process; imported and compiled) ==")

    proj.pca_2d(X)
    t_pca, _ = timed(lambda: proj.pca_2d(X), max(repeats, 5))

    def exact_svd() -> np.ndarray:
        Xc = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        return np.asarray(Xc @ vt[:2].T)

    t_svd, _ = timed(exact_svd, 1)
    print(f"PCA preview (pca_2d)            {t_pca * 1e3:8.1f} ms")
    print(f"  exact thin SVD (baseline)      {t_svd * 1e3:8.1f} ms   ratio {t_svd / t_pca:5.1f}x")
    results.update(pca_s=t_pca, svd_s=t_svd)

    start = time.perf_counter()
    graph = build_graph(X, 15)
    t_graph = time.perf_counter() - start
    print(f"exact kNN graph (build_graph, k=15; shared with the estimators) {t_graph:6.2f} s")
    results["graph_s"] = t_graph
    points = X[graph.keep]
    truth = graph.indices[:, :15]

    proj.warm_up(background=False)
    proj.umap_2d(X, knn=graph)  # compiled: every timing below is warm
    t_ours, Y_ours = timed(lambda: proj.umap_2d(X, knn=graph), repeats)
    t_ours500, Y_500 = timed(lambda: proj.umap_2d(X, knn=graph, n_epochs=500), 1)

    def default(seed: int | None) -> Any:
        return lambda: umap.UMAP(random_state=seed).fit_transform(X)

    default(0)()  # compile NNDescent and friends
    t_seeded, Y_seeded = timed(default(0), repeats)
    t_free, _ = timed(default(None), repeats)
    epochs = proj.auto_epochs(graph.n_unique)
    print(f"our UMAP from the graph ({epochs} epochs, seeded)  {t_ours:6.2f} s")
    print(f"our UMAP from the graph (500 epochs, seeded)       {t_ours500:6.2f} s")
    print(f"umap-learn UMAP(random_state=0).fit_transform      {t_seeded:6.2f} s")
    print(f"umap-learn UMAP().fit_transform (parallel)         {t_free:6.2f} s")
    print(
        f"  ratio default seeded / ours   {t_seeded / t_ours:5.2f}x"
        f"   (ours + graph search: {t_seeded / (t_ours + t_graph):5.2f}x)"
    )
    print(f"  ratio default parallel / ours {t_free / t_ours:5.2f}x")
    print(f"  quality, ours ({epochs} ep.):  {quality(points, Y_ours[graph.keep], truth)}")
    print(f"  quality, ours (500 ep.):  {quality(points, Y_500[graph.keep], truth)}")
    print(f"  quality, umap-learn:      {quality(points, Y_seeded[graph.keep], truth)}")
    results.update(
        ours_s=t_ours, ours500_s=t_ours500, default_seeded_s=t_seeded, default_parallel_s=t_free
    )
    return results


# --------------------------------------------------------------------------------------------
# 2. cold, in fresh processes

CHILD_FLAG = "--child"


def child(scenario: str, data: str, lead: float) -> None:
    """One cold measurement in this fresh process; prints one JSON line."""
    import torch  # the session has torch loaded already (the model): not part of the timing

    from tokendim_widgets import projection as proj
    from tokendim_widgets.knn import KNNGraph

    arrays = np.load(data)
    X = arrays["X"]
    graph = KNNGraph(arrays["distances"], arrays["indices"], arrays["keep"], arrays["inverse"])
    out: dict[str, Any] = {"scenario": scenario}
    t0 = time.perf_counter()
    if scenario.endswith("warm-up"):
        done: dict[str, float] = {}
        future = proj.warm_up(background=True)
        future.add_done_callback(lambda _: done.setdefault("t", time.perf_counter()))
        # Stand-in for the model: matrix products on every core for `lead` seconds (torch
        # releases the GIL in them, as in a forward pass, so the warm-up thread runs too).
        a = torch.randn(1024, 1024)
        while time.perf_counter() - t0 < lead:
            a = torch.tanh(a @ a.T / 32.0)
    t_request = time.perf_counter()
    if scenario.startswith("umap-learn"):
        import umap

        umap.UMAP(random_state=0).fit_transform(X)
    else:
        proj.umap_2d(X, knn=graph)
    out["request_to_layout_s"] = time.perf_counter() - t_request
    if scenario.endswith("warm-up"):
        # When the warm-up ended, from its start (after the request if it was late: then the
        # request waited for it, and that wait is part of request_to_layout_s).
        out["warm_up_done_after_s"] = done.get("t", float("nan")) - t0
    print(json.dumps(out))


def run_child(scenario: str, data: str, lead: float, env_extra: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    cmd = [sys.executable, __file__, CHILD_FLAG, scenario, data, str(lead)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{scenario} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cold_part(X: np.ndarray, lead: float, which: str, work: Path) -> list[dict[str, Any]]:
    from tokendim_widgets.knn import build_graph

    graph = build_graph(X, 15)
    data = str(work / "cloud.npz")
    np.savez(
        data, X=X, distances=graph.distances, indices=graph.indices, keep=graph.keep,
        inverse=graph.inverse,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []

    def record(label: str, scenario: str, cache_dir: Path, kernels: bool) -> None:
        env = {"NUMBA_CACHE_DIR": str(cache_dir), "TOKENDIM_UMAP_CACHE": "1" if kernels else "0"}
        res = run_child(scenario, data, lead, env)
        res["label"] = label
        rows.append(res)
        extra = ""
        if "warm_up_done_after_s" in res:
            extra = f"   (warm-up done {res['warm_up_done_after_s']:5.1f} s after it started)"
        print(f"{label:<62} {res['request_to_layout_s']:6.1f} s{extra}", flush=True)

    print(f"\n== Cold (fresh processes; warm-up led the request by {lead:.0f} s of busy CPU) ==")
    if which == "all":
        print("-- first session after installing (empty numba cache) --")
        for label, scenario in (
            ("umap-learn UMAP(random_state=0).fit_transform", "umap-learn"),
            ("ours, no warm-up", "ours"),
            ("ours, warm-up started while the model runs", "ours+warm-up"),
        ):
            fresh = Path(tempfile.mkdtemp(dir=work, prefix="numba-first-"))
            record(label, scenario, fresh, kernels=True)
    print("-- later session (numba cache filled by an earlier process) --")
    later = Path(tempfile.mkdtemp(dir=work, prefix="numba-later-"))
    # Fill it: umap-learn's import-time kernels (pynndescent declares cache=True), the
    # default's NNDescent, and our kernels.
    run_child("umap-learn", data, lead, {"NUMBA_CACHE_DIR": str(later)})
    run_child("ours", data, lead, {"NUMBA_CACHE_DIR": str(later), "TOKENDIM_UMAP_CACHE": "1"})
    record("umap-learn UMAP(random_state=0).fit_transform", "umap-learn", later, kernels=True)
    record("ours, no warm-up, kernel cache off", "ours", later, kernels=False)
    record("ours, no warm-up, kernel cache on", "ours", later, kernels=True)
    record("ours, warm-up while the model runs, kernel cache off", "ours+warm-up", later, False)
    record("ours, warm-up while the model runs, kernel cache on", "ours+warm-up", later, True)
    return rows


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npy", help="an (n, D) array saved with numpy.save (one layer)")
    parser.add_argument("--n", type=int, default=5000, help="synthetic cloud: points")
    parser.add_argument("--dim", type=int, default=576, help="synthetic cloud: dimensions")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of warm runs")
    parser.add_argument("--lead", type=float, default=20.0, help="warm-up lead (s), cold runs")
    parser.add_argument("--cold", choices=["all", "later", "none"], default="all")
    parser.add_argument("--skip-warm", action="store_true", help="only the cold runs")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    X, name = load_cloud(args)
    import torch

    print(f"projection benchmark, {dt.datetime.now().isoformat(timespec='minutes')}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, Python {platform.python_version()}")  # fmt: skip
    print(f"cloud: {name}; load average at start: {load_average()}")
    figures: dict[str, Any] = {"cloud": name, "load_start": load_average()}
    if not args.skip_warm:
        figures["warm"] = warm_part(X, args.repeats)
    if args.cold != "none":
        with tempfile.TemporaryDirectory(prefix="tokendim-bench-") as tmp:
            figures["cold"] = cold_part(X, args.lead, args.cold, Path(tmp))
    figures["load_end"] = load_average()
    print(f"\nload average at end: {figures['load_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
