"""Resampling whole groups of points: the weights, the blocks and the intervals.

Tokens of one prompt are not independent, and neither are points that share neighbours, so an
interval that treats points as independent is too narrow. The estimators resample *groups*
instead (a cluster bootstrap): replicate ``b`` draws ``G`` groups with replacement out of the
``G`` distinct labels, and each point gets the multiplicity of its group as its weight. The
estimators recompute their statistic from the per-point quantities of the one kNN graph,
weighted (no new neighbour search per replicate).

Replicates are *paired*: the draw depends only on ``random_state``, ``n_bootstrap`` and the
sorted distinct labels, so replicate ``b`` resamples the same groups in every fit with the same
labels (one estimator per layer, groups = prompt of each token: replicate ``b`` of every layer
is the same draw of prompts, and a metric computed across layers per replicate gets an
interval too).

When no groups are given, :func:`graph_blocks` cuts the kNN graph into spatially coherent
blocks (cells grown from seeded points along the graph's edges) and the blocks are resampled.
See benchmarks/README.md for the measured coverage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .errors import TokendimError
from .validation import check_choice

__all__ = [
    "as_group_labels",
    "bootstrap_interval",
    "chi2_quantile",
    "distinct_weights",
    "graph_blocks",
    "group_labels",
    "group_multiplicities",
    "group_weights",
    "jackknife",
    "jackknife_se",
    "normal_interval",
    "z_value",
]


def as_group_labels(groups: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Check one label per row and return ``(sorted distinct labels, index of each row)``.

    Parameters
    ----------
    groups : array-like of shape (n,)
        Any sortable labels (integers, strings), e.g. the prompt index of each token.
    n : int
        The number of rows the labels must describe.

    Returns
    -------
    (uniques, codes) : tuple of numpy.ndarray
        ``uniques[codes[i]]`` is the label of row ``i``; ``codes`` is int64.
    """
    try:
        arr = np.asarray(groups)
    except Exception as exc:  # pragma: no cover - numpy accepts nearly anything
        raise TokendimError(f"groups must be an array of labels, one per row: {exc}") from exc
    if arr.ndim != 1:
        raise TokendimError(f"groups must be 1-D (one label per row of X), got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise TokendimError(
            f"groups has {arr.shape[0]} labels but the data has {n} rows: pass one label "
            "per row (e.g. the prompt index of each token)."
        )
    if n == 0:
        raise TokendimError("groups is empty: there are no rows to resample.")
    try:
        uniques, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise TokendimError(
            "groups labels must be sortable and of one kind (all integers or all strings)."
        ) from exc
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise TokendimError("groups holds NaN labels: give every row a label.")
    return uniques, codes.reshape(-1).astype(np.int64)


def group_multiplicities(n_groups: int, n_bootstrap: int, random_state: int | None) -> np.ndarray:
    """How often each of ``n_groups`` groups is drawn in each replicate, shape (B, G).

    A multinomial draw of ``n_groups`` groups with equal probabilities per replicate, from
    ``numpy.random.default_rng(random_state)``: the same arguments give the same draws.
    """
    if n_groups < 1 or n_bootstrap < 1:
        raise TokendimError("group_multiplicities needs at least one group and one replicate.")
    rng = np.random.default_rng(random_state)
    p = np.full(n_groups, 1.0 / n_groups)
    return rng.multinomial(n_groups, p, size=n_bootstrap).astype(np.float64)


def group_weights(labels: Any, n_bootstrap: int, random_state: int | None) -> np.ndarray:
    """Replicate weights of each row: the multiplicity of its group, shape (B, n).

    Parameters
    ----------
    labels : array-like of shape (n,)
        A group label per row. The draw runs over the *sorted distinct* labels, so two calls
        with the same set of labels, ``n_bootstrap`` and ``random_state`` draw the same groups
        in replicate ``b`` (paired replicates), however the rows are ordered.
    n_bootstrap : int
        Replicates ``B``.
    random_state : int or None
        Seed of the draw.

    Examples
    --------
    >>> w = group_weights([0, 0, 1, 2], 3, 0)
    >>> w.shape, bool((w.sum(axis=1) > 0).all())
    ((3, 4), True)
    """
    labels = np.asarray(labels)
    uniques, codes = as_group_labels(labels, labels.shape[0] if labels.ndim == 1 else -1)
    mult = group_multiplicities(int(uniques.size), int(n_bootstrap), random_state)
    return mult[:, codes]


def distinct_weights(row_weights: np.ndarray, inverse: np.ndarray, n_unique: int) -> np.ndarray:
    """Weights of the distinct points from those of the input rows, shape (B, n_unique).

    A distinct point stands for all the rows merged into it (copies): its weight is the mean of
    their weights, so that it keeps weight 1 on average and stays one point, as in the
    estimate, while every group that holds a copy of it has a say (the first token of every
    prompt is one point shared by all prompts).
    """
    inverse = np.asarray(inverse, dtype=np.int64)
    if inverse.size == n_unique and np.array_equal(inverse, np.arange(n_unique)):
        return row_weights
    order = np.argsort(inverse, kind="stable")
    sorted_inv = inverse[order]
    starts = np.flatnonzero(np.r_[True, sorted_inv[1:] != sorted_inv[:-1]])
    sums = np.add.reduceat(row_weights[:, order], starts, axis=1)
    counts = np.diff(np.r_[starts, sorted_inv.size])
    out = np.zeros((row_weights.shape[0], n_unique))
    out[:, sorted_inv[starts]] = sums / counts
    return out


#: Blocks of the graph resampled by ``interval="auto"`` without groups (benchmarks/README.md).
AUTO_BLOCKS = 40


def graph_blocks(indices: np.ndarray, n_blocks: int, random_state: int | None) -> np.ndarray:
    """Cut a kNN graph into about ``n_blocks`` spatially coherent blocks; one label per point.

    Seeded random points start the blocks, in every connected part of the graph in proportion
    to its size (at least one each); each round, an unlabelled point joins the block of its
    nearest labelled neighbour, or of a labelled point that lists it, until every point has a
    block. The cells follow the graph, so they work from a graph alone (no coordinates).
    Each tree of the nearest-neighbour graph then joins the block of its first point, so that
    points sharing a nearest-neighbour distance (mutual nearest neighbours and the points
    whose nearest they are) are never split: TwoNN's ratios of two such points are dependent.

    Parameters
    ----------
    indices : numpy.ndarray of shape (n, k)
        Neighbour indices, nearest first (only the first 10 columns are used).
    n_blocks : int
        Seeds, about (at least one per connected part of the graph).
    random_state : int or None
        Seed of the seeds.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Block labels ``0 .. n_labels - 1``.
    """
    idx = np.asarray(indices, dtype=np.int64)[:, :10]
    n = idx.shape[0]
    rng = np.random.default_rng(random_state)
    src = np.repeat(np.arange(n), idx.shape[1])
    dst = idx.ravel()
    # Seeds in every connected part of the graph, in proportion to its size (at least one).
    adjacency = coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    n_parts, part = connected_components(adjacency, directed=True, connection="weak")
    sizes = np.bincount(part, minlength=n_parts)
    share = np.maximum(1, np.round(sizes * (max(1, int(n_blocks)) / n))).astype(np.int64)
    share = np.minimum(share, sizes)
    order = np.argsort(rng.random(n), kind="stable")  # a random order of the points
    by_part = order[np.argsort(part[order], kind="stable")]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    seeds = np.concatenate([by_part[s : s + c] for s, c in zip(starts, share, strict=True)])
    labels = np.full(n, -1, dtype=np.int64)
    labels[seeds] = np.arange(seeds.size)
    while True:
        todo = labels < 0
        if not todo.any():
            return _keep_nearest_together(labels, idx[:, 0])
        # Forward: the nearest labelled neighbour.
        neigh = labels[idx]
        has = neigh >= 0
        first = np.argmax(has, axis=1)
        fwd = np.where(has.any(axis=1), neigh[np.arange(n), first], -1)
        new = np.where(todo, fwd, labels)
        # Backward: a labelled point that lists this one.
        back = todo & (new < 0)
        if back.any():
            edges = back[dst] & (labels[src] >= 0)
            new[dst[edges]] = labels[src[edges]]
        labels = new


def _keep_nearest_together(labels: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Relabel so that each tree of the nearest-neighbour graph (i -> its nearest) lies in one
    block: points that share a nearest-neighbour distance are resampled together."""
    n = labels.size
    tree = connected_components(
        coo_matrix((np.ones(n), (np.arange(n), nearest)), shape=(n, n)),
        directed=True,
        connection="weak",
    )[1]
    root = np.full(int(tree.max()) + 1, n, dtype=np.int64)
    np.minimum.at(root, tree, np.arange(n))  # each tree takes the block of its first point
    return np.unique(labels[root[tree]], return_inverse=True)[1].reshape(-1).astype(np.int64)


def bootstrap_interval(
    estimate: float, replicates: np.ndarray, confidence: float, kind: str = "percentile"
) -> tuple[tuple[float, float], float]:
    """An interval and a standard error from bootstrap replicates.

    Parameters
    ----------
    estimate : float
        The estimate on the data.
    replicates : numpy.ndarray of shape (B,)
        Replicate estimates; non-finite ones are ignored.
    confidence : float
        Two-sided level.
    kind : {"percentile", "basic", "normal"}
        Quantiles of the replicates; the basic (reflected) interval ``2 estimate - quantiles``;
        or ``estimate +- z SE``.

    Returns
    -------
    ((low, high), standard_error) : tuple
        The lower end is clipped at 0 (a dimension is never negative), and the interval is
        widened to hold the estimate where a skewed set of replicates leaves it outside.
    """
    check_choice(kind, "kind", ("percentile", "basic", "normal"))
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return (estimate, estimate), 0.0
    se = float(r.std(ddof=1))
    alpha = 1.0 - float(confidence)
    if kind == "normal":
        half = NormalDist().inv_cdf(1.0 - alpha / 2) * se
        low, high = estimate - half, estimate + half
    else:
        q_lo, q_hi = np.quantile(r, [alpha / 2, 1.0 - alpha / 2])
        if kind == "basic":
            low, high = 2.0 * estimate - q_hi, 2.0 * estimate - q_lo
        else:  # percentile
            low, high = float(q_lo), float(q_hi)
    low, high = max(0.0, float(low)), float(high)
    if math.isfinite(estimate):
        low, high = min(low, estimate), max(high, estimate)
    return (low, high), se


# ---- the jackknife and normal intervals ------------------------------------------------------


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile of ``confidence`` (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def chi2_quantile(p: float, dof: float) -> float:
    """Quantile of the chi-squared law by the Wilson-Hilferty approximation.

    Relative error below 0.6% for dof >= 40 and below 0.1% for dof >= 100, for p in
    [0.0005, 0.9995]. Used for the interval of an exponential rate without depending on scipy;
    TwoNN's dof is twice the number of ratios, so hundreds or more in practice.
    """
    z = NormalDist().inv_cdf(p)
    c = 2.0 / (9.0 * dof)
    return dof * max(1.0 - c + z * math.sqrt(c), 0.0) ** 3


def group_labels(n: int, n_groups: int, random_state: int | None) -> np.ndarray:
    """A seeded random split of ``n`` points into ``min(n_groups, n)`` groups of equal size."""
    g = max(1, min(int(n_groups), int(n)))
    rng = np.random.default_rng(random_state)
    labels = np.empty(n, dtype=np.int64)
    labels[rng.permutation(n)] = np.arange(n) % g
    return labels


def jackknife_se(replicates: np.ndarray) -> float:
    """Delete-a-group jackknife standard error of the leave-one-group-out ``replicates``.

    Non-finite replicates (a group whose removal leaves an undefined estimate) are ignored.
    Returns 0.0 when fewer than two finite replicates exist.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    g = r.size
    if g < 2:
        return 0.0
    return float(math.sqrt((g - 1) / g * float(np.sum((r - r.mean()) ** 2))))


def jackknife(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_groups: int,
    random_state: int | None,
) -> float:
    """Jackknife SE of ``statistic(mask)`` (mask: boolean, True for the points kept)."""
    labels = group_labels(n, n_groups, random_state)
    reps = []
    for g in range(int(labels.max()) + 1 if n else 0):
        mask = labels != g
        try:
            reps.append(float(statistic(mask)))
        except (TokendimError, FloatingPointError, ZeroDivisionError, ValueError):
            reps.append(math.nan)
    return jackknife_se(np.asarray(reps))


def normal_interval(estimate: float, se: float, confidence: float) -> tuple[float, float]:
    """``estimate +- z * se``, the lower end clipped at 0 (a dimension is never negative)."""
    if not math.isfinite(se) or se < 0:
        se = 0.0
    half = z_value(confidence) * se
    return (max(0.0, estimate - half), estimate + half)
