"""GRIDE (Denti et al. 2022): the intrinsic dimension as a function of scale.

The maximum-likelihood dimension of the ratios of the n2-th to the n1-th neighbour distances,
n2 = 2 n1, for n1 = 1, 2, 4, ...; DADApy's conventions (docs/estimators.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import TokendimError
from ..knn import KNNGraph
from ..resampling import normal_interval
from ._base import IDEstimator, check_confidence, check_int, check_seed

__all__ = ["GRIDE"]


class GRIDE(IDEstimator):
    """Generalised-ratios intrinsic dimension, over scales n1 = 1, 2, 4, ... (n2 = 2 n1).

    Parameters
    ----------
    scale : int, default 1
        The n1 of ``dimension_`` (n2 = 2 * scale). Need not be a power of two.
    range_max : int, default 64
        Largest neighbour rank of the curve: scales n1 = 1, 2, 4, ... with 2 n1 <= range_max.
        Fitted from points, it is capped at the number of distinct points - 1.
    confidence : float, default 0.95
        Level of ``dimension_interval_``.
    device : str, default "auto"
    interval : {"auto", "bootstrap", "analytic"}, default "auto"
        ``"auto"`` resamples the ``groups`` given to ``fit`` or, without them, blocks of the
        kNN graph; ``"bootstrap"`` groups or single points; ``"analytic"`` a normal interval
        on the likelihood's standard error (independent points). Only ``dimension_`` (at
        ``scale``) is resampled; ``errors_`` of the curve stay the likelihood's.
    n_bootstrap : int, default 200
    random_state : int or None, default 0
        Seed of the bootstrap draws.
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"``: rows scaled to unit length before the search (a ``knn`` graph is taken
        as built in this metric).

    Attributes
    ----------
    scales_ : numpy.ndarray of int
        n1 of each point of the curve.
    dimensions_, errors_ : numpy.ndarray
        Dimension and its standard error at each scale.
    radii_ : numpy.ndarray
        Mean distance to the n2-th neighbour at each scale (the curve's length scale).
    dimension_, standard_error_ : float
        At ``scale``.
    dimension_interval_ : tuple of float
    interval_method_ : str
        "group bootstrap", "block bootstrap", "point bootstrap (independent points)" or
        "fisher information (independent points)".
    n_groups_ : int or None
    bootstrap_dimensions_ : numpy.ndarray of shape (n_bootstrap,) or None
        Replicate estimates, paired across fits with the same groups and seed.
    n_points_, n_duplicates_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((2000, 4)) @ rng.normal(size=(4, 30))
    >>> g = GRIDE(range_max=32, device="cpu").fit(X)
    >>> g.scales_.tolist(), [round(d) for d in g.dimensions_]
    ([1, 2, 4, 8, 16], [4, 4, 4, 4, 4])
    """

    def __init__(
        self,
        scale: int = 1,
        range_max: int = 64,
        confidence: float = 0.95,
        device: str = "auto",
        interval: str = "auto",
        n_bootstrap: int = 200,
        random_state: int | None = 0,
        metric: str = "euclidean",
    ) -> None:
        self.scale = scale
        self.range_max = range_max
        self.confidence = confidence
        self.device = device
        self.interval = interval
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.metric = metric

    analytic_method = "fisher information (independent points)"

    @property
    def required_neighbors(self) -> int:
        return max(2 * int(self.scale), _top_rank(int(self.range_max)))

    def _neighbors_needed(self, n_unique: int) -> int:
        available = min(int(self.range_max), n_unique - 1)
        return max(2 * int(self.scale), _top_rank(available))

    def _check_params(self) -> None:
        check_int(self.scale, "scale", 1)
        check_int(self.range_max, "range_max", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def _fit_graph(self, graph: KNNGraph) -> None:
        d = graph.distances
        top = _top_rank(min(int(self.range_max), d.shape[1]))
        scales = []
        n1 = 1
        while 2 * n1 <= top:
            scales.append(n1)
            n1 *= 2
        fits = [gride_fit(d[:, n - 1], d[:, 2 * n - 1], n, 2 * n) for n in scales]
        scale = int(self.scale)
        if scale in scales:
            dim, se = fits[scales.index(scale)]
        else:
            dim, se = gride_fit(d[:, scale - 1], d[:, 2 * scale - 1], scale, 2 * scale)
        self._ratios = (gride_log_ratios(d[:, scale - 1], d[:, 2 * scale - 1]), scale)
        self.scales_ = np.asarray(scales, dtype=np.int64)
        self.dimensions_ = np.asarray([f[0] for f in fits])
        self.errors_ = np.asarray([f[1] for f in fits])
        self.radii_ = np.asarray([float(d[:, 2 * n - 1].mean()) for n in scales])
        self.dimension_ = float(dim)
        self.standard_error_ = float(se)
        self.dimension_interval_ = normal_interval(dim, se, float(self.confidence))

    def _replicates(self, weights: np.ndarray) -> np.ndarray:
        x, n1 = self._ratios
        return weighted_gride(x, weights, n1, self.dimension_)


def _top_rank(limit: int) -> int:
    """Largest n2 = 2 n1 with n1 a power of two and n2 <= limit (at least 2)."""
    if limit < 2:
        return 2
    n1 = 1
    while 4 * n1 <= limit:
        n1 *= 2
    return 2 * n1


def gride_log_ratios(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """``log(r2 / r1)`` per point, NaN where :func:`gride_fit` drops it (ties, outliers)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(r2) - np.log(r1)
    ok = np.isfinite(x) & (x > 0.0)
    if ok.any():
        mu = np.exp(x[ok])
        q50, q95 = np.percentile(mu, [50, 95])
        ok[ok] = mu < q50 + 20.0 * (q95 - q50)
    return np.where(ok, x, np.nan)


def weighted_gride(x: np.ndarray, weights: np.ndarray, n1: int, start: float) -> np.ndarray:
    """GRIDE's maximum-likelihood dimension with point weights, one per row of ``weights``.

    ``x``: the log ratios of :func:`gride_log_ratios` (NaN: left out). The weighted score
    ``(W - 1) / d + a sum w x / (1 - mu^-d) - b sum w x`` is convex and decreasing in d, so
    Newton steps from ``start`` (the unweighted estimate, near every replicate's root) converge,
    monotonically after the first; all replicates are solved together. At n1 = 1 (a = 0) the
    root is closed-form.
    """
    ok = np.isfinite(x)
    x = x[ok]
    w = weights[:, ok]
    n2 = 2 * n1
    a = float(n2 - n1 - 1)
    b = float(n2 - 1)
    total = w.sum(axis=1)
    sx = w @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        if a == 0.0:
            return np.where(sx > 0, (total - 1.0) / (b * sx), np.nan)
        dim = np.full(total.shape, float(start))
        for _ in range(100):
            om = -np.expm1(-np.outer(dim, x))  # 1 - mu^-d
            score = (total - 1.0) / dim + a * np.einsum("bi,bi->b", w, x / om) - b * sx
            curv = np.einsum("bi,bi->b", w, x * x * (1.0 - om) / (om * om))
            nxt = dim - score / (-(total - 1.0) / dim**2 - a * curv)
            nxt = np.where(nxt > 0, nxt, 0.5 * dim)
            done = np.abs(nxt - dim) <= 1e-10 * np.abs(dim)
            dim = nxt
            if bool(np.all(done | ~np.isfinite(dim))):
                break
    return np.where(np.isfinite(dim) & (dim > 0), dim, np.nan)


def gride_fit(r1: np.ndarray, r2: np.ndarray, n1: int, n2: int) -> tuple[float, float]:
    """Maximum-likelihood dimension and its standard error from the (n1, n2) distances.

    Parameters
    ----------
    r1, r2 : numpy.ndarray
        Each point's distance to its n1-th and n2-th neighbour (``r2 >= r1 > 0``).
    n1, n2 : int
        The neighbour ranks, ``1 <= n1 < n2``.

    Returns
    -------
    (dimension, standard_error) : tuple of float
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(r2) - np.log(r1)
    x = x[np.isfinite(x) & (x > 0.0)]
    if x.size:
        mu = np.exp(x)
        q50, q95 = np.percentile(mu, [50, 95])
        x = x[mu < q50 + 20.0 * (q95 - q50)]
    n = x.size
    if n < 2:
        raise TokendimError(
            f"GRIDE at n1={n1}, n2={n2} has {n} usable ratios (needs 2): use more points."
        )
    a = float(n2 - n1 - 1)
    b = float(n2 - 1)
    sx = float(x.sum())

    def score(dim: float) -> float:
        return (n - 1) / dim + a * float(np.sum(x / -np.expm1(-dim * x))) - b * sx

    def curvature(dim: float) -> float:
        # sum of (x / (2 sinh(d x / 2)))^2 = sum of x^2 mu^d / (mu^d - 1)^2
        with np.errstate(over="ignore"):
            return float(np.sum((x / (2.0 * np.sinh(0.5 * dim * x))) ** 2))

    if a == 0.0:
        dim = (n - 1) / (b * sx)
    else:
        dim = _root(score, lambda v: -(n - 1) / v**2 - a * curvature(v), (n - 1) / (n1 * sx))
    info = n / dim**2 + a * curvature(dim)
    return float(dim), float(1.0 / math.sqrt(info))


def _root(f: Callable[[float], float], df: Callable[[float], float], guess: float) -> float:
    """Root of a decreasing function: Newton steps, bisection when they leave the bracket."""
    lo, hi = 0.0, max(guess, 1e-12)
    while f(hi) > 0.0:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            raise TokendimError("GRIDE found no finite maximum of the likelihood.")
    x = hi
    for _ in range(200):
        fx = f(x)
        if fx > 0.0:
            lo = x
        else:
            hi = x
        step = fx / df(x)
        nxt = x - step
        if not (lo < nxt < hi):
            nxt = 0.5 * (lo + hi) if lo > 0.0 else 0.5 * hi
        if abs(nxt - x) <= 1e-14 * max(abs(x), 1e-300):
            return nxt
        x = nxt
    return x
