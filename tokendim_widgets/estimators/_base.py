"""What every estimator shares: parameters, the kNN graph it is fitted on, error bars.

scikit-learn conventions (parameters checked by ``fit``, results end in ``_``); a fit starts
from points or from a precomputed graph, so that one graph serves every estimator. How the
intervals are chosen (``interval``): docs/estimators.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import TokendimError
from ..knn import KNNGraph, TooFewPoints, as_points, deduplicate, graph_from_arrays, search
from ..resampling import (
    AUTO_BLOCKS,
    as_group_labels,
    bootstrap_interval,
    distinct_weights,
    graph_blocks,
    group_multiplicities,
    group_weights,
)
from ..validation import check_choice, check_float, check_int

__all__ = ["IDEstimator"]

#: Values of the ``interval`` parameter.
INTERVALS = ("auto", "bootstrap", "analytic")
#: Values of the ``metric`` parameter.
METRICS = ("euclidean", "cosine")

_E = TypeVar("_E", bound="IDEstimator")


class IDEstimator:
    """Base class of the intrinsic-dimension estimators (not used directly).

    Subclasses define ``__init__`` with keyword hyper-parameters (stored under the same
    names), :attr:`required_neighbors`, ``_fit_graph`` and ``_replicates``.
    """

    # Parameters every estimator has, and results every fit sets.
    interval: str
    n_bootstrap: int
    metric: str
    confidence: float
    random_state: int | None
    dimension_: float
    dimension_interval_: tuple[float, float]
    standard_error_: float

    # -- scikit-learn style parameters -----------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: _E, **params: Any) -> _E:
        """Set constructor parameters by name; returns ``self``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise TokendimError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters: "
                    f"{', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same(value, defaults.get(name, inspect.Parameter.empty))
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- fitting ---------------------------------------------------------------------------

    @property
    def required_neighbors(self) -> int:
        """Neighbours per point this estimator needs from a kNN graph (0: none)."""
        raise NotImplementedError

    def _neighbors_needed(self, n_unique: int) -> int:
        """Neighbours needed on ``n_unique`` distinct points (multiscale ones cap their range)."""
        return self.required_neighbors

    def _check_params(self) -> None:
        """Validate the hyper-parameters (raise :class:`TokendimError`)."""

    def _fit_graph(self, graph: KNNGraph) -> None:
        raise NotImplementedError

    def fit(self: _E, X: Any = None, *, knn: Any = None, groups: Any = None) -> _E:
        """Estimate the intrinsic dimension.

        Parameters
        ----------
        X : array-like of shape (n, D), optional
            The points. Needed unless ``knn`` is given.
        knn : KNNGraph or (distances, indices), optional
            A precomputed neighbour graph of ``X`` (ascending distances, self excluded), built
            in the estimator's ``metric``. It must hold at least :attr:`required_neighbors`
            neighbours per point. When given, no neighbour search runs.
        groups : array-like of shape (n,), optional
            A label per row (e.g. the prompt of each token). The interval then resamples whole
            groups (see :mod:`tokendim_widgets.resampling`).

        Returns
        -------
        self
        """
        self._check_params()
        self._check_interval_params()
        X = prepare_points(X, getattr(self, "metric", "euclidean"))
        graph = self._graph(X, knn)
        self._fit_graph(graph)
        self.n_points_ = graph.n_points
        self.n_duplicates_ = graph.n_duplicates
        self._resample(graph.indices, graph.inverse, groups)
        return self

    # -- intervals -------------------------------------------------------------------------

    #: What the point-level interval is, as ``interval_method_`` names it.
    analytic_method = "jackknife (independent points)"

    def _check_interval_params(self) -> None:
        check_choice(self.interval, "interval", INTERVALS)
        check_int(self.n_bootstrap, "n_bootstrap", 2)
        check_choice(self.metric, "metric", METRICS)

    def _replicates(self, weights: np.ndarray) -> np.ndarray:
        """The estimate under each row of ``weights`` (B, distinct points), shape (B,)."""
        raise NotImplementedError

    def _resample(self, indices: np.ndarray | None, inverse: np.ndarray, groups: Any) -> None:
        """Replace the point-level interval by a resampled one (see ``interval``).

        ``indices``: the neighbour lists of the distinct points (for the blocks);
        ``inverse``: the distinct point of each input row.
        """
        weights, method, n_groups = resampling_weights(
            self.interval,
            indices,
            inverse,
            groups,
            int(self.n_bootstrap),
            self.random_state,
        )
        self.n_groups_ = n_groups
        if weights is None:
            self.interval_method_ = self.analytic_method
            self.bootstrap_dimensions_ = None
            return
        reps = np.asarray(self._replicates(weights), dtype=np.float64)
        interval, se = bootstrap_interval(self.dimension_, reps, float(self.confidence))
        self.interval_method_ = method
        self.bootstrap_dimensions_ = reps
        self.dimension_interval_ = interval
        self.standard_error_ = se

    def _graph(self, X: Any, knn: Any) -> KNNGraph:
        device = getattr(self, "device", "auto")
        if knn is None:
            if X is None:
                raise TokendimError(
                    f"{type(self).__name__}.fit needs the points X or a kNN graph (knn=...)."
                )
            return graph_for_points(X, self._neighbors_needed, device=device, who=self)
        graph = as_graph(knn)
        if X is not None:
            n = n_rows(X)
            if n != graph.n_points:
                raise TokendimError(
                    f"X has {n} rows but the kNN graph was built on {graph.n_points} points: "
                    "pass the graph of these points."
                )
        need = self._neighbors_needed(graph.n_unique)
        if graph.k < need:
            raise TokendimError(
                f"{type(self).__name__} needs {need} neighbours per point but the kNN graph "
                f"holds {graph.k}. Build it with build_graph(X, {need}) (or lower the "
                "estimator's neighbour count)."
            )
        return graph


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    if len(shape) != 2:
        raise TokendimError(f"X must be 2-D (points x features), got shape {tuple(shape)}.")
    return int(shape[0])


# ---------------------------------------------------------------------------------------------
# resampling


def resampling_weights(
    interval: str,
    indices: np.ndarray | None,
    inverse: np.ndarray,
    groups: Any,
    n_bootstrap: int,
    random_state: int | None,
) -> tuple[np.ndarray | None, str, int | None]:
    """Replicate weights of the distinct points, what they resample, and how many units.

    ``interval="analytic"``: no weights (the groups, if any, are only checked). With
    ``groups``: whole groups (paired across fits, :func:`~tokendim_widgets.resampling.
    group_weights`). Without: ``"auto"`` resamples :data:`AUTO_BLOCKS` blocks of the graph
    (``indices``), ``"bootstrap"`` single points.
    """
    inverse = np.asarray(inverse, dtype=np.int64)
    n_unique = int(inverse.max()) + 1 if inverse.size else 0
    if groups is not None:
        uniques, codes = as_group_labels(groups, inverse.size)
        if interval == "analytic":
            return None, "", None
        rows = group_weights(codes, n_bootstrap, random_state)
        return distinct_weights(rows, inverse, n_unique), "group bootstrap", int(uniques.size)
    if interval == "analytic":
        return None, "", None
    if interval == "auto" and indices is not None:
        labels = graph_blocks(indices, AUTO_BLOCKS, random_state)
        n_blocks = int(labels.max()) + 1
        mult = group_multiplicities(n_blocks, n_bootstrap, random_state)
        return mult[:, labels], "block bootstrap", n_blocks
    mult = group_multiplicities(n_unique, n_bootstrap, random_state)
    return mult, "point bootstrap (independent points)", n_unique


def prepare_points(X: Any, metric: str) -> Any:
    """``X`` as given (``"euclidean"``) or with rows scaled to unit length (``"cosine"``).

    Euclidean distance between unit rows (the chord) is ``sqrt(2 (1 - cos))``, monotone in the
    cosine distance: the same neighbours, and the geometry of the directions.
    """
    if X is None or metric == "euclidean":
        return X
    t = as_points(X)
    wide = t.to(torch.float64)
    norms = wide.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise TokendimError(
            "metric='cosine' needs rows of non-zero length: drop the all-zero rows of X."
        )
    return (wide / norms).to(t.dtype).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# graphs


def as_graph(knn: Any) -> KNNGraph:
    """A deduplicated :class:`KNNGraph` from a graph or a raw ``(distances, indices)`` pair."""
    if isinstance(knn, KNNGraph):
        if knn.threshold > 0:
            return knn  # built with duplicates removed: no distance at or below threshold
        # Built without deduplication: apply the raw-graph rule, then compose the maps.
        sub = graph_from_arrays(knn.distances, knn.indices)
        return KNNGraph(
            sub.distances,
            sub.indices,
            knn.keep[sub.keep],
            sub.inverse[knn.inverse],
            sub.threshold,
        )
    if isinstance(knn, (tuple, list)) and len(knn) == 2:
        return graph_from_arrays(knn[0], knn[1])
    raise TokendimError(
        "knn must be a KNNGraph (from build_graph) or a (distances, indices) pair of arrays, "
        f"got {type(knn).__name__}."
    )


def graph_for_points(
    X: Any, need: Callable[[int], int], *, device: Any = "auto", who: Any = None
) -> KNNGraph:
    """Deduplicate ``X`` and search the neighbours ``need(n_unique)`` says are needed.

    :func:`~tokendim_widgets.knn.search` (copies removed, near copies found in the graph),
    with the neighbour count chosen from the number of distinct points and the error for too
    few of them worded for the estimator ``who``.
    """
    try:
        return search(X, need, device=device)
    except TooFewPoints as exc:
        name = type(who).__name__ if who is not None else "This estimator"
        extra = f" ({exc.n_merged} duplicate rows were merged)" if exc.n_merged else ""
        raise TokendimError(
            f"{name} needs {exc.k} neighbours per point, so at least {exc.k + 1} distinct "
            f"points, but X has {exc.n_unique}{extra}. Use more points or fewer neighbours."
        ) from None


def unique_points(X: Any, knn: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(distinct rows, keep, inverse, number of input rows) for the coordinate estimators.

    When ``knn`` is a graph of ``X``, its ``keep``/``inverse`` are reused (no second
    deduplication); otherwise ``X`` is deduplicated here.
    """
    t = as_points(X)
    x = t.numpy() if t.device.type == "cpu" else t.cpu().numpy()
    if knn is not None:
        graph = as_graph(knn)
        if graph.n_points != x.shape[0]:
            raise TokendimError(
                f"X has {x.shape[0]} rows but the kNN graph was built on {graph.n_points} "
                "points: pass the graph of these points."
            )
        keep, inverse = graph.keep, graph.inverse
    else:
        keep, inverse = deduplicate(t)
    # No copies: the rows themselves (keep is then 0 .. n-1), not a gathered copy of them.
    xu = x if keep.size == x.shape[0] else x[keep]
    return xu, keep, inverse, int(x.shape[0])


# ---------------------------------------------------------------------------------------------
# parameter checks


def check_confidence(value: Any) -> float:
    return check_float(value, "confidence", 0.0, 1.0, low_open=True, high_open=True)


def check_seed(value: Any) -> int | None:
    if value is None:
        return None
    return check_int(value, "random_state", 0)
