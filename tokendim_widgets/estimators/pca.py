"""Linear baselines: how many principal directions the cloud uses.

The participation ratio of the covariance's eigenvalues (default) or the number of components
that explain a fraction of the variance; docs/estimators.md.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from ..errors import TokendimError
from ..resampling import as_group_labels, group_labels, jackknife_se, normal_interval
from ._base import (
    IDEstimator,
    check_choice,
    check_confidence,
    check_float,
    check_int,
    check_seed,
    n_rows,
    prepare_points,
    unique_points,
)

__all__ = ["PCADimension"]

#: Most groups the jackknife leaves out one at a time.
MAX_GROUPS = 1000

_P = TypeVar("_P", bound="PCADimension")


class PCADimension(IDEstimator):
    """Participation ratio or variance-threshold count of the principal components.

    Parameters
    ----------
    method : {"participation_ratio", "threshold"}, default "participation_ratio"
    threshold : float, default 0.9
        Fraction of variance to explain (``method="threshold"``), in (0, 1].
    n_groups : int, default 10
        Random groups of the jackknife when no ``groups`` are given to ``fit``.
    confidence : float, default 0.95
    random_state : int or None, default 0
    interval : {"auto", "bootstrap", "analytic"}, default "auto"
        ``"analytic"`` ignores the ``groups`` of ``fit``; the others leave them out in turn.
    n_bootstrap : int, default 200
        Unused (PCA's interval is a jackknife).
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"``: rows scaled to unit length first.

    Attributes
    ----------
    dimension_ : float
    dimension_interval_ : tuple of float
    standard_error_ : float
    interval_method_ : str
        "group jackknife" or "jackknife (independent points)".
    n_groups_ : int or None
        Groups left out (None without groups).
    bootstrap_dimensions_ : None
        Always None (no bootstrap).
    eigenvalues_ : numpy.ndarray
        Covariance eigenvalues, descending (at most min(n - 1, D) are non-zero).
    explained_variance_ratio_ : numpy.ndarray
        ``eigenvalues_ / eigenvalues_.sum()``.
    n_points_, n_duplicates_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 50))
    >>> PCADimension(method="threshold", threshold=0.999).fit(X).dimension_
    3.0
    """

    def __init__(
        self,
        method: str = "participation_ratio",
        threshold: float = 0.9,
        n_groups: int = 10,
        confidence: float = 0.95,
        random_state: int | None = 0,
        interval: str = "auto",
        n_bootstrap: int = 200,
        metric: str = "euclidean",
    ) -> None:
        self.interval = interval
        self.n_bootstrap = n_bootstrap
        self.metric = metric
        self.method = method
        self.threshold = threshold
        self.n_groups = n_groups
        self.confidence = confidence
        self.random_state = random_state

    @property
    def required_neighbors(self) -> int:
        return 0

    def _check_params(self) -> None:
        check_choice(self.method, "method", ("participation_ratio", "threshold"))
        check_float(self.threshold, "threshold", 0.0, 1.0, low_open=True)
        check_int(self.n_groups, "n_groups", 2)
        check_confidence(self.confidence)
        check_seed(self.random_state)

    def fit(self: _P, X: Any = None, *, knn: Any = None, groups: Any = None) -> _P:
        """Estimate the linear dimension of ``X``.

        Parameters
        ----------
        X : array-like of shape (n, D)
            The points (required).
        knn : KNNGraph, optional
            A graph of ``X``; only its deduplication is reused.
        groups : array-like of shape (n,), optional
            A label per row (e.g. the prompt of each token): the jackknife then leaves out
            one group at a time (unless ``interval="analytic"``).

        Returns
        -------
        self
        """
        self._check_params()
        self._check_interval_params()
        if X is None:
            raise TokendimError(
                "PCADimension needs the coordinates X: a kNN graph alone holds no directions."
            )
        codes = None
        if groups is not None:
            _, codes = as_group_labels(groups, n_rows(X))
        X = prepare_points(X, self.metric)
        xu, keep, _, n_points = unique_points(X, knn)
        n, dim = xu.shape
        if n < 2:
            raise TokendimError(f"PCADimension needs at least 2 distinct points, X has {n}.")
        xc = xu.astype(np.float64)
        xc -= xc.mean(axis=0)
        if codes is not None and self.interval != "analytic":
            # Groups of the representatives, renumbered 0 .. n_g - 1.
            labels = np.unique(codes[keep], return_inverse=True)[1].reshape(-1)
            if labels.max() >= MAX_GROUPS:
                raise TokendimError(
                    f"PCADimension leaves out at most {MAX_GROUPS} groups one at a time, got "
                    f"{int(labels.max()) + 1}: use coarser groups (e.g. one per prompt)."
                )
            self.interval_method_ = "group jackknife"
        else:
            labels = group_labels(n, int(self.n_groups), self.random_state)
            self.interval_method_ = self.analytic_method
        n_g = int(labels.max()) + 1
        self.n_groups_ = n_g if codes is not None and self.interval != "analytic" else None
        self.bootstrap_dimensions_ = None
        if dim <= n:
            full = xc.T @ xc
            sums = np.stack([xc[labels == g].sum(axis=0) for g in range(n_g)])
            parts = [xc[labels == g].T @ xc[labels == g] for g in range(n_g)]

            def left_out(g: int) -> np.ndarray:
                rest = n - int((labels == g).sum())
                s = -sums[g]  # the sum of all rows is 0 after centring
                return full - parts[g] - np.outer(s, s) / rest
        else:
            full = xc @ xc.T

            def left_out(g: int) -> np.ndarray:
                keep = labels != g
                gram = full[np.ix_(keep, keep)]
                # Re-centre the kept rows on their own mean, in Gram form.
                row = gram.mean(axis=1)
                return gram - row[:, None] - row[None, :] + row.mean()

        ritz_basis = None
        if self.method == "threshold" and dim <= n:
            values, vectors = np.linalg.eigh(full)
            eig = np.clip(values[::-1], 0.0, None)
            vectors = vectors[:, ::-1]
        else:
            eig = np.clip(np.linalg.eigvalsh(full)[::-1], 0.0, None)
        total = float(eig.sum())
        if total <= 0.0:
            raise TokendimError("PCADimension: the distinct points have no variance.")
        dim_est = self._statistic(full, eig)
        if self.method == "threshold" and dim <= n:
            # Leaving out a tenth of the points barely moves the leading directions, so each
            # replicate's leading eigenvalues are taken in the full data's leading subspace
            # (Rayleigh-Ritz: one small eigenproblem instead of a D x D one per group).
            ritz_basis = vectors[:, : min(dim, max(32, 2 * int(dim_est) + 16))]
        reps = np.full(n_g, np.nan)
        for g in range(n_g):
            mat = left_out(g)
            spec = None
            if self.method == "threshold":
                spec = self._spectrum(mat, ritz_basis)
            try:
                reps[g] = self._statistic(mat, spec)
            except TokendimError:
                reps[g] = np.nan
        se = jackknife_se(reps)
        self.eigenvalues_ = eig[: min(n, dim)] / (n - 1)
        self.explained_variance_ratio_ = self.eigenvalues_ / self.eigenvalues_.sum()
        self.dimension_ = float(dim_est)
        self.standard_error_ = se
        self.dimension_interval_ = normal_interval(float(dim_est), se, float(self.confidence))
        self.n_points_ = int(n_points)
        self.n_duplicates_ = int(n_points - n)
        return self

    @staticmethod
    def _spectrum(mat: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
        """Descending spectrum of ``mat``; with ``basis``, its leading part from that subspace
        followed by the rest of the trace as one remainder term."""
        if basis is None:
            return np.clip(np.linalg.eigvalsh(mat)[::-1], 0.0, None)
        small = basis.T @ mat @ basis
        ritz = np.clip(np.linalg.eigvalsh(small)[::-1], 0.0, None)
        rest = max(float(np.trace(mat)) - float(ritz.sum()), 0.0)
        # The remainder is placed last: counts below len(ritz) are exact up to the subspace
        # approximation, and a count needing the remainder reports len(ritz) + 1.
        return np.append(ritz, rest)

    def _statistic(self, mat: np.ndarray, eig: np.ndarray | None) -> float:
        """The dimension from a scatter (or Gram) matrix; ``eig`` its descending spectrum."""
        if self.method == "participation_ratio":
            trace = float(np.trace(mat))
            frob = float(np.sum(mat * mat))
            if frob <= 0.0:
                raise TokendimError("PCADimension: the distinct points have no variance.")
            return trace * trace / frob
        assert eig is not None
        ratio = np.cumsum(eig) / eig.sum()
        # The first count whose explained fraction reaches the threshold (with a hair of
        # slack so that 0.9 of exactly 0.9 counts as reached despite rounding).
        return float(int(np.searchsorted(ratio, float(self.threshold) - 1e-12)) + 1)
