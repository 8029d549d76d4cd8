"""Coverage of the estimators' 95% intervals on clouds drawn from known generators.

Each replicate draws a fresh cloud, builds one exact kNN graph and fits every estimator with
each interval kind on it. The target of an interval is the estimator's own expectation at that
sample size (the mean of its estimates over the replicates), not the true dimension: the
estimators are biased (TwoNN and MLE by a few % at these sizes, the correlation dimension more),
and an interval is about sampling spread, not bias. Coverage is the fraction of replicates whose
interval holds that mean; with R replicates its standard error is about sqrt(0.05 * 0.95 / R).

Clouds:

* ``gauss``: independent Gaussian points in d dimensions, embedded in D = 64.
* ``cube``: independent uniform points of the d-cube, embedded in D = 64.
* ``prompts``: P "prompts" of T tokens. Each prompt is its own random patch of a common 6-d
  latent space: a random centre, orientation, dimension (1, 2 or 3), size and noise level;
  its tokens follow an AR(1) walk on the patch (successive tokens correlated) plus 6-d noise;
  embedded in D = 64 by a fixed random map with a mild nonlinearity. Fitted with ``groups`` =
  prompt of each token ("groups" rows), and without (the "auto" rows: blocks of the graph; for
  the correlation dimension the U-statistic plus the blocks' excess, and a "blocks" row with
  the blocks alone, given as groups).

``--clouds`` also takes ``gauss3``, ``cube8``, ``prompts80x30`` and ``prompts200x12``; the first
three were held out from the choice of the correlation dimension's ``BLOCK_ARTEFACT``.

Run (about 20 minutes on a 2-core CPU at the defaults)::

    nice python benchmarks/calibration.py --replicates 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.signal import lfilter

from tokendim_widgets.estimators import GRIDE, MLE, CorrelationDimension, TwoNN
from tokendim_widgets.knn import build_graph
from tokendim_widgets.resampling import AUTO_BLOCKS, graph_blocks

D_EMBED = 64


def _embedding(rng: np.random.Generator, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(D_EMBED, d)))
    return q.T  # (d, D) orthonormal rows


def gauss_cloud(n: int, d: int) -> Callable[[np.random.Generator], tuple[np.ndarray, None]]:
    """Independent N(0, I_d) points in D = 64."""
    basis = _embedding(np.random.default_rng(1000 + d), d)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return rng.normal(size=(n, d)) @ basis, None

    return draw


def cube_cloud(n: int, d: int) -> Callable[[np.random.Generator], tuple[np.ndarray, None]]:
    """Independent uniform points of [0, 1]^d in D = 64."""
    basis = _embedding(np.random.default_rng(2000 + d), d)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return rng.random(size=(n, d)) @ basis, None

    return draw


def prompt_cloud(
    n_prompts: int, n_tokens: int, d: int = 6, rho: float = 0.7
) -> Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]:
    """Prompts as correlated walks on random low-dimensional patches of a common manifold."""
    fixed = np.random.default_rng(3000 + d)
    basis = _embedding(fixed, d)
    bend = fixed.normal(size=(d, d)) / np.sqrt(d)
    bend_out = _embedding(fixed, d)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for _ in range(n_prompts):
            centre = 2.0 * rng.normal(size=d)
            d_patch = int(rng.integers(1, 4))
            size, noise_level = 0.6 * np.exp(0.3 * rng.normal(size=2))
            noise_level /= 6.0
            patch, _ = np.linalg.qr(rng.normal(size=(d, d_patch)))
            steps = rng.normal(size=(n_tokens, d_patch)) * np.sqrt(1 - rho**2)
            steps[0] = rng.normal(size=d_patch)
            u = lfilter([1.0], [1.0, -rho], steps, axis=0)  # u_t = rho u_(t-1) + step_t
            latent = centre + size * u @ patch.T + noise_level * rng.normal(size=(n_tokens, d))
            parts.append(latent)
        z = np.concatenate(parts)
        x = z @ basis + 0.3 * np.sin(z @ bend) @ bend_out
        return x, np.repeat(np.arange(n_prompts), n_tokens)

    return draw


ESTIMATORS: dict[str, Callable[..., Any]] = {
    "TwoNN linear": lambda **kw: TwoNN(**kw),
    "TwoNN mle": lambda **kw: TwoNN(method="mle", **kw),
    "MLE k=20": lambda **kw: MLE(**kw),
    "GRIDE n1=1": lambda **kw: GRIDE(**kw),
    "GRIDE n1=4": lambda **kw: GRIDE(scale=4, **kw),
    "Correlation": lambda **kw: CorrelationDimension(**kw),
}


def run_cloud(
    name: str,
    draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray | None]],
    replicates: int,
    seed: int,
    estimators: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Fit every estimator (or those named) with each interval kind on ``replicates`` fresh
    clouds."""
    kinds = ["analytic", "auto"]
    chosen = {name: ESTIMATORS[name] for name in estimators or ESTIMATORS}
    records: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for r in range(replicates):
        rng = np.random.default_rng([seed, r])
        X, groups = draw(rng)
        graph = build_graph(X, 64, device="cpu")
        for est_name, make in chosen.items():
            runs = [(k, None) for k in kinds]
            if groups is not None:
                runs.append(("groups", groups))
            if est_name == "Correlation":
                # The bootstrap over the blocks its default combines with the U-statistic.
                runs.append(("blocks", graph_blocks(graph.indices, AUTO_BLOCKS, r)))
            for kind, g in runs:
                interval = "auto" if kind in ("groups", "blocks") else kind
                est = make(interval=interval, random_state=r).fit(X, knn=graph, groups=g)
                low, high = est.dimension_interval_
                records.setdefault((est_name, kind), []).append(
                    (est.dimension_, low, high, est.standard_error_)
                )
    rows = []
    for (est_name, kind), vals in records.items():
        arr = np.asarray(vals)
        truth = arr[:, 0].mean()
        covered = (arr[:, 1] <= truth) & (truth <= arr[:, 2])
        spread = arr[:, 0].std(ddof=1)
        rows.append(
            {
                "cloud": name,
                "estimator": est_name,
                "interval": kind,
                "coverage": float(covered.mean()),
                "spread/SE": float(spread / np.mean(arr[:, 3])),
                "mean": float(truth),
            }
        )
    return rows


def timing(
    n: int = 7000, dim: int = 576, repeats: int = 5, estimators: list[str] | None = None
) -> None:
    """CPU time of a fit given the graph, by interval kind (best of ``repeats``, one torch
    thread), on a prompt cloud of ``n`` points in ``dim`` dimensions (one SmolLM2 layer's
    size). CPU time, not wall time: the benchmark machine is shared."""
    draw = prompt_cloud(n // 60, 60)
    X, groups = draw(np.random.default_rng(0))
    X = X @ np.random.default_rng(1).normal(size=(D_EMBED, dim)) / np.sqrt(D_EMBED)
    X = X.astype(np.float32)
    graph = build_graph(X, 64, device="cpu")
    print(f"n = {X.shape[0]}, D = {dim}, graph k = 64")
    print("| estimator | analytic (ms) | auto, blocks (ms) | auto, groups (ms) | overhead |")
    print("|---|---|---|---|---|")
    for name in estimators or ESTIMATORS:
        make = ESTIMATORS[name]
        times = []
        for kind, g in [("analytic", None), ("auto", None), ("auto", groups)]:
            best = np.inf
            for _ in range(repeats):
                t0 = time.process_time()
                make(interval=kind).fit(X, knn=graph, groups=g)
                best = min(best, time.process_time() - t0)
            times.append(1000 * best)
        extra = max(times[1], times[2]) - times[0]
        print(
            f"| {name} | {times[0]:.1f} | {times[1]:.1f} | {times[2]:.1f} | +{extra:.1f} ms |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clouds", default="gauss5,gauss10,cube4,prompts")
    parser.add_argument(
        "--estimators",
        default=None,
        help=f"comma-separated subset of: {', '.join(ESTIMATORS)} (default: all)",
    )
    parser.add_argument("--timing", action="store_true", help="time the intervals instead")
    args = parser.parse_args()
    estimators = args.estimators.split(",") if args.estimators else None
    unknown = sorted(set(estimators or ()) - set(ESTIMATORS))
    if unknown:
        parser.error(f"unknown estimators {unknown}; choose from {list(ESTIMATORS)}")
    torch.set_num_threads(1)
    if args.timing:
        timing(estimators=estimators)
        return
    clouds = {
        "gauss5": ("Gaussian d=5, n=2400", gauss_cloud(2400, 5)),
        "gauss10": ("Gaussian d=10, n=2400", gauss_cloud(2400, 10)),
        "cube4": ("uniform cube d=4, n=2400", cube_cloud(2400, 4)),
        "prompts": ("40 prompts x 60 tokens", prompt_cloud(40, 60)),
        "gauss3": ("Gaussian d=3, n=2400", gauss_cloud(2400, 3)),
        "cube8": ("uniform cube d=8, n=2400", cube_cloud(2400, 8)),
        "prompts80x30": ("80 prompts x 30 tokens", prompt_cloud(80, 30)),
        "prompts200x12": ("200 prompts x 12 tokens", prompt_cloud(200, 12)),
    }
    print("| cloud | estimator | interval | coverage | spread / mean SE | mean estimate |")
    print("|---|---|---|---|---|---|")
    for key in args.clouds.split(","):
        label, draw = clouds[key]
        t0 = time.perf_counter()
        for row in run_cloud(label, draw, args.replicates, args.seed, estimators):
            print(
                f"| {row['cloud']} | {row['estimator']} | {row['interval']} | "
                f"{row['coverage']:.0%} | {row['spread/SE']:.2f} | {row['mean']:.2f} |",
                flush=True,
            )
        print(f"<!-- {key}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
