"""Correlation dimension: the token-correlation measure of arXiv 2503.22547 (Grassberger-Procaccia).

The correlation integral ``C(r)`` is the fraction of pairs of distinct points closer than
``r`` (strictly; window radii are lowered by 1e-9 relative so that a pair whose distance *is*
a window end never flips in or out of the count with rounding). On a d-dimensional cloud
``C(r) ~ r^d`` at small r, so the dimension is the slope of ``log C`` against ``log r`` in a
scaling window: above the radii where pairs are too few to count (and noise dominates), below
those where the cloud's size and curvature bend the curve.

Scaling window
--------------
Automatic rule (default): ``[r_min, r_max]`` = the medians, over points, of the distance to
the ``k1``-th and the ``k2``-th nearest neighbour (10 and 20 by default). It adapts to the
cloud's scale and density, and at these radii a typical point has k1 to k2 partners, so the
counts are large (about ``n * k / 2`` pairs) yet the radii stay local. ``r_min``/``r_max`` set
the window explicitly instead (either one overrides its end).

``method="fit"`` (default): least-squares slope of ``log C`` on ``log r`` at 8 radii evenly
spaced in ``log r`` across the window. ``method="two_point"``: the slope between the window's
two ends only, ``log(C(r_max) / C(r_min)) / log(r_max / r_min)``: scikit-dimension's
``CorrInt(k1, k2)`` (from R ider), reproduced exactly on the same data.

Counting
--------
Fitted from points, every pair of distinct points is counted: float32 matrix products of the
centred cloud (torch, chunked) screen all pairs, and every pair that could lie inside the
window, given the float32 error bound, is measured exactly (float64 difference of the rows),
so the window counts are exact whatever the offset or precision of the input. Above
``max_points`` distinct points a seeded random subset of ``max_points`` points is drawn and all
its pairs are counted (an unbiased sample of pairs; its window is set from its own neighbour
distances). The full curve ``C(r)`` at ``n_radii`` radii, from the smallest neighbour distance
to the cloud's diameter, is exposed for plotting (``radii_``, ``correlation_integral_``; it
is counted from the float32 products, ~1e-6 relative in r).

Fitted from a kNN graph only (``fit(knn=graph)``), the counts are those of the pairs the graph
holds: each point's pairs with its k listed neighbours. For every radius below every point's
k-th neighbour distance (``exact_radius_``) that is exactly ``C(r)``; above it, points whose
k-th neighbour is nearer than r have their count cut at k. ``censored_fraction_`` reports the
fraction of points cut at ``r_max`` and a warning is raised above 1%: then pass the points too
(``fit(X, knn=graph)`` counts all pairs and reuses the graph's deduplication and neighbour
distances) or use a graph with more neighbours.

The interval is a delete-a-group jackknife over points (``n_groups`` seeded groups): both ends
of every pair are left out with their group.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, TypeVar

import numpy as np
import torch

from .._device import resolve_device
from ..errors import TokendimError
from ..knn import KNNGraph
from ..knn import knn as knn_search
from ._base import (
    IDEstimator,
    as_graph,
    check_choice,
    check_confidence,
    check_float,
    check_int,
    check_seed,
    group_labels,
    jackknife_se,
    normal_interval,
    unique_points,
)

__all__ = ["CorrelationDimension"]

_C = TypeVar("_C", bound="CorrelationDimension")

#: Radii of the least-squares fit across the window.
N_WINDOW = 8
# Pairs are counted below r * (1 - _SHRINK): a window end is a median neighbour distance, i.e.
# often the distance of one pair itself, and that pair must not flip in or out of the count
# with the rounding of two different computations of one distance (exact arithmetic leaves
# it out: d < d is false).
_SHRINK = 1e-9
# Bytes of one (rows x points) block of the pair count.
_BLOCK_BYTES = 16 * 2**20


class CorrelationDimension(IDEstimator):
    """Correlation dimension from the correlation integral C(r) in a scaling window.

    Parameters
    ----------
    k1, k2 : int, default 10 and 20
        Neighbour ranks of the automatic window (medians of the k1-th and k2-th neighbour
        distances); ``k1 < k2``.
    r_min, r_max : float, optional
        Explicit window ends (distances), overriding the rule for that end.
    method : {"fit", "two_point"}, default "fit"
        Least-squares slope over the window, or the slope between its ends (scikit-dimension
        ``CorrInt``).
    n_radii : int, default 40
        Radii of the plotted curve ``radii_``/``correlation_integral_``.
    max_points : int, default 20000
        Above this many distinct points, count the pairs of a seeded random subset.
    n_groups : int, default 20
        Groups of the jackknife behind the interval.
    confidence : float, default 0.95
    random_state : int or None, default 0
        Seed of the subset and of the jackknife groups.
    device : str, default "auto"

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
    standard_error_ : float
    window_ : tuple of float
        ``(r_min, r_max)`` used.
    fit_radii_, fit_correlation_integral_ : numpy.ndarray
        The points of the fit; ``intercept_`` completes the fitted line
        ``log C = dimension_ * log r + intercept_``.
    radii_, correlation_integral_ : numpy.ndarray
        The curve C(r) (0 where no pair is that close).
    n_used_ : int
        Distinct points whose pairs were counted.
    exact_radius_ : float
        Below this radius the counts are exact (inf when fitted from points).
    censored_fraction_ : float
        Fraction of points whose count at ``r_max`` is cut by the graph (0 from points).
    n_points_, n_duplicates_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((3000, 3)) @ rng.normal(size=(3, 40))
    >>> est = CorrelationDimension(device="cpu").fit(X)
    >>> round(est.dimension_), est.radii_.shape == est.correlation_integral_.shape
    (3, True)
    """

    def __init__(
        self,
        k1: int = 10,
        k2: int = 20,
        r_min: float | None = None,
        r_max: float | None = None,
        method: str = "fit",
        n_radii: int = 40,
        max_points: int = 20000,
        n_groups: int = 20,
        confidence: float = 0.95,
        random_state: int | None = 0,
        device: str = "auto",
    ) -> None:
        self.k1 = k1
        self.k2 = k2
        self.r_min = r_min
        self.r_max = r_max
        self.method = method
        self.n_radii = n_radii
        self.max_points = max_points
        self.n_groups = n_groups
        self.confidence = confidence
        self.random_state = random_state
        self.device = device

    @property
    def required_neighbors(self) -> int:
        if self.r_min is not None and self.r_max is not None:
            return 1  # only the nearest-neighbour distance, for the curve's lower end
        if self.r_max is None:
            return int(self.k2)
        return int(self.k1)

    def _check_params(self) -> None:
        k1 = check_int(self.k1, "k1", 1)
        k2 = check_int(self.k2, "k2", 2)
        if k1 >= k2:
            raise TokendimError(f"k1 must be smaller than k2, got k1={k1}, k2={k2}.")
        for name in ("r_min", "r_max"):
            value = getattr(self, name)
            if value is not None:
                check_float(value, name, 0.0, math.inf, low_open=True, high_open=True)
        if self.r_min is not None and self.r_max is not None and self.r_min >= self.r_max:
            raise TokendimError(
                f"r_min must be smaller than r_max, got {self.r_min} and {self.r_max}."
            )
        check_choice(self.method, "method", ("fit", "two_point"))
        check_int(self.n_radii, "n_radii", 2)
        check_int(self.max_points, "max_points", 3)
        check_int(self.n_groups, "n_groups", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def fit(self: _C, X: Any = None, *, knn: Any = None) -> _C:
        """Estimate the correlation dimension.

        Parameters
        ----------
        X : array-like of shape (n, D), optional
            The points: all pairs are counted (see the module notes).
        knn : KNNGraph or (distances, indices), optional
            A graph of ``X``: its deduplication and neighbour distances are reused. Alone
            (``X=None``), the counts come from the graph's pairs (exact below
            ``exact_radius_``).

        Returns
        -------
        self
        """
        self._check_params()
        if X is None:
            if knn is None:
                raise TokendimError(
                    "CorrelationDimension.fit needs the points X or a kNN graph (knn=...)."
                )
            graph = self._graph(None, knn)
            self._fit_from_graph(graph)
            self.n_points_ = graph.n_points
            self.n_duplicates_ = graph.n_duplicates
        else:
            self._fit_from_points(X, knn)
        return self

    # -- window and slope ------------------------------------------------------------------

    def _window(self, dists: np.ndarray) -> tuple[float, float]:
        r_lo = (
            float(self.r_min)
            if self.r_min is not None
            else float(np.median(dists[:, int(self.k1) - 1]))
        )
        r_hi = (
            float(self.r_max)
            if self.r_max is not None
            else float(np.median(dists[:, int(self.k2) - 1]))
        )
        if not r_hi > r_lo > 0:
            raise TokendimError(
                f"The scaling window [{r_lo:.4g}, {r_hi:.4g}] is empty: the k1-th and k2-th "
                "neighbour distances coincide. Set r_min and r_max, or widen k1..k2."
            )
        return r_lo, r_hi

    def _fit_radii(self, r_lo: float, r_hi: float) -> np.ndarray:
        if self.method == "two_point":
            return np.array([r_lo, r_hi])
        return np.geomspace(r_lo, r_hi, N_WINDOW)

    def _finish(
        self,
        fit_r: np.ndarray,
        counts: np.ndarray,
        left_out: np.ndarray,
        pairs: float,
        pairs_left: np.ndarray,
    ) -> None:
        """Slope, jackknife interval and fitted line from window counts.

        counts: (W,) pairs closer than each fit radius; left_out: (G, W) the same without the
        pairs touching group g; pairs: all pairs; pairs_left: (G,) pairs without group g.
        """
        if counts[0] <= 0:
            raise TokendimError(
                f"No pair of points is closer than r_min = {fit_r[0]:.4g}: the correlation "
                "integral is 0 there. Widen the window (larger k1 or r_min)."
            )
        x = np.log(fit_r)
        dim, intercept = _slope(x, np.log(counts / pairs))
        reps = np.full(left_out.shape[0], np.nan)
        for g in range(left_out.shape[0]):
            if left_out[g, 0] > 0 and pairs_left[g] > 0:
                reps[g] = _slope(x, np.log(left_out[g] / pairs_left[g]))[0]
        se = jackknife_se(reps)
        self.dimension_ = float(dim)
        self.intercept_ = float(intercept)
        self.standard_error_ = se
        self.dimension_interval_ = normal_interval(float(dim), se, float(self.confidence))
        self.fit_radii_ = fit_r
        self.fit_correlation_integral_ = counts / pairs

    # -- from points -----------------------------------------------------------------------

    def _fit_from_points(self, X: Any, knn: Any) -> None:
        xu, _, _, n_points = unique_points(X, knn)
        n_u = xu.shape[0]
        need = self.required_neighbors
        if n_u < max(need + 1, 3):
            raise TokendimError(
                f"CorrelationDimension needs at least {max(need + 1, 3)} distinct points, "
                f"X has {n_u}. Use more points or smaller k1/k2."
            )
        rng = np.random.default_rng(self.random_state)
        sampled = n_u > int(self.max_points)
        xs = xu[np.sort(rng.choice(n_u, int(self.max_points), replace=False))] if sampled else xu
        m = xs.shape[0]
        graph = as_graph(knn) if knn is not None and not sampled else None
        if graph is not None and graph.k >= need:
            dists, idx = graph.distances, graph.indices
        else:
            dists, idx = knn_search(xs, need, device=self.device)
        # The window ends are medians of neighbour distances and the pairs are counted from
        # float64 differences: measure the two neighbour columns the same way, so that the
        # pair whose distance is a window end compares equal to it (see _SHRINK).
        dists = dists.copy()
        x64 = xs.astype(np.float64, copy=False)
        for col in {int(self.k1) - 1, int(self.k2) - 1}:
            if col < dists.shape[1]:
                dists[:, col] = np.linalg.norm(x64[idx[:, col]] - x64, axis=1)
        r_lo, r_hi = self._window(dists)
        fit_r = self._fit_radii(r_lo, r_hi)
        centred = xs - xs.mean(axis=0, dtype=np.float64).astype(xs.dtype)
        diameter = 2.0 * float(np.sqrt(np.max(np.einsum("ij,ij->i", centred, centred))))
        r_first = float(dists[:, 0].min())
        curve_r = np.geomspace(r_first, max(diameter, r_first * (1 + 1e-9)), int(self.n_radii))
        labels = group_labels(m, int(self.n_groups), self.random_state)
        n_g = int(labels.max()) + 1
        curve_counts, grouped = _count_pairs(
            xs, curve_r, fit_r * (1.0 - _SHRINK), labels, n_g, resolve_device(self.device)
        )
        pairs = m * (m - 1) / 2.0
        total = grouped.sum(axis=(0, 1))  # (W,)
        # Pairs touching group g: M[g, :] + M[:, g] - M[g, g] (M counts each pair once).
        touching = (
            grouped.sum(axis=1) + grouped.sum(axis=0) - grouped[np.arange(n_g), np.arange(n_g)]
        )
        sizes = np.bincount(labels, minlength=n_g).astype(np.float64)
        rest = m - sizes
        self._finish(fit_r, total, total[None, :] - touching, pairs, rest * (rest - 1) / 2.0)
        self.window_ = (r_lo, r_hi)
        self.radii_ = curve_r
        self.correlation_integral_ = curve_counts / pairs
        self.n_used_ = int(m)
        self.exact_radius_ = math.inf
        self.censored_fraction_ = 0.0
        self.n_points_ = int(n_points)
        self.n_duplicates_ = int(n_points - n_u)

    # -- from a graph ----------------------------------------------------------------------

    def _fit_from_graph(self, graph: KNNGraph) -> None:
        d, idx = graph.distances, graph.indices
        n = d.shape[0]
        r_lo, r_hi = self._window(d)
        fit_r = self._fit_radii(r_lo, r_hi)
        labels = group_labels(n, int(self.n_groups), self.random_state)
        n_g = int(labels.max()) + 1
        # Ordered pairs (i, listed neighbour j) closer than each fit radius, by group pair.
        b = np.searchsorted(fit_r * (1.0 - _SHRINK), d, side="right")  # d < r_w <=> w >= b
        w = fit_r.size
        key = (labels[:, None] * n_g + labels[idx]) * (w + 1) + b
        grouped = np.bincount(key.ravel(), minlength=n_g * n_g * (w + 1)).reshape(n_g, n_g, w + 1)
        grouped = np.cumsum(grouped, axis=2)[:, :, :w].astype(np.float64)
        pairs = float(n) * (n - 1)
        total = grouped.sum(axis=(0, 1))
        touching = (
            grouped.sum(axis=1) + grouped.sum(axis=0) - grouped[np.arange(n_g), np.arange(n_g)]
        )
        sizes = np.bincount(labels, minlength=n_g).astype(np.float64)
        rest = n - sizes
        self._finish(fit_r, total, total[None, :] - touching, pairs, rest * (rest - 1))
        last = d[:, -1]
        curve_r = np.geomspace(
            float(d[:, 0].min()),
            max(float(last.max()), float(d[:, 0].min()) * (1 + 1e-9)),
            int(self.n_radii),
        )
        flat = np.sort(d.ravel())
        self.correlation_integral_ = np.searchsorted(flat, curve_r, side="left") / pairs
        self.radii_ = curve_r
        self.window_ = (r_lo, r_hi)
        self.n_used_ = int(n)
        self.exact_radius_ = float(last.min())
        self.censored_fraction_ = float(np.mean(last < r_hi))
        if self.censored_fraction_ > 0.01:
            warnings.warn(
                f"CorrelationDimension from a {graph.k}-neighbour graph: "
                f"{self.censored_fraction_:.0%} of the points have all their listed "
                f"neighbours within r_max = {r_hi:.4g}, so their counts are cut. Pass the "
                "points too (fit(X, knn=graph)) or use a graph with more neighbours.",
                stacklevel=3,
            )


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (two points: the secant)."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float(np.dot(dx, y - ym) / np.dot(dx, dx))
    return slope, float(ym - slope * xm)


def _count_pairs(
    xs: np.ndarray,
    curve_r: np.ndarray,
    fit_r: np.ndarray,
    labels: np.ndarray,
    n_g: int,
    dev: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Count the pairs i < j closer than each radius.

    Returns the counts at ``curve_r`` (C,) and, at ``fit_r``, a (G, G, W) array whose entry
    [g, h, w] counts pairs (i < j) with i in group g, j in group h, closer than fit_r[w].

    All pairs go through float32 products of the centred cloud (the curve is counted from
    them: a plot). Every pair that could be closer than the largest fit radius, given the
    float32 error bound, is then measured exactly (norm of the float64 difference of the input
    rows), so the window counts are exact (the kNN search screens and verifies the same way).
    """
    m, dim = xs.shape
    wide = torch.float64 if dev.type != "mps" else torch.float32
    t = torch.from_numpy(np.ascontiguousarray(xs))
    rows_dev = t.to(dev) if dev.type != "mps" else t.to(dev, torch.float32)
    # Centre in float64, in slices, so no float64 copy of the whole cloud is made.
    step = 4096
    mean = torch.zeros(dim, dtype=wide, device=dev)
    for s in range(0, m, step):
        mean += t[s : s + step].to(dev, wide).sum(dim=0)
    mean /= m
    # One matrix product gives |x_i - x_j|^2 = [x_i, |x_i|^2, 1] . [-2 x_j, 1, |x_j|^2]: no
    # separate passes over the (rows x points) block to add the squared norms.
    left = torch.empty((m, dim + 2), dtype=torch.float32, device=dev)
    right = torch.empty((m, dim + 2), dtype=torch.float32, device=dev)
    sq = torch.empty(m, dtype=wide, device=dev)
    for s in range(0, m, step):
        part = t[s : s + step].to(dev, wide) - mean
        sq[s : s + step] = part.pow(2).sum(dim=1)
        left[s : s + step, :dim] = part
        right[s : s + step, :dim] = -2.0 * part
    sq32 = sq.to(torch.float32)
    left[:, dim], left[:, dim + 1] = sq32, 1.0
    right[:, dim], right[:, dim + 1] = 1.0, sq32
    norms = sq.sqrt()
    curve_b = torch.as_tensor(np.asarray(curve_r) ** 2, dtype=torch.float32, device=dev)
    fit_b = torch.as_tensor(np.asarray(fit_r) ** 2, dtype=wide, device=dev)
    lab = torch.as_tensor(labels, device=dev)
    w = fit_b.numel()
    curve_hist = torch.zeros(curve_b.numel() + 1, dtype=torch.int64, device=dev)
    group_hist = torch.zeros(n_g * n_g * (w + 1), dtype=torch.int64, device=dev)
    rows = min(m, max(64, _BLOCK_BYTES // (4 * m)))
    r_top = float(np.max(fit_r))
    # Error bound of one float32 squared distance of a pair whose true distance is <= r_top
    # (then |x_j| <= |x_i| + r_top), as in the kNN search.
    eps_rel = 8.0 * (2.0 + math.sqrt(dim)) * float(torch.finfo(torch.float32).eps)
    reach = norms + r_top
    select = (r_top**2 + eps_rel * (reach * reach + 2.0 * norms * reach + sq)).to(torch.float32)
    batch = max(1, (32 * 2**20) // (8 * dim))
    for s in range(0, m, rows):
        e = min(m, s + rows)
        block = torch.mm(left[s:e], right[s:].t())
        # Each pair once: in the diagonal square keep only j > i.
        c = e - s
        upper = torch.ones((c, c), dtype=torch.bool, device=dev).triu(diagonal=1)
        block[:, :c].masked_fill_(~upper, float("inf"))
        bins = torch.bucketize(block.reshape(-1), curve_b, out_int32=True, right=True)
        curve_hist += torch.bincount(bins, minlength=curve_b.numel() + 1)
        del bins
        ii, jj = torch.nonzero(block < select[s:e].unsqueeze(1), as_tuple=True)
        del block
        ii, jj = ii + s, jj + s
        for a in range(0, ii.numel(), batch):
            pi, pj = ii[a : a + batch], jj[a : a + batch]
            diff = rows_dev[pi].to(wide) - rows_dev[pj].to(wide)
            exact = diff.pow(2).sum(dim=1)
            wb = torch.bucketize(exact, fit_b, right=True)
            key = (lab[pi] * n_g + lab[pj]) * (w + 1) + wb
            group_hist += torch.bincount(key, minlength=group_hist.numel())
    curve = torch.cumsum(curve_hist, 0)[:-1].cpu().numpy().astype(np.float64)
    grouped = group_hist.view(n_g, n_g, w + 1).cumsum(dim=2)[:, :, :w]
    return curve, grouped.cpu().numpy().astype(np.float64)
