"""Levina-Bickel maximum-likelihood dimension from the k nearest neighbours of each point.

Local values per point (the heatmap) and a global value (harmonic aggregate by default);
conventions: docs/estimators.md.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import TokendimError
from ..knn import KNNGraph
from ..resampling import jackknife, normal_interval
from ._base import IDEstimator, check_choice, check_confidence, check_int, check_seed

__all__ = ["MLE"]


class MLE(IDEstimator):
    """Levina-Bickel local dimensions and their MacKay-Ghahramani global value.

    Parameters
    ----------
    k : int, default 20
        Neighbours per local estimate (at least 2; 3 with ``unbiased``).
    aggregate : {"harmonic", "mean"}, default "harmonic"
        Global value: inverse of the mean of inverses (MacKay-Ghahramani; R and
        scikit-dimension's default) or arithmetic mean of the local values (Levina-Bickel).
    unbiased : bool, default False
        Use ``k - 2`` instead of ``k - 1`` in the local estimate.
    n_groups : int, default 20
        Groups of the jackknife behind the analytic interval.
    confidence : float, default 0.95
    random_state : int or None, default 0
        Seed of the jackknife groups and of the bootstrap draws.
    device : str, default "auto"
    interval : {"auto", "bootstrap", "analytic"}, default "auto"
        ``"auto"`` resamples the ``groups`` given to ``fit`` or, without them, blocks of the
        kNN graph; ``"bootstrap"`` groups or single points; ``"analytic"`` the point-level
        jackknife (see :mod:`tokendim_widgets.resampling`).
    n_bootstrap : int, default 200
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"``: rows scaled to unit length before the search (a ``knn`` graph is taken
        as built in this metric).

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
        At level ``confidence``, made as ``interval_method_`` says.
    standard_error_ : float
    interval_method_ : str
        "group bootstrap", "block bootstrap", "point bootstrap (independent points)" or
        "jackknife (independent points)".
    n_groups_ : int or None
        Groups or blocks resampled.
    bootstrap_dimensions_ : numpy.ndarray of shape (n_bootstrap,) or None
        Replicate estimates, paired across fits with the same groups and seed.
    local_dimensions_ : numpy.ndarray of float64, shape (n_points,)
        One local estimate per row of the input; copies share their representative's value.
    n_undefined_ : int
        Distinct points with no finite local estimate (NaN in ``local_dimensions_``).
    n_points_, n_duplicates_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((2000, 2)) @ rng.normal(size=(2, 10))
    >>> est = MLE(k=10, device="cpu").fit(X)
    >>> round(est.dimension_), est.local_dimensions_.shape
    (2, (2000,))
    """

    def __init__(
        self,
        k: int = 20,
        aggregate: str = "harmonic",
        unbiased: bool = False,
        n_groups: int = 20,
        confidence: float = 0.95,
        random_state: int | None = 0,
        device: str = "auto",
        interval: str = "auto",
        n_bootstrap: int = 200,
        metric: str = "euclidean",
    ) -> None:
        self.k = k
        self.aggregate = aggregate
        self.unbiased = unbiased
        self.n_groups = n_groups
        self.confidence = confidence
        self.random_state = random_state
        self.device = device
        self.interval = interval
        self.n_bootstrap = n_bootstrap
        self.metric = metric

    @property
    def required_neighbors(self) -> int:
        return int(self.k)

    def _check_params(self) -> None:
        check_int(self.k, "k", 3 if self.unbiased else 2)
        check_choice(self.aggregate, "aggregate", ("harmonic", "mean"))
        if not isinstance(self.unbiased, (bool, np.bool_)):
            raise TokendimError(f"unbiased must be True or False, got {self.unbiased!r}.")
        check_int(self.n_groups, "n_groups", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def _fit_graph(self, graph: KNNGraph) -> None:
        k = int(self.k)
        log_t = np.log(graph.distances[:, :k])
        # sum_{j<k} log(T_k / T_j), from the logs so that no ratio is formed twice.
        sums = (k - 1) * log_t[:, k - 1] - log_t[:, : k - 1].sum(axis=1)
        sums = np.maximum(sums, 0.0)  # rounding can leave -1e-16 for equal distances
        numer = float(k - 2 if self.unbiased else k - 1)
        defined = sums > 0.0
        local = np.full(sums.shape, np.nan)
        local[defined] = numer / sums[defined]
        n_undefined = int((~defined).sum())
        if n_undefined:
            warnings.warn(
                f"MLE: {n_undefined} points have all {k} neighbours at exactly the same "
                "distance; their local dimension is undefined (NaN).",
                stacklevel=3,
            )
        dim = _aggregate(local, sums, numer, self.aggregate)
        se = jackknife(
            lambda mask: _aggregate(local[mask], sums[mask], numer, self.aggregate),
            local.size,
            int(self.n_groups),
            self.random_state,
        )
        self.dimension_ = dim
        self.standard_error_ = se
        self.dimension_interval_ = normal_interval(dim, se, float(self.confidence))
        self.local_dimensions_ = graph.expand(local)
        self.n_undefined_ = n_undefined
        self._stats = (local, sums, numer)

    def _replicates(self, weights: np.ndarray) -> np.ndarray:
        local, sums, numer = self._stats
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.aggregate == "harmonic":
                mean_sum = (weights @ sums) / weights.sum(axis=1)
                return np.where(mean_sum > 0, numer / mean_sum, np.nan)
            finite = np.isfinite(local)
            w = weights[:, finite]
            return (w @ local[finite]) / w.sum(axis=1)


def _aggregate(local: np.ndarray, sums: np.ndarray, numer: float, how: str) -> float:
    if how == "harmonic":
        mean_sum = float(sums.mean()) if sums.size else 0.0
        if mean_sum <= 0.0:
            raise TokendimError(
                "MLE is undefined: every point's neighbours are all equally far (a lattice?). "
                "Use more neighbours (a larger k)."
            )
        return numer / mean_sum
    finite = local[np.isfinite(local)]
    if finite.size == 0:
        raise TokendimError(
            "MLE is undefined: every point's neighbours are all equally far (a lattice?). "
            "Use more neighbours (a larger k)."
        )
    return float(finite.mean())
