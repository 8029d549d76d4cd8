"""Every mistake a user can make raises TokendimError with a message that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

from tokendim_widgets.errors import TokendimError
from tokendim_widgets.estimators import (
    GRIDE,
    MLE,
    CorrelationDimension,
    PCADimension,
    TwoNN,
)
from tokendim_widgets.knn import build_graph

GOOD = np.random.default_rng(0).normal(size=(80, 4))

ESTIMATORS = [
    TwoNN(device="cpu"),
    MLE(k=5, device="cpu"),
    GRIDE(range_max=8, device="cpu"),
    CorrelationDimension(k1=3, k2=6, device="cpu"),
    PCADimension(),
]


@pytest.mark.parametrize("est", ESTIMATORS, ids=repr)
@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.arange(30.0), "2-D"),
        (np.ones((4, 5, 2)), "2-D"),
        (np.zeros((0, 4)), "empty"),
        (np.where(np.arange(320).reshape(80, 4) == 7, np.nan, GOOD), "non-finite"),
        (np.where(np.arange(320).reshape(80, 4) == 9, -np.inf, GOOD), "non-finite"),
        (np.array([["x"] * 4] * 10), "numbers"),
    ],
    ids=["1-D", "3-D", "empty", "nan", "inf", "strings"],
)
def test_bad_points(est, X, match):
    with pytest.raises(TokendimError, match=match):
        est.fit(X)


@pytest.mark.parametrize("est", ESTIMATORS, ids=repr)
def test_nothing_to_fit(est):
    with pytest.raises(TokendimError, match="needs the"):
        est.fit()


@pytest.mark.parametrize(
    ("est", "n", "match"),
    [
        (TwoNN(), 2, "at least 3 distinct points"),
        (MLE(k=20), 20, "at least 21 distinct points"),
        (GRIDE(scale=8), 15, "at least 17 distinct points"),
        (CorrelationDimension(), 20, "at least 21 distinct points"),
        (PCADimension(), 1, "at least 2 distinct points"),
    ],
    ids=["twonn", "mle", "gride", "correlation", "pca"],
)
def test_fewer_points_than_neighbours(est, n, match):
    with pytest.raises(TokendimError, match=match):
        est.fit(GOOD[:n])


def test_too_few_distinct_points_says_duplicates_were_merged():
    X = np.repeat(GOOD[:5], 10, axis=0)
    with pytest.raises(TokendimError, match="45 duplicate rows were merged"):
        MLE(k=10).fit(X)


@pytest.mark.parametrize(
    ("est", "match"),
    [
        (TwoNN(method="ols"), "method"),
        (TwoNN(discard_fraction=1.0), "discard_fraction"),
        (TwoNN(discard_fraction=-0.1), "discard_fraction"),
        (TwoNN(confidence=1.0), "confidence"),
        (TwoNN(confidence=0), "confidence"),
        (TwoNN(n_groups=1), "n_groups"),
        (TwoNN(random_state=-1), "random_state"),
        (MLE(k=0), "k must be"),
        (MLE(k=1), "k must be"),
        (MLE(k=2, unbiased=True), "k must be"),
        (MLE(k=5.0), "k must be"),
        (MLE(aggregate="median"), "aggregate"),
        (MLE(unbiased="yes"), "unbiased"),
        (GRIDE(scale=0), "scale"),
        (GRIDE(range_max=1), "range_max"),
        (CorrelationDimension(k1=5, k2=5), "k1 must be smaller"),
        (CorrelationDimension(k1=0), "k1"),
        (CorrelationDimension(r_min=0.5, r_max=0.1), "r_min must be smaller"),
        (CorrelationDimension(r_min=-1.0), "r_min"),
        (CorrelationDimension(r_max=float("inf")), "r_max"),
        (CorrelationDimension(method="secant"), "method"),
        (CorrelationDimension(n_radii=1), "n_radii"),
        (CorrelationDimension(curve_points=0), "curve_points"),
        (CorrelationDimension(curve_points=2.5), "curve_points"),
        (CorrelationDimension(max_points=2), "max_points"),
        (PCADimension(method="eigen"), "method"),
        (PCADimension(threshold=0.0), "threshold"),
        (PCADimension(threshold=1.5), "threshold"),
    ],
    ids=repr,
)
def test_bad_parameters(est, match):
    with pytest.raises(TokendimError, match=match):
        est.fit(GOOD)


def test_bad_graphs():
    graph = build_graph(GOOD, 4, device="cpu")
    with pytest.raises(
        TokendimError, match="needs 5 neighbours per point but the kNN graph holds 4"
    ):
        MLE(k=5).fit(knn=graph)
    with pytest.raises(TokendimError, match="needs 8 neighbours"):
        GRIDE(range_max=8).fit(knn=graph)
    with pytest.raises(TokendimError, match="X has 79 rows"):
        MLE(k=4).fit(GOOD[:79], knn=graph)
    with pytest.raises(TokendimError, match="X has 79 rows"):
        CorrelationDimension(k1=2, k2=4).fit(GOOD[:79], knn=graph)
    with pytest.raises(TokendimError, match="pair of"):
        TwoNN().fit(knn=(graph.distances,))
    with pytest.raises(TokendimError, match="non-negative"):
        TwoNN().fit(knn=(-graph.distances, graph.indices))
    with pytest.raises(TokendimError, match="rows of the graph"):
        TwoNN().fit(knn=(graph.distances, graph.indices + 100))


def test_all_copies_in_a_raw_graph():
    # Each row's listed neighbours are all copies of it: no distinct neighbour to use.
    d = np.zeros((6, 2))
    i = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    with pytest.raises(TokendimError, match="build_graph"):
        TwoNN().fit(knn=(d, i))


def test_correlation_window_without_pairs():
    X = np.random.default_rng(1).normal(size=(300, 3))
    with pytest.raises(TokendimError, match="No pair of points is closer than r_min"):
        CorrelationDimension(r_min=1e-6, r_max=1e-5).fit(X)
