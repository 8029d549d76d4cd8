"""TwoNN (Facco et al. 2017): the intrinsic dimension from the ratio of two neighbour distances.

For each distinct point, ``mu = r2 / r1`` (second over first neighbour distance). On a
locally uniform d-dimensional cloud, ``mu`` follows a Pareto law with shape d:
``P(mu <= x) = 1 - x^-d``, i.e. ``log mu`` is exponential with rate d.

``method="linear"`` (the paper's estimator, as in DADApy ``compute_id_2NN`` and
scikit-dimension ``TwoNN``): sort the N ratios, drop the largest ``discard_fraction`` (they
come from the sparse tails), and fit ``-log(1 - i/N) = d log mu_(i)`` (i = 1.. kept, the
empirical distribution with denominator N) by least squares through the origin. The error
bar is a delete-a-group jackknife.

``method="mle"``: maximum likelihood for the exponential rate of ``log mu``. Discarded
ratios are treated as censored (Type-II censoring), which keeps the estimator unbiased:
``d = (r - 1) / T`` with ``r`` ratios kept and ``T = sum of the kept log mu + (N - r) times the
largest kept``. Since ``2 d T`` is chi-squared with ``2r`` degrees of freedom, the interval is
exact under the model; its standard error is ``d / sqrt(r - 2)``. With ``discard_fraction=0``
this is ``(N - 1) / sum(log mu)``, DADApy's ``algorithm="ml"``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TokendimError
from ..knn import KNNGraph
from ._base import (
    IDEstimator,
    check_choice,
    check_confidence,
    check_float,
    check_int,
    check_seed,
    chi2_quantile,
    jackknife,
    normal_interval,
)

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
        Groups of the jackknife behind the linear method's interval.
    confidence : float, default 0.95
        Level of ``dimension_interval_``.
    random_state : int or None, default 0
        Seed of the jackknife groups.
    device : str, default "auto"
        Where the neighbour search runs when fitted from points.

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
        ``(low, high)`` at level ``confidence``: exact chi-squared interval for ``"mle"``,
        jackknife normal interval for ``"linear"``.
    standard_error_ : float
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
    ) -> None:
        self.method = method
        self.discard_fraction = discard_fraction
        self.n_groups = n_groups
        self.confidence = confidence
        self.random_state = random_state
        self.device = device

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
