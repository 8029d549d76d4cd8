"""How fast can the first curve be? The floor an exact float32 search has on real layers.

On the README example (SmolLM2, built-in ``mixed`` set, extraction cached) this times, per
layer and in the same process:

* ``products``: only the float32 products of the tiles on and above the diagonal (what any
  exact screen of all pairs must compute, N^2 D / 2 multiply-adds), and their rate;
* ``search k``: :func:`tokendim_widgets.knn.search` at the first pass's neighbour counts;
* ``pca bound``: what a lower bound from the top-p principal components could prune. A pair's
  squared distance is at least its distance in those p coordinates plus the squared difference
  of the two rows' residual norms; a pair must be measured exactly unless that bound exceeds
  the row's true k-th neighbour distance. Printed: the rows' mean and median count of such
  pairs, and the cost of the rotation and of the p-dimensional products relative to
  ``products``.

Usage::

    python benchmarks/search_bound.py                  # layers 1 10 15 25 30
    python benchmarks/search_bound.py --layers 15 --p 96 160
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import tokendim_widgets as td
from tokendim_widgets import knn


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def products(x: torch.Tensor, tile: int = 1024) -> None:
    n = x.shape[0]
    for a in range(0, n, tile):
        for c in range(a, n, tile):
            x[a : a + tile] @ x[c : c + tile].T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", default="mixed")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 10, 15, 25, 30])
    parser.add_argument("--k", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--p", type=int, nargs="+", default=[96, 160])
    args = parser.parse_args()

    states = td.extract(args.model, args.prompts, progress=False)
    print(f"{args.model}, {args.prompts}: {states.n_tokens} tokens x {states.n_layers} layers")
    floor = []
    for layer in args.layers:
        rows = np.array(states.layer(layer), dtype=np.float32)
        x = torch.from_numpy(rows - rows.mean(axis=0))
        n, dim = x.shape
        t_prod = best_of(lambda x=x: products(x))
        floor.append(t_prod)
        rate = n * n * dim / 2 / t_prod / 1e9
        line = [f"layer {layer:2d}: products {t_prod:.3f} s ({rate:.0f} GMAC/s)"]
        for k in args.k:
            t_k = best_of(lambda k=k, rows=rows: knn.search(rows, k, device="cpu"))
            line.append(f"search k={k} {t_k:.3f} s ({t_k / t_prod:.2f}x products)")
        print("; ".join(line))

        sq = (x * x).sum(dim=1)
        dist = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min_(0.0)
        dist.fill_diagonal_(float("inf"))
        kth = dist.topk(max(args.k) + 1, dim=1, largest=False).values
        del dist
        start = time.perf_counter()
        _, vectors = torch.linalg.eigh((x.T @ x).double())
        vectors = vectors.flip(1).float()
        t_eig = time.perf_counter() - start
        for p in args.p:
            start = time.perf_counter()
            z = x @ vectors[:, :p]
            zs = (z * z).sum(dim=1)
            resid = (sq - zs).clamp_min(0.0).sqrt()
            low = zs[:, None] + zs[None, :] - 2.0 * z @ z.T
            t_proj = time.perf_counter() - start
            low += (resid[:, None] - resid[None, :]) ** 2
            low.fill_diagonal_(float("inf"))
            parts = []
            for k in args.k:
                # k + 1: a duplicate-free graph may need one more neighbour than asked.
                unsure = (low <= kth[:, k : k + 1] * (1 + 1e-4)).sum(dim=1).double()
                parts.append(
                    f"k={k}: {unsure.mean():.0f} mean / {unsure.median():.0f} median pairs "
                    f"per row ({unsure.mean() / n:.1%})"
                )
            cost = (t_eig + t_proj / 2) / t_prod  # symmetric products: half the full ones
            print(
                f"    pca bound p={p}: rotation + products {cost:.2f}x products; "
                + "; ".join(parts)
            )
            del low
    total = sum(floor) / len(floor) * states.n_layers
    print(f"products alone, all {states.n_layers} layers (mean of the layers timed): {total:.1f} s")


if __name__ == "__main__":
    main()
