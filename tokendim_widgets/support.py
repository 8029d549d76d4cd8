"""Minimum support of an estimate: enough distinct points for the estimator, k and dimension.

An estimator always returns a number, even from a handful of distinct points (10,000 copies of
one prompt leave a few distinct states) or from far fewer points than dimensions. This module
says when an estimate rests on too little: :func:`support_warning` returns the reason as text,
:func:`warn_support` issues it as a :class:`~tokendim_widgets.errors.SupportWarning`. The rule
and where it comes from are in ``docs/failure-modes.md``.

The rule, for ``n`` distinct points, an estimate ``d`` and the largest neighbour rank ``r`` the
estimator reads (TwoNN 2, MLE ``k``, GRIDE ``2 * scale``, correlation ``k2``, PCA 0):

* ``n >= max(MIN_DISTINCT, 2 * (r + 1))``: every point needs neighbours of its own, not the
  whole cloud;
* ``d <= n - 1``: ``n`` points span at most ``n - 1`` dimensions (any estimator);
* ``n >= POINTS_PER_DIMENSION * d`` for the neighbour-based estimators (all but PCA): their
  estimates sink or scatter long before ``d`` reaches ``n``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import SupportWarning, TokendimError

__all__ = [
    "MIN_DISTINCT",
    "POINTS_PER_DIMENSION",
    "count_distinct",
    "minimum_support",
    "neighbor_rank",
    "support_warning",
    "warn_support",
]

#: Fewest distinct points any estimate is trusted on.
MIN_DISTINCT = 20
#: Distinct points needed per unit of estimated dimension (neighbour-based estimators).
POINTS_PER_DIMENSION = 10
_LINEAR = {"pca"}


def _name_and_params(estimator: Any) -> tuple[str, dict[str, Any]]:
    from .estimators import ESTIMATORS, make_estimator

    if isinstance(estimator, str):
        estimator = make_estimator(estimator)
    for name, cls in ESTIMATORS.items():
        if type(estimator) is cls:
            return name, estimator.get_params()
    raise TokendimError(
        f"No support rule for {type(estimator).__name__}: give an estimator name "
        f"({', '.join(ESTIMATORS)}) or one of their instances."
    )


def neighbor_rank(estimator: Any) -> int:
    """Largest neighbour rank the estimator's main estimate reads (0 for PCA).

    Parameters
    ----------
    estimator : str or IDEstimator
        A registry name (default parameters) or an estimator instance.

    Examples
    --------
    >>> neighbor_rank("twonn"), neighbor_rank("pca")
    (2, 0)
    """
    name, params = _name_and_params(estimator)
    if name == "twonn":
        return 2
    if name == "mle":
        return int(params["k"])
    if name == "gride":
        return 2 * int(params["scale"])
    if name == "correlation":
        return int(params["k2"])
    return 0


def minimum_support(estimator: Any, dimension: float | None = None) -> int:
    """Fewest distinct points an estimate of ``dimension`` by ``estimator`` can rest on.

    Parameters
    ----------
    estimator : str or IDEstimator
        A registry name (default parameters) or an estimator instance.
    dimension : float, optional
        The estimate; without it only the estimator's own minimum is returned.

    Returns
    -------
    int

    Examples
    --------
    >>> minimum_support("twonn"), minimum_support("twonn", 12.3), minimum_support("pca", 40)
    (20, 123, 41)
    """
    name, _ = _name_and_params(estimator)
    need = max(MIN_DISTINCT, 2 * (neighbor_rank(estimator) + 1))
    if dimension is not None and np.isfinite(dimension) and dimension > 0:
        per = 1 if name in _LINEAR else POINTS_PER_DIMENSION
        need = max(need, int(np.ceil(per * dimension)) + (1 if name in _LINEAR else 0))
    return need


def support_warning(
    estimator: Any,
    n_distinct: int,
    dimension: float | None = None,
    *,
    n_points: int | None = None,
    layer: int | None = None,
) -> str | None:
    """Why an estimate rests on too few distinct points, or None when it is supported.

    Parameters
    ----------
    estimator : str or IDEstimator
        A registry name (default parameters) or the fitted estimator.
    n_distinct : int
        Distinct points of the cloud (see :func:`count_distinct`).
    dimension : float, optional
        The estimate.
    n_points : int, optional
        Points before duplicates were merged, for the message.
    layer : int, optional
        The layer, for the message.

    Returns
    -------
    str or None

    Examples
    --------
    >>> support_warning("twonn", 7, 2.3, n_points=300, layer=4)[:48]
    'Layer 4: the twonn estimate 2.3 rests on 7 disti'
    >>> support_warning("twonn", 2000, 12.0) is None
    True
    """
    name, _ = _name_and_params(estimator)
    n_distinct = int(n_distinct)
    need = minimum_support(estimator, dimension)
    impossible = dimension is not None and np.isfinite(dimension) and dimension > n_distinct - 1
    if n_distinct >= need and not impossible:
        return None
    where = f"Layer {layer}: the" if layer is not None else "The"
    value = f" {dimension:.3g}" if dimension is not None and np.isfinite(dimension) else ""
    of = f" (of {n_points})" if n_points is not None and n_points != n_distinct else ""
    reasons = []
    if impossible:
        reasons.append(
            f"more than the {max(n_distinct - 1, 0)} dimensions {n_distinct} points can span"
        )
    if n_distinct < need:
        reasons.append(f"{name} needs at least {need} here")
    why = "; ".join(reasons)
    return (
        f"{where} {name} estimate{value} rests on {n_distinct} distinct points{of}: {why}. "
        "Use more (or more varied) prompts or a larger max_tokens, or a smaller k or scale; "
        "do not read this layer's value."
    )


def warn_support(
    estimator: Any,
    n_distinct: int,
    dimension: float | None = None,
    *,
    n_points: int | None = None,
    layer: int | None = None,
    stacklevel: int = 2,
) -> str | None:
    """:func:`support_warning`, issued as a :class:`SupportWarning` when there is one.

    Returns
    -------
    str or None
        The message issued, if any.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = warn_support("twonn", 50, 1553.0)
    >>> caught[0].category.__name__
    'SupportWarning'
    """
    message = support_warning(estimator, n_distinct, dimension, n_points=n_points, layer=layer)
    if message is not None:
        warnings.warn(message, SupportWarning, stacklevel=stacklevel + 1)
    return message


def count_distinct(X: Any) -> int:
    """Number of distinct rows of a 2-D array (exact byte equality).

    Examples
    --------
    >>> count_distinct(np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]]))
    2
    """
    X = np.asarray(X)
    if X.dtype.kind == "f":
        X = X + X.dtype.type(0.0)  # -0.0 and 0.0 are the same point
    X = np.ascontiguousarray(X)
    if X.ndim != 2:
        raise TokendimError(f"Expected a 2-D array of points, got shape {X.shape}.")
    if X.shape[0] == 0:
        return 0
    rows = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
    return int(np.unique(rows).size)
