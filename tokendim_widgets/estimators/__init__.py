"""Intrinsic-dimension estimators, scikit-learn style, fitted from points or from one kNN graph.

Every estimator takes hyper-parameters in its constructor and
``fit(X=None, *, knn=None, groups=None)`` returns it with results in attributes ending in
``_``: ``dimension_``, ``dimension_interval_`` (level ``confidence``, 95% by default; by
default resampled over the ``groups``, e.g. prompts, or over blocks of the graph:
``interval_method_`` says which, ``bootstrap_dimensions_`` holds the replicates),
``n_points_``, ``n_duplicates_``; :class:`MLE` also ``local_dimensions_`` (one per input row).
Fitting from ``knn=`` (a :class:`~tokendim_widgets.knn.KNNGraph` or a ``(distances, indices)``
pair) skips the neighbour search; :attr:`required_neighbors` says how many neighbours each estimator
needs, so that one graph at the largest of them serves all. Duplicates are handled by one
policy for all (see :mod:`tokendim_widgets.knn`).

>>> import numpy as np
>>> from tokendim_widgets.knn import build_graph
>>> rng = np.random.default_rng(0)
>>> X = rng.random((1500, 3)) @ rng.normal(size=(3, 20))
>>> estimators = [make_estimator(name) for name in ("twonn", "mle", "gride")]
>>> graph = build_graph(X, max(e.required_neighbors for e in estimators), device="cpu")
>>> [round(e.fit(X, knn=graph).dimension_) for e in estimators]
[3, 3, 3]
"""

from ._base import IDEstimator
from .correlation import CorrelationDimension
from .gride import GRIDE
from .mle import MLE
from .pca import PCADimension
from .registry import ESTIMATORS, make_estimator
from .twonn import TwoNN

__all__ = [
    "ESTIMATORS",
    "GRIDE",
    "MLE",
    "CorrelationDimension",
    "IDEstimator",
    "PCADimension",
    "TwoNN",
    "make_estimator",
]
