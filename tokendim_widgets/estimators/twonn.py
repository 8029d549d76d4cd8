"""TwoNN (Facco et al. 2017): the intrinsic dimension from the ratio of two neighbour distances.

``method="linear"`` is the paper's least-squares fit, ``method="mle"`` the censored maximum
likelihood with an exact interval; conventions and formulas: docs/estimators.md.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TokendimError
from ..knn import KNNGraph
from ..resampling import chi2_quantile, jackknife, normal_interval
from ._base import IDEstimator, check_choice, check_confidence, check_float, check_int, check_seed

__all__ = ["TwoNN"]


class TwoNN(IDEstimator):
    """Two-nearest-neighbour intrinsic dimension (Facco et al. 2017).

    Parameters
    ----------
    method : {"linear", "mle"}, default "linear"
        Least-squares fit of the empirical distribution (the paper) or maximum likelihood.
    discard_fraction : float, optional
        Fraction of the largest ratios left out (linear) or censored (mle). Default 0.1 for
        ``"linear"`` and 0.0 for ``"mle"``, the references' defaults.
    n_groups : int, default 20
        Groups of the jackknife behind the linear method's analytic interval.
    confidence : float, default 0.95
        Level of ``dimension_interval_``.
    random_state : int or None, default 0
        Seed of the jackknife groups and of the bootstrap draws.
    device : str, default "auto"
        Where the neighbour search runs when fitted from points.
    interval : {"auto", "bootstrap", "analytic"}, default "auto"
        How ``dimension_interval_`` is made: ``"auto"`` resamples the ``groups`` given to
        ``fit`` or, without them, blocks of the kNN graph; ``"bootstrap"`` resamples groups,
        or single points; ``"analytic"`` is the point-level interval below (independent
        points: too narrow on token clouds). See :mod:`tokendim_widgets.resampling`.
    n_bootstrap : int, default 200
        Replicates of the bootstrap.
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"`` scales rows to unit length before the search (chord distance). A graph
        passed as ``knn`` is taken as built in this metric.

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
        ``(low, high)`` at level ``confidence``. Analytic: exact chi-squared interval for
        ``"mle"``, jackknife normal interval for ``"linear"``.
    standard_error_ : float
    interval_method_ : str
        What made the interval: "group bootstrap", "block bootstrap", "point bootstrap
        (independent points)", "chi-square (independent points)" or "jackknife (independent
        points)".
    n_groups_ : int or None
        Groups or blocks resampled (None for an analytic interval).
    bootstrap_dimensions_ : numpy.ndarray of shape (n_bootstrap,) or None
        The replicate estimates (paired across fits with the same groups and seed).
    log_ratios_ : numpy.ndarray
        ``log(r2 / r1)`` of each distinct point.
    n_used_ : int
        Ratios in the fit (not discarded or censored).
    n_points_, n_duplicates_ : int
        Rows of the input, and rows merged as copies of another.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((2000, 3)) @ rng.normal(size=(3, 20))
    >>> round(TwoNN(device="cpu").fit(X).dimension_)
    3
    """

    def __init__(
        self,
        method: str = "linear",
        discard_fraction: float | None = None,
        n_groups: int = 20,
        confidence: float = 0.95,
        random_state: int | None = 0,
        device: str = "auto",
        interval: str = "auto",
        n_bootstrap: int = 200,
        metric: str = "euclidean",
    ) -> None:
        self.method = method
        self.discard_fraction = discard_fraction
        self.n_groups = n_groups
        self.confidence = confidence
        self.random_state = random_state
        self.device = device
        self.interval = interval
        self.n_bootstrap = n_bootstrap
        self.metric = metric

    @property
    def analytic_method(self) -> str:  # type: ignore[override]
        if self.method == "mle":
            return "chi-square (independent points)"
        return "jackknife (independent points)"

    @property
    def required_neighbors(self) -> int:
        return 2

    def _check_params(self) -> None:
        check_choice(self.method, "method", ("linear", "mle"))
        if self.discard_fraction is not None:
            check_float(self.discard_fraction, "discard_fraction", 0.0, 1.0, high_open=True)
        check_int(self.n_groups, "n_groups", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def _fit_graph(self, graph: KNNGraph) -> None:
        d = graph.distances
        # Distances are of distinct points, so r1 > 0 (see the duplicates policy in knn).
        log_mu = np.log(d[:, 1]) - np.log(d[:, 0])
        frac = self.discard_fraction
        if frac is None:
            frac = 0.1 if self.method == "linear" else 0.0
        frac = float(frac)
        n = log_mu.size
        conf = float(self.confidence)
        if self.method == "linear":
            dim, used = _linear(log_mu, frac)
            se = jackknife(
                lambda mask: _linear(log_mu[mask], frac)[0],
                n,
                int(self.n_groups),
                self.random_state,
            )
            interval = normal_interval(dim, se, conf)
        else:
            dim, used, total = _mle(log_mu, frac)
            se = dim / math.sqrt(used - 2) if used > 2 else math.inf
            alpha = 1.0 - conf
            interval = (
                chi2_quantile(alpha / 2, 2 * used) / (2 * total),
                chi2_quantile(1 - alpha / 2, 2 * used) / (2 * total),
            )
            if not math.isfinite(se):
                se = 0.0
        self.dimension_ = float(dim)
        self.dimension_interval_ = (float(interval[0]), float(interval[1]))
        self.standard_error_ = float(se)
        self.log_ratios_ = log_mu
        self.n_used_ = int(used)
        self._frac = frac

    def _replicates(self, weights: np.ndarray) -> np.ndarray:
        if self.method == "linear":
            return weighted_linear(self.log_ratios_, weights, self._frac)
        return weighted_mle(self.log_ratios_, weights, self._frac)


def _sorted_weights(
    log_mu: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(log_mu, kind="stable")
    x = log_mu[order]
    w = weights[:, order]
    cum = np.cumsum(w, axis=1)
    return x, w, cum, cum[:, -1]


def weighted_linear(log_mu: np.ndarray, weights: np.ndarray, frac: float) -> np.ndarray:
    """The linear TwoNN fit with point weights, one estimate per row of ``weights`` (B, n).

    A point of integer weight w stands for w copies: it takes the ranks ending at the
    cumulative weight c, and its y is taken at the middle rank ``c - (w - 1) / 2``. Weights of
    ones give the unweighted fit exactly.
    """
    x, w, cum, total = _sorted_weights(log_mu, weights)
    kept = np.minimum(np.floor(total * (1.0 - frac) + 1e-9), total - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.array_equal(w, np.rint(w)):
            # y = log(total) - log(total - mid), and 2 (total - mid) is a whole number: read
            # the logarithms off a table (log1p of every entry costs 3x the rest).
            twice = (2.0 * (total[:, None] - cum) + (w - 1.0)).astype(np.int64)
            table = np.log(0.5 * np.arange(int(twice.max()) + 1))
            y = np.log(total)[:, None] - table[np.maximum(twice, 0)]
        else:
            y = -np.log1p(-(cum - 0.5 * (w - 1.0)) / total[:, None])
    inside = (cum <= kept[:, None]) & (w > 0)
    wx = np.where(inside, w * x, 0.0)
    num = np.einsum("bi,bi->b", wx, np.where(inside, y, 0.0))
    den = wx @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def weighted_mle(log_mu: np.ndarray, weights: np.ndarray, frac: float) -> np.ndarray:
    """The censored maximum-likelihood TwoNN with point weights, one estimate per row."""
    x, w, cum, total = _sorted_weights(log_mu, weights)
    used = np.minimum(np.floor(total * (1.0 - frac) + 1e-9), total)
    inside = cum <= used[:, None]
    kept_sum = np.where(inside, w, 0.0) @ x
    # The largest kept ratio: the last position whose cumulative weight is inside.
    last = np.maximum(inside.sum(axis=1) - 1, 0)
    t = kept_sum + (total - used) * x[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((t > 0) & (used >= 2), (used - 1.0) / t, np.nan)


def _kept(n: int, frac: float) -> int:
    # floor(N (1 - f)); the tiny slack keeps e.g. 300 * 0.9 from rounding down to 269.
    return math.floor(n * (1.0 - frac) + 1e-9)


def _linear(log_mu: np.ndarray, frac: float) -> tuple[float, int]:
    n = log_mu.size
    # The largest ratio has F = N/N = 1, where -log(1 - F) is infinite: never fit it.
    used = min(_kept(n, frac), n - 1)
    if used < 2:
        raise TokendimError(
            f"TwoNN keeps {used} of {n} ratios after discarding {frac:.0%}: use more points."
        )
    x = np.sort(log_mu)[:used]
    y = -np.log1p(-np.arange(1, used + 1) / n)
    sxx = float(np.dot(x, x))
    if sxx <= 0.0:
        raise TokendimError(
            "TwoNN is undefined here: every point's first and second neighbours are equally "
            "far (a lattice?). Use an estimator with more neighbours (MLE, GRIDE)."
        )
    return float(np.dot(x, y)) / sxx, used


def _mle(log_mu: np.ndarray, frac: float) -> tuple[float, int, float]:
    n = log_mu.size
    used = min(_kept(n, frac), n)
    if used < 2:
        raise TokendimError(
            f"TwoNN keeps {used} of {n} ratios after censoring {frac:.0%}: use more points."
        )
    x = np.sort(log_mu)[:used]
    total = float(x.sum()) + (n - used) * float(x[-1])
    if total <= 0.0:
        raise TokendimError(
            "TwoNN is undefined here: every point's first and second neighbours are equally "
            "far (a lattice?). Use an estimator with more neighbours (MLE, GRIDE)."
        )
    return (used - 1) / total, used, total
