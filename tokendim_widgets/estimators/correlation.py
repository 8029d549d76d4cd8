"""Grassberger-Procaccia correlation dimension, read in a window at the 10th-20th neighbour radii.

The slope of ``log C(r)`` against ``log r`` (``C``: the fraction of pairs of distinct points
closer than r) across a window set by neighbour distances. Fitted from points, the window's
counts are those of every pair, exactly, mostly read from the kNN graph. The window rule, the
counting and the intervals: docs/estimators.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np
import torch

from ..devices import full_float32, resolve_device
from ..errors import TokendimError
from ..knn import KNNGraph, TooFewPoints, as_points, column_mean, float32_error, search
from ..knn import knn as knn_search
from ..resampling import (
    AUTO_BLOCKS,
    as_group_labels,
    bootstrap_interval,
    graph_blocks,
    group_labels,
    group_multiplicities,
    normal_interval,
)
from ._base import (
    IDEstimator,
    as_graph,
    check_choice,
    check_confidence,
    check_float,
    check_int,
    check_seed,
    n_rows,
    prepare_points,
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
# fit(X) searches this many times k2 neighbours (at most n - 1), so that few rows list fewer
# points than the window holds and must be counted against all points (docs/estimators.md).
_GRAPH_FACTOR = 3
#: Most groups the bootstrap resamples (its counts are kept per pair of groups).
MAX_GROUPS = 1024
#: Random groups of points behind ``interval="bootstrap"`` without groups.
POINT_GROUPS = 100
#: Variance the bootstrap over blocks of the graph finds on independent points, relative to
#: the U-statistic variance (0.85-2.4 by cloud, 1.5 typical; benchmarks/README.md). Without
#: groups, only the blocks' variance beyond this is taken as dependence between points.
BLOCK_ARTEFACT = 1.5
#: ``interval_method_`` of that default.
BLENDED_METHOD = "U-statistic delta method + excess of graph blocks"
#: Radii of the grid a bootstrap counts at, from r_min / GRID_BELOW to r_max. A replicate's
#: window ends move by a few %; above r_max its log C is extrapolated along the grid's last
#: slope (counting there would make more rows censored: 3.4x the time of the fit, measured).
N_GRID = 24
GRID_BELOW = 1.25


class CorrelationDimension(IDEstimator):
    """Grassberger-Procaccia correlation dimension: the slope of log C(r) in a scaling window.

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
    curve_points : int, default 300
        Above the radii where the graph knows every point's partners, the plotted curve
        (fitted from points) counts the pairs of this many seeded random points with every
        other point (all points when there are no more): an unbiased estimate of C(r), over
        thousands of pairs there. The window counts are exact whatever this is.
    max_points : int, default 20000
        Above this many distinct points, count the pairs of a seeded random subset.
    n_groups : int, default 20
        Unused (checked and kept for a uniform interface): the analytic interval is no longer
        a jackknife over groups of points, but the U-statistic variance of every point.
    confidence : float, default 0.95
    random_state : int or None, default 0
        Seed of the subset, of the curve's points, of the blocks and of the bootstrap draws.
    device : str, default "auto"
    interval : {"auto", "bootstrap", "analytic"}, default "auto"
        ``"auto"`` resamples the ``groups`` given to ``fit``; without them it takes the
        U-statistic variance of independent points and adds what a bootstrap over blocks of
        the kNN graph finds beyond :data:`BLOCK_ARTEFACT` times it (dependence the user did not
        name; a normal interval). ``"bootstrap"`` resamples groups or random groups of points;
        ``"analytic"`` is the U-statistic variance alone, by the delta method (see
        :func:`slope_standard_error`).
    n_bootstrap : int, default 200
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"``: rows scaled to unit length first (chord distance; a ``knn`` graph is
        taken as built in this metric).

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
    standard_error_ : float
    interval_method_ : str
        "group bootstrap", :data:`BLENDED_METHOD`, "point bootstrap (independent points)" or
        "U-statistic delta method (independent points)".
    n_groups_ : int or None
        Units resampled (None for the analytic interval).
    bootstrap_dimensions_ : numpy.ndarray of shape (n_bootstrap,) or None
        Replicate estimates, paired across fits with the same groups and seed (None where the
        interval is not a bootstrap's).
    local_slope_ : numpy.ndarray
        ``d log C / d log r`` at each of ``radii_`` (same length; central differences, NaN
        where C is 0): a plateau is a scaling range.
    window_ : tuple of float
        ``(r_min, r_max)`` used.
    fit_radii_, fit_correlation_integral_ : numpy.ndarray
        The points of the fit; ``intercept_`` completes the fitted line
        ``log C = dimension_ * log r + intercept_``.
    radii_, correlation_integral_ : numpy.ndarray
        The curve C(r) (0 where no pair is that close); from points, that of all pairs up
        to the radius where the graph knows every point's partners (at least ``r_max``), and
        estimated from ``curve_points`` seeded points above it.
    n_used_ : int
        Distinct points whose pairs were counted.
    n_exact_rows_ : int
        Points whose pairs were counted against every point, because the kNN graph does not
        list all their partners inside the window (0 when fitted from a graph alone).
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

    analytic_method = "U-statistic delta method (independent points)"

    def __init__(
        self,
        k1: int = 10,
        k2: int = 20,
        r_min: float | None = None,
        r_max: float | None = None,
        method: str = "fit",
        n_radii: int = 40,
        curve_points: int = 300,
        max_points: int = 20000,
        n_groups: int = 20,
        confidence: float = 0.95,
        random_state: int | None = 0,
        device: str = "auto",
        interval: str = "auto",
        n_bootstrap: int = 200,
        metric: str = "euclidean",
    ) -> None:
        self.interval = interval
        self.n_bootstrap = n_bootstrap
        self.metric = metric
        self.k1 = k1
        self.k2 = k2
        self.r_min = r_min
        self.r_max = r_max
        self.method = method
        self.n_radii = n_radii
        self.curve_points = curve_points
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
        check_int(self.curve_points, "curve_points", 1)
        check_int(self.max_points, "max_points", 3)
        check_int(self.n_groups, "n_groups", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def fit(self: _C, X: Any = None, *, knn: Any = None, groups: Any = None) -> _C:
        """Estimate the correlation dimension.

        Parameters
        ----------
        X : array-like of shape (n, D), optional
            The points: the window counts are those of all pairs (see the module notes).
        knn : KNNGraph or (distances, indices), optional
            A graph of ``X`` in the estimator's ``metric``: its deduplication and neighbours
            are reused (its distances must be those of ``X``, as
            :func:`~tokendim_widgets.knn.build_graph` gives). Alone (``X=None``), the counts
            come from the graph's pairs (exact below ``exact_radius_``).
        groups : array-like of shape (n,), optional
            A label per row (e.g. the prompt of each token): the interval resamples whole
            groups. A merged copy counts in the group of its representative.

        Returns
        -------
        self
        """
        self._check_params()
        self._check_interval_params()
        if X is None and knn is None:
            raise TokendimError(
                "CorrelationDimension.fit needs the points X or a kNN graph (knn=...)."
            )
        self._codes: np.ndarray | None = None
        self._n_labels = 0
        if groups is not None:
            rows = n_rows(X) if X is not None else as_graph(knn).n_points
            uniques, self._codes = as_group_labels(groups, rows)
            self._n_labels = int(uniques.size)
        X = prepare_points(X, self.metric)
        if X is None:
            graph = self._graph(None, knn)
            self._fit_from_graph(graph)
            self.n_points_ = graph.n_points
            self.n_duplicates_ = graph.n_duplicates
        else:
            with full_float32():  # the counts' error bound assumes true float32 products
                self._fit_from_points(X, knn)
        self.local_slope_ = local_slope(self.radii_, self.correlation_integral_)
        return self

    def _units(self, m: int, idx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, int, str]:
        """Resampling unit of each counted point: (labels, number of units, interval method).

        ``rows``: the input row standing for each counted point (its representative).
        """
        if self._codes is not None and self.interval != "analytic":
            if self._n_labels > MAX_GROUPS:
                raise TokendimError(
                    f"CorrelationDimension resamples at most {MAX_GROUPS} groups, got "
                    f"{self._n_labels}: use coarser groups (e.g. one per prompt)."
                )
            return self._codes[rows], self._n_labels, "group bootstrap"
        if self.interval == "auto":
            labels = graph_blocks(idx, AUTO_BLOCKS, self.random_state)
            return labels, int(labels.max()) + 1, BLENDED_METHOD
        if self.interval == "bootstrap":
            labels = group_labels(m, POINT_GROUPS, self.random_state)
            return labels, int(labels.max()) + 1, "point bootstrap (independent points)"
        # The point-level interval needs each point's own counts, not units of points.
        return np.zeros(m, dtype=np.int64), 1, self.analytic_method

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

    def _count_radii(self, fit_r: np.ndarray, r_lo: float, r_hi: float, method: str) -> np.ndarray:
        """Radii to count pairs at: the fit's, and for a bootstrap a grid around the window.

        A replicate moves the automatic window (its ends are medians of neighbour distances
        of the resampled points), so its counts are read off this grid.
        """
        if method == self.analytic_method:
            return fit_r
        grid = np.geomspace(r_lo / GRID_BELOW, r_hi, N_GRID)
        return np.unique(np.concatenate([fit_r, grid]))

    def _finish(
        self,
        fit_r: np.ndarray,
        count_r: np.ndarray,
        grouped_all: np.ndarray,
        labels: np.ndarray,
        method: str,
        dists: np.ndarray,
        row_counts: np.ndarray | None = None,
    ) -> None:
        """Slope, interval and fitted line from the counts by unit pair.

        grouped_all: (G, G, W) ordered pairs closer than each of ``count_r``, [g, h] for i in
        unit g and j in unit h; labels: the unit of each counted point; dists: their
        neighbour distances (for the replicates' windows); row_counts: (m, W) each point's
        partners closer than each of ``count_r`` (for the point-level interval).
        """
        grouped = grouped_all[:, :, np.searchsorted(count_r, fit_r)]
        n_g = grouped.shape[0]
        m = labels.size
        counts = grouped.sum(axis=(0, 1))
        pairs = float(m) * (m - 1)
        if counts[0] <= 0:
            raise TokendimError(
                f"No pair of points is closer than r_min = {fit_r[0]:.4g}: the correlation "
                "integral is 0 there. Widen the window (larger k1 or r_min)."
            )
        x = np.log(fit_r)
        dim, intercept = _slope(x, np.log(counts / pairs))
        self.dimension_ = float(dim)
        self.intercept_ = float(intercept)
        self.fit_radii_ = fit_r
        self.fit_correlation_integral_ = counts / pairs
        self.interval_method_ = method
        se_points = math.nan
        if self._needs_row_counts(method):
            if row_counts is None:
                raise TokendimError("The point-level interval needs each point's counts.")
            se_points = slope_standard_error(x, row_counts[:, np.searchsorted(count_r, fit_r)])
        if method == self.analytic_method:
            self._normal(float(dim), se_points, None)
            return
        mult = group_multiplicities(n_g, int(self.n_bootstrap), self.random_state)
        boot = self._replicate_slopes(count_r, grouped_all, mult, labels, dists)
        self.n_groups_ = n_g
        if method == BLENDED_METHOD:
            _, se_blocks = bootstrap_interval(float(dim), boot, float(self.confidence))
            excess = max(0.0, se_blocks**2 - BLOCK_ARTEFACT * se_points**2)
            self._normal(float(dim), math.sqrt(se_points**2 + excess), n_g)
            return
        self.bootstrap_dimensions_ = boot
        self.dimension_interval_, self.standard_error_ = bootstrap_interval(
            float(dim), boot, float(self.confidence)
        )

    def _needs_row_counts(self, method: str) -> bool:
        """Whether the interval needs each point's own counts (the U-statistic variance)."""
        return method in (self.analytic_method, BLENDED_METHOD)

    def _normal(self, dim: float, se: float, n_g: int | None) -> None:
        self.standard_error_ = se
        self.dimension_interval_ = normal_interval(dim, se, float(self.confidence))
        self.n_groups_ = n_g
        self.bootstrap_dimensions_ = None

    def _replicate_slopes(
        self,
        count_r: np.ndarray,
        grouped: np.ndarray,
        mult: np.ndarray,
        labels: np.ndarray,
        dists: np.ndarray,
    ) -> np.ndarray:
        """The slope of each replicate, in its own window (see :func:`replicate_counts`)."""
        counts = replicate_counts(grouped, mult)
        weights = mult[:, labels]
        n_b = mult.shape[0]
        lo = np.full(n_b, float(self.r_min)) if self.r_min is not None else None
        hi = np.full(n_b, float(self.r_max)) if self.r_max is not None else None
        if lo is None:
            lo = weighted_median(dists[:, int(self.k1) - 1], weights)
        if hi is None:
            hi = weighted_median(dists[:, int(self.k2) - 1], weights)
        lo = np.clip(lo, count_r[0], count_r[-1] * 1.25)
        hi = np.clip(hi, count_r[0], count_r[-1] * 1.25)
        log_r = np.log(count_r)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_c = np.where(counts > 0, np.log(counts), np.nan)
        # Slope of each replicate's log C over the grid's last 4 radii, to extrapolate.
        tail = log_r[-4:] - log_r[-4:].mean()
        end_slope = (log_c[:, -4:] @ tail) / float(tail @ tail)
        n_fit = 2 if self.method == "two_point" else N_WINDOW
        t = np.linspace(0.0, 1.0, n_fit)
        span = np.log(hi) - np.log(lo)
        x = np.log(lo)[:, None] + t[None, :] * span[:, None]  # (B, n_fit)
        j = np.clip(np.searchsorted(log_r, x) - 1, 0, log_r.size - 2)
        rows = np.arange(n_b)[:, None]
        frac = (x - log_r[j]) / (log_r[j + 1] - log_r[j])
        y = log_c[rows, j] + frac * (log_c[rows, j + 1] - log_c[rows, j])
        beyond = x > log_r[-1]
        y = np.where(beyond, log_c[:, -1:] + end_slope[:, None] * (x - log_r[-1]), y)
        tc = t - t.mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (y @ tc) / (span * float(tc @ tc))
        return np.where(span > 0, out, np.nan)

    # -- from points -----------------------------------------------------------------------

    def _fit_from_points(self, X: Any, knn: Any) -> None:
        need = self.required_neighbors
        least = max(need + 1, 3)

        def too_few(k: int, n_u: int, merged: int) -> TokendimError:
            return TokendimError(
                f"CorrelationDimension needs at least {least} distinct points, X has {n_u}. "
                "Use more points or smaller k1/k2."
            )

        def graph_size(n_u: int) -> int:
            if n_u < least:
                return n_u  # more than the points allow: the search raises too_few
            return min(n_u - 1, max(need, _GRAPH_FACTOR * int(self.k2)))

        if knn is None:
            X = as_points(X)
            if X.shape[0] <= int(self.max_points):
                # No sample will be drawn: search the graph (copies removed, near copies
                # found in the graph), sized for the counts below.
                try:
                    knn = search(X, graph_size, device=self.device)
                except TooFewPoints as exc:
                    raise too_few(exc.k, exc.n_unique, exc.n_merged) from None
        xu, keep, _, n_points = unique_points(X, knn)
        n_u = xu.shape[0]
        if n_u < least:
            raise too_few(need, n_u, 0)
        rng = np.random.default_rng(self.random_state)
        sampled = n_u > int(self.max_points)
        sel = np.sort(rng.choice(n_u, int(self.max_points), replace=False)) if sampled else None
        xs = xu[sel] if sel is not None else xu
        rows = keep[sel] if sel is not None else keep
        m = xs.shape[0]
        graph = as_graph(knn) if knn is not None and not sampled else None
        if graph is not None and graph.k >= need:
            dists, idx = graph.distances, graph.indices
        else:
            k_graph = min(m - 1, max(need, _GRAPH_FACTOR * int(self.k2)))
            dists, idx = knn_search(xs, k_graph, device=self.device)
        tol = _graph_tol(xs.shape[1])
        labels, n_g, method = self._units(m, idx, rows)
        counter = _PairCounter(xs, labels, n_g, resolve_device(self.device))
        # The window ends are medians of neighbour distances and the pairs are counted from
        # float64 differences: measure the two neighbour columns the same way, so that the
        # pair whose distance is a window end compares equal to it (see _SHRINK). They also
        # check that the graph's distances are as accurate as the counting below assumes.
        dists = dists.copy()
        accurate = True
        every = torch.arange(m, device=counter.dev)
        for col in sorted({int(self.k1) - 1, int(self.k2) - 1}):
            if col < dists.shape[1]:
                partner = torch.as_tensor(idx[:, col], device=counter.dev)
                exact = counter.exact_sq(every, partner).sqrt_().cpu().numpy().astype(np.float64)
                accurate &= bool(np.all(np.abs(dists[:, col] - exact) <= tol * exact))
                dists[:, col] = exact
        r_lo, r_hi = self._window(dists)
        fit_r = self._fit_radii(r_lo, r_hi)
        count_r = self._count_radii(fit_r, r_lo, r_hi, method)
        shrunk = count_r * (1.0 - _SHRINK)
        if dists.shape[1] >= m - 1:
            censored = np.zeros(m, dtype=bool)  # every other point is listed
        elif not accurate:
            warnings.warn(
                "CorrelationDimension: the kNN graph's distances differ from the points' by "
                f"more than {tol:.1e} relative (is it the graph of these points?); every pair "
                "is counted from the points instead.",
                stacklevel=3,
            )
            censored = np.ones(m, dtype=bool)
        else:
            # A row whose last listed neighbour is beyond the largest radius (by more than the
            # graph's error) lists every point closer than any fit radius.
            censored = dists[:, -1] < float(shrunk.max()) * (1.0 + tol)
        diameter = 2.0 * math.sqrt(float(counter.sq.max()))
        r_first = float(dists[:, 0].min())
        curve_r = np.geomspace(r_first, max(diameter, r_first * (1 + 1e-9)), int(self.n_radii))
        # Ordered pairs (i, j), i != j: each row i counts its own partners, from its list when
        # it is uncensored, against every point otherwise.
        keep = ~censored
        per_row = self._needs_row_counts(method)
        exact_grouped, exact_curve, exact_rows = counter.window_counts(
            np.flatnonzero(censored), shrunk, curve_r, per_row=per_row
        )
        listed_grouped, listed_rows = _listed_counts(
            dists[keep], idx[keep], np.flatnonzero(keep), shrunk, tol, counter, per_row=per_row
        )
        grouped = listed_grouped + exact_grouped
        row_counts = None
        if exact_rows is not None and listed_rows is not None:
            row_counts = exact_rows
            row_counts[keep] += listed_rows
        self._finish(fit_r, count_r, grouped, labels, method, dists, row_counts)
        self.correlation_integral_ = self._curve(
            counter, curve_r, dists, censored, exact_curve, rng
        )
        self.window_ = (r_lo, r_hi)
        self.radii_ = curve_r
        self.n_used_ = int(m)
        self.n_exact_rows_ = int(np.count_nonzero(censored))
        self.exact_radius_ = math.inf
        self.censored_fraction_ = 0.0
        self.n_points_ = int(n_points)
        self.n_duplicates_ = int(n_points - n_u)

    def _curve(
        self,
        counter: _PairCounter,
        curve_r: np.ndarray,
        dists: np.ndarray,
        censored: np.ndarray,
        censored_curve: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The plotted C(r): exact where every point's partners are known, sampled above.

        Below ``r_exact`` (the smallest last listed distance of an uncensored point) each
        point's partners closer than r are known: listed by the graph, or counted against
        every point for the censored ones, so C(r) is that of all pairs. Above it, each of
        ``curve_points`` seeded points is counted with every other point (an unbiased
        estimate; there C(r) >= C(r_max), so even a few hundred points count thousands of
        pairs). All points are counted when there are no more than ``curve_points``.
        """
        m = int(dists.shape[0])
        pairs = float(m) * (m - 1)
        if m <= int(self.curve_points):
            return counter.curve_counts(np.arange(m), curve_r) / pairs
        listed = ~censored
        r_exact = float(dists[listed, -1].min()) if listed.any() else math.inf
        # Listed distances below each radius: a histogram over the radii (no sort of the
        # n x k distances); bin b holds curve_r[b - 1] <= d < curve_r[b].
        bins = np.searchsorted(curve_r, dists[listed].ravel(), side="right")
        below_r = np.cumsum(np.bincount(bins, minlength=curve_r.size + 1))[:-1]
        exact = below_r + censored_curve  # the censored rows' pairs, counted with the window
        curve = exact / pairs
        above = curve_r > r_exact
        if above.any():
            sample = np.sort(rng.choice(m, int(self.curve_points), replace=False))
            sampled = counter.curve_counts(sample, curve_r) / (float(sample.size) * (m - 1))
            # Where the two meet, the sample's noise could dip below the exact value: a
            # fraction of pairs never decreases with r.
            curve = np.maximum.accumulate(np.where(above, sampled, curve))
        return curve

    # -- from a graph ----------------------------------------------------------------------

    def _fit_from_graph(self, graph: KNNGraph) -> None:
        d, idx = graph.distances, graph.indices
        n = d.shape[0]
        r_lo, r_hi = self._window(d)
        fit_r = self._fit_radii(r_lo, r_hi)
        labels, n_g, method = self._units(n, idx, graph.keep)
        count_r = self._count_radii(fit_r, r_lo, r_hi, method)
        # Ordered pairs (i, listed neighbour j) closer than each radius, by group pair.
        b = np.searchsorted(count_r * (1.0 - _SHRINK), d, side="right")  # d < r_w <=> w >= b
        w = count_r.size
        key = (labels[:, None] * n_g + labels[idx]) * (w + 1) + b
        grouped = np.bincount(key.ravel(), minlength=n_g * n_g * (w + 1)).reshape(n_g, n_g, w + 1)
        grouped = np.cumsum(grouped, axis=2)[:, :, :w].astype(np.float64)
        pairs = float(n) * (n - 1)
        row_counts = _row_counts(b, w) if self._needs_row_counts(method) else None
        self._finish(fit_r, count_r, grouped, labels, method, d, row_counts)
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
        self.n_exact_rows_ = 0
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


def local_slope(radii: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """d log C / d log r at each radius (central differences, one-sided at the ends).

    NaN where C or a neighbour of it in the difference is 0. A plateau of this curve is a
    scaling range; its height there is the dimension.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(curve > 0, np.log(curve), np.nan)
    return np.gradient(y, np.log(radii))


def replicate_counts(grouped: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Pair counts of each replicate, shape (B, W), from counts by unit pair (G, G, W).

    A pair's count is a U-statistic: its spread has a first-order part (each point's number of
    partners) and a second-order part (which pairs happen to fall inside r). Each point's
    partner count weighs its unit's multiplicity, ``sum_i w_i c_i(r)``, the first-order part
    (weighing a pair by both ends, ``m_g m_h``, made the intervals about twice too wide, and
    adds pairs between a unit and its own copy). A pair of two different units ``g != h``
    adds ``((m_g - 1)(m_h - 1) + 1/G) / sqrt(2)`` per ordered pair (mean 0 under the
    multinomial draw): the second-order part, which the
    one-end weights give only half its variance. Without it, clouds whose window pairs mostly
    join two units (independent points in 10-d) got intervals 1.4x too narrow (see
    benchmarks/README.md, "Calibration of the intervals").
    """
    base = mult @ grouped.sum(axis=1)
    n_g, _, n_w = grouped.shape
    if n_g < 2:
        return base
    excess = mult - 1.0
    between = grouped.copy()
    between[np.arange(n_g), np.arange(n_g)] = 0.0
    # sum over g != h of excess[b, g] * excess[b, h] * grouped[g, h, w], as one product.
    left = (excess @ between.reshape(n_g, n_g * n_w)).reshape(-1, n_g, n_w)
    # The draws are multinomial: E[(m_g - 1)(m_h - 1)] = -1/G for g != h, added back.
    second = np.einsum("bhw,bh->bw", left, excess) + between.sum(axis=(0, 1)) / n_g
    return base + second / math.sqrt(2.0)


def slope_standard_error(log_r: np.ndarray, row_counts: np.ndarray) -> float:
    """Standard error of the slope of ``log C`` on ``log r`` for independent points.

    ``row_counts`` (m, W): each point's partners closer than each radius (the window held
    fixed). The ordered pair count ``S = sum_i c_i`` is a U-statistic of order 2, whose
    variance (Hoeffding) is ``m(m-1) [4(m-2) zeta1 + 2 zeta2]``: ``zeta1`` the spread of a
    point's expected partner count, ``zeta2`` that of one pair (which pairs fall inside r).
    With ``Q`` the scatter of the ``c_i`` and ``Z`` that of the pair indicators,
    ``E Q = (m-1)(m-2) [(m-4) zeta1 + zeta2]`` gives the unbiased
    ``Var S = 2m (2Q - Z) / (m-4)`` (``zeta1 >= 0`` bounds it below by ``2Z``), carried to the
    slope through its gradient (the delta method).
    """
    c = np.asarray(row_counts, dtype=np.float64)
    m = c.shape[0]
    totals = c.sum(axis=0)
    if m < 3 or not np.all(totals > 0):
        return math.nan
    dx = log_r - log_r.mean()
    grad = dx / float(dx @ dx) / totals  # d slope / d S_w
    first = (c - totals / m) @ grad
    q = float(first @ first)
    nested = totals[np.minimum.outer(np.arange(totals.size), np.arange(totals.size))]
    z = float(grad @ (nested - np.outer(totals, totals) / (m * (m - 1.0))) @ grad)
    var = 2.0 * m * (2.0 * q - z) / (m - 4.0) if m > 4 else 4.0 * q - 2.0 * z
    return math.sqrt(max(var, 2.0 * z, 0.0))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted median of ``values`` under each row of ``weights`` (B, n), shape (B,)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[:, order], axis=1)
    pos = np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)
    return values[order][pos]


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (two points: the secant)."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float(np.dot(dx, y - ym) / np.dot(dx, dx))
    return slope, float(ym - slope * xm)


def _graph_tol(dim: int) -> float:
    """Relative error allowed on a kNN graph's distances (see :func:`_listed_counts`).

    build_graph re-ranks the candidates by norms of differences in the input's precision: for
    float32 rows that is a float32 sum of D squares, measured at <= 1.05e-6 relative at
    D = 768 (all 64 neighbours of 10^4 points, the benchmark cloud and a 10-d cube); float64
    rows are accurate to ~1e-15. This is the kNN search's own float32 error bound (blocked
    sums grow like sqrt(D)), 2.8e-5 at D = 768, so 27x the largest error seen there. A wider
    band costs nothing measurable: a few more entries re-measured, a few more rows counted
    against all points.
    """
    return float32_error(dim)


def _listed_counts(
    d: np.ndarray,
    idx: np.ndarray,
    rows: np.ndarray,
    shrunk: np.ndarray,
    tol: float,
    counter: _PairCounter,
    per_row: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Ordered pairs (i, listed neighbour j) closer than each radius, by group pair.

    ``d``/``idx`` are the graph rows of points ``rows``; ``shrunk`` the (ascending) radii.
    Returns a (G, G, W) array: [g, h, w] counts the pairs with i in group g, j in group h,
    closer than ``shrunk[w]``; and with ``per_row`` each row's own counts, (rows, W), else
    None. An entry within ``tol`` (relative) of a radius is re-measured as the float64
    difference of the rows before it is compared, as every pair of the window is; any other
    entry compares with every radius as its exact distance would, since the graph's distances
    are accurate to better than ``tol``.
    """
    n_g = counter.n_g
    labels = counter.labels_np
    w = shrunk.size
    b = np.searchsorted(shrunk, d, side="right")  # d < shrunk[w] <=> w >= b
    near = np.searchsorted(shrunk * (1.0 - tol), d, side="right") != np.searchsorted(
        shrunk * (1.0 + tol), d, side="right"
    )
    ii, cc = np.nonzero(near)
    if ii.size:
        dev = counter.dev
        exact = counter.exact_sq(
            torch.as_tensor(rows[ii], device=dev), torch.as_tensor(idx[ii, cc], device=dev)
        )
        b[ii, cc] = np.searchsorted(shrunk**2, exact.cpu().numpy().astype(np.float64), "right")
    key = (labels[rows][:, None] * n_g + labels[idx]) * (w + 1) + b
    grouped = np.bincount(key.ravel(), minlength=n_g * n_g * (w + 1)).reshape(n_g, n_g, w + 1)
    grouped = np.cumsum(grouped, axis=2)[:, :, :w].astype(np.float64)
    return grouped, (_row_counts(b, w) if per_row else None)


def _row_counts(bins: np.ndarray, w: int) -> np.ndarray:
    """Each row's entries below each of ``w`` radii, (rows, w), from their radius bins.

    ``bins[i, c]``: the first radius that entry (i, c) is closer than (``w``: none).
    """
    n = bins.shape[0]
    key = (np.arange(n)[:, None] * (w + 1) + bins).ravel()
    hist = np.bincount(key, minlength=n * (w + 1)).reshape(n, w + 1)
    return np.cumsum(hist, axis=1)[:, :w].astype(np.float64)


class _PairCounter:
    """Counts the ordered pairs (i, j != i) of a cloud for a subset of rows i.

    Squared distances come from float32 matrix products of the centred cloud (torch,
    chunked): the plotted curve is counted from them, and for the window they only screen,
    every pair that could be inside the window being measured exactly (float64 difference of
    the input rows). When every row is counted, each pair is computed once and counted both
    ways, so that costs what counting each pair once does.
    """

    def __init__(self, xs: np.ndarray, labels: np.ndarray, n_g: int, dev: torch.device) -> None:
        m, dim = xs.shape
        self.m, self.dim, self.n_g, self.dev = m, dim, n_g, dev
        self.labels_np = labels
        self.labels = torch.as_tensor(labels, device=dev)
        wide = torch.float64 if dev.type != "mps" else torch.float32
        self.wide = wide
        t = torch.from_numpy(np.ascontiguousarray(xs))
        self.rows = t.to(dev) if dev.type != "mps" else t.to(dev, torch.float32)
        # Centre in float64, in slices, so no float64 copy of the whole cloud is made.
        mean = column_mean(t, dev)
        # One matrix product gives |x_i - x_j|^2 = [x_i, |x_i|^2, 1] . [-2 x_j, 1, |x_j|^2]:
        # no separate passes over the (rows x points) block to add the squared norms. Only
        # the right side is stored for every point; a counted row's left side is derived
        # from it (see _left).
        self.right = torch.empty((m, dim + 2), dtype=torch.float32, device=dev)
        sq = torch.empty(m, dtype=wide, device=dev)
        # Small slices stay near the caches; -2 x in float32 is the rounded -2 x (exact scaling).
        fill = 512
        for s in range(0, m, fill):
            part = t[s : s + fill].to(dev, wide) - mean
            sq[s : s + fill] = part.pow(2).sum(dim=1)
            torch.mul(part.to(torch.float32), -2.0, out=self.right[s : s + fill, :dim])
        self.sq32 = sq.to(torch.float32)
        self.right[:, dim], self.right[:, dim + 1] = 1.0, self.sq32
        self.sq = sq
        self.norms = sq.sqrt()

    def exact_sq(self, pi: torch.Tensor, pj: torch.Tensor) -> torch.Tensor:
        """Squared distances of the pairs (pi, pj), from the float64 difference of the rows."""
        out = torch.empty(pi.numel(), dtype=self.wide, device=self.dev)
        # Batches of a few MiB stay near the caches: 7x faster than 32 MiB ones (measured).
        step = max(1, 2**22 // (8 * self.dim))
        for a in range(0, pi.numel(), step):
            diff = torch.index_select(self.rows, 0, pi[a : a + step]).to(self.wide)
            diff -= torch.index_select(self.rows, 0, pj[a : a + step])
            out[a : a + step] = diff.pow_(2).sum(dim=1)
        return out

    def _left(self, qi: torch.Tensor) -> torch.Tensor:
        """Rows ``qi`` as ``[x_i, |x_i|^2, 1]`` (float32): the rounded x_i is -1/2 of the right
        side's -2 x_i, exactly."""
        dim = self.dim
        right = torch.index_select(self.right, 0, qi)
        left = torch.empty_like(right)
        torch.mul(right[:, :dim], -0.5, out=left[:, :dim])
        left[:, dim] = self.sq32[qi]
        left[:, dim + 1] = 1.0
        return left

    def _blocks(
        self, rows: np.ndarray
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """Float32 squared distances of the pairs (i in rows, j != i), by chunks of rows.

        ``rows``: ascending distinct indices. Yields (i, j, block, n_in): the chunk's row
        indices, the column indices, the (rows x columns) block (inf where masked), and how
        many leading columns are pairs to count both ways. When every point is a row, a chunk
        meets only the rows after its own, so each pair is computed once and counted both
        ways (half the products); for fewer rows each ordered pair is computed from its own
        row (the pairs of two rows twice: a small share, and no reordered copy of the cloud).
        """
        m, r, dev = self.m, int(rows.size), self.dev
        if r == 0:
            return
        every = r == m
        order = torch.arange(m, device=dev)
        qrows = order if every else torch.as_tensor(rows, device=dev)
        chunk = min(r, max(64, _BLOCK_BYTES // (4 * m)))
        for s in range(0, r, chunk):
            e = min(r, s + chunk)
            c = e - s
            qi = qrows[s:e]
            if every:
                block = torch.mm(self._left(qi), self.right[s:].t())
                upper = torch.ones((c, c), dtype=torch.bool, device=dev).triu(diagonal=1)
                block[:, :c].masked_fill_(~upper, float("inf"))
                yield qi, order[s:], block, m - s
            else:
                block = torch.mm(self._left(qi), self.right.t())
                block[torch.arange(c, device=dev), qi] = float("inf")  # the row itself
                yield qi, order, block, 0

    def window_counts(
        self, rows: np.ndarray, shrunk: np.ndarray, curve_r: np.ndarray, per_row: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(G, G, W) ordered pairs (i in rows, j != i) closer than each radius, by group pair.

        Exact: a pair's radius bin is read from its float32 squared distance where the
        float32 error bound leaves no radius within reach of it; every other pair that could
        be closer than the largest radius is measured as the float64 difference of the rows
        (as the kNN search verifies its own selection). The same pass also gives these rows'
        curve counts at ``curve_r`` (as :meth:`curve_counts`) and, with ``per_row``, the
        partners of each of these rows, (m, W) (0 for the other points; None without).
        """
        curve = torch.zeros(int(curve_r.size) + 1, dtype=torch.int64, device=self.dev)
        dev, n_g, w = self.dev, self.n_g, int(shrunk.size)
        hist = torch.zeros(n_g * n_g * (w + 1), dtype=torch.int64, device=dev)
        own = torch.zeros(self.m * (w + 1) if per_row else 0, dtype=torch.int64, device=dev)
        fit_b = torch.as_tensor(np.asarray(shrunk) ** 2, dtype=self.wide, device=dev)
        r_top = float(np.max(shrunk))
        r_bottom = float(np.min(shrunk))
        # Error bound of one float32 squared distance of a pair whose true distance is
        # <= r_top (then |x_j| <= |x_i| + r_top), as in the kNN search.
        eps_rel = float32_error(self.dim)
        reach = self.norms + r_top
        err = eps_rel * (reach * reach + 2.0 * self.norms * reach + self.sq)
        select = (r_top**2 + err).to(torch.float32)
        # A pair whose float32 value is at least twice the bound away from every radius has
        # its exact bin. The bound holds for pairs within r_top; one farther away cannot
        # screen below a radius minus the bound where the squared distance grows faster than
        # its error from the smallest radius on: r_bottom > 2 eps |x_i| / (1 - eps), with a
        # margin of 4. Rows that fail that have every selected pair measured.
        band = torch.where(
            self.norms * (8.0 * eps_rel) < r_bottom * (1.0 - eps_rel),
            2.0 * err,
            torch.full_like(err, math.inf),
        )
        next_b = torch.cat([fit_b, fit_b.new_full((1,), math.inf)])  # each bin's upper end
        lab = self.labels
        for qi, cols, block, n_in in self._blocks(rows):
            curve += self._curve_hist(block, n_in, curve_r)
            ii, jj = torch.nonzero(block < select[qi].unsqueeze(1), as_tuple=True)
            screened = block[ii, jj].to(self.wide)
            del block
            pi, pj = qi[ii], cols[jj]
            slack = band[pi]
            wb = torch.bucketize(screened - slack, fit_b, right=True)
            # Unsure where the next radius up is within reach: screened + slack >= it.
            unsure = torch.nonzero(screened + slack >= next_b[wb]).squeeze(1)
            if unsure.numel():
                exact = self.exact_sq(pi[unsure], pj[unsure])
                wb[unsure] = torch.bucketize(exact, fit_b, right=True)
            li, lj = lab[pi], lab[pj]
            key = (li * n_g + lj) * (w + 1) + wb
            both = jj < n_in  # pairs of two rows: counted both ways
            back = ((lj * n_g + li) * (w + 1) + wb)[both]
            hist += torch.bincount(torch.cat([key, back]), minlength=hist.numel())
            if per_row:
                mine = torch.cat([pi * (w + 1) + wb, (pj * (w + 1) + wb)[both]])
                own += torch.bincount(mine, minlength=own.numel())
        grouped = hist.view(n_g, n_g, w + 1).cumsum(dim=2)[:, :, :w]
        curve_counts = torch.cumsum(curve, 0)[:-1].cpu().numpy().astype(np.float64)
        row_counts = None
        if per_row:
            row_counts = own.view(self.m, w + 1).cumsum(dim=1)[:, :w].cpu().numpy()
            row_counts = row_counts.astype(np.float64)
        return grouped.cpu().numpy().astype(np.float64), curve_counts, row_counts

    def _curve_hist(self, block: torch.Tensor, n_in: int, curve_r: np.ndarray) -> torch.Tensor:
        """Histogram of a block's pairs over the curve's radii (pairs of two rows twice)."""
        n_r = int(curve_r.size)
        lb0 = 2.0 * math.log(float(curve_r[0]))
        inv_step = (n_r - 1) / (2.0 * math.log(float(curve_r[-1]) / float(curve_r[0])))

        def bins(v: torch.Tensor) -> torch.Tensor:
            # Bin c + 1 holds curve_r[c]^2 <= v < curve_r[c + 1]^2; 0 below, n_r above.
            idx = torch.log(v.clamp_min(0.0)).sub_(lb0).mul_(inv_step).floor_()
            idx = idx.clamp_(-1.0, n_r - 1.0).add_(1.0).to(torch.int32).reshape(-1)
            return torch.bincount(idx, minlength=n_r + 1)

        hist = torch.zeros(n_r + 1, dtype=torch.int64, device=self.dev)
        if n_in:
            hist += 2 * bins(block[:, :n_in])
        if n_in < block.shape[1]:
            hist += bins(block[:, n_in:])
        return hist

    def curve_counts(self, rows: np.ndarray, curve_r: np.ndarray) -> np.ndarray:
        """Ordered pairs (i in rows, j != i) closer than each radius of ``curve_r``.

        From the float32 products (a plot: ~1e-6 relative in r). ``curve_r`` is geometric,
        so a squared distance's bin is an affine function of its logarithm: one pass of
        log, floor and bincount (several times faster than a binary search per entry).
        """
        hist = torch.zeros(int(curve_r.size) + 1, dtype=torch.int64, device=self.dev)
        for _, _, block, n_in in self._blocks(rows):
            hist += self._curve_hist(block, n_in, curve_r)
        return torch.cumsum(hist, 0)[:-1].cpu().numpy().astype(np.float64)
