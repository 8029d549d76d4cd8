"""The minimum-support rule: estimates on too few distinct points are flagged, others not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tokendim_widgets import TokendimError, make_estimator
from tokendim_widgets.errors import SupportWarning
from tokendim_widgets.support import (
    MIN_DISTINCT,
    POINTS_PER_DIMENSION,
    count_distinct,
    minimum_support,
    neighbor_rank,
    support_warning,
    warn_support,
)


def test_a_few_distinct_points_repeated_many_times_are_flagged():
    # 10,000 copies of one prompt leave a handful of distinct states (the reported case).
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(7, 64))
    X = distinct[rng.integers(0, 7, size=300)]
    estimator = make_estimator("twonn").fit(X)
    n = count_distinct(X)
    assert n == 7
    message = support_warning(estimator, n, estimator.dimension_, n_points=300, layer=3)
    assert message is not None
    assert message.startswith("Layer 3: the twonn estimate")
    assert "7 distinct points (of 300)" in message and "twonn needs at least 235" in message


def test_an_estimate_above_what_n_points_can_span_is_flagged():
    # Reported at D = 100,000 (TwoNN 1553); D = 5,000 shows the same in a fraction of the time.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5_000)).astype(np.float32)
    estimator = make_estimator("twonn").fit(X)
    assert estimator.dimension_ > 49  # the estimator alone says more than N - 1
    message = support_warning(estimator, count_distinct(X), estimator.dimension_)
    assert message is not None and "49 dimensions 50 points can span" in message


def test_a_well_supported_estimate_passes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 5)) @ rng.normal(size=(5, 40))
    for name in ("twonn", "mle", "gride", "pca"):
        estimator = make_estimator(name).fit(X)
        assert support_warning(estimator, count_distinct(X), estimator.dimension_) is None


@pytest.mark.parametrize(
    ("estimator", "rank"),
    [("twonn", 2), (make_estimator("mle", k=30), 30), (make_estimator("gride", scale=8), 16)],
)
def test_the_minimum_grows_with_k_and_scale(estimator, rank):
    assert neighbor_rank(estimator) == rank
    assert minimum_support(estimator) == max(MIN_DISTINCT, 2 * (rank + 1))
    need = minimum_support(estimator)
    assert support_warning(estimator, need, 1.0) is None
    assert support_warning(estimator, need - 1, 1.0) is not None


def test_the_minimum_grows_with_the_dimension():
    assert minimum_support("twonn", 30.0) == POINTS_PER_DIMENSION * 30
    assert support_warning("twonn", 299, 30.0) is not None
    assert support_warning("twonn", 300, 30.0) is None
    # PCA is linear: n points support up to n - 1 dimensions.
    assert support_warning("pca", 41, 40.0) is None
    assert support_warning("pca", 40, 40.0) is not None


def test_warn_support_issues_our_warning_class_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_support("mle", 10, 3.0) is not None
        assert warn_support("mle", 5000, 3.0) is None
    assert [w.category for w in caught] == [SupportWarning]
    assert issubclass(SupportWarning, UserWarning)


def test_count_distinct_merges_exact_duplicates_only():
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0 + 1e-7], [0.0, 1.0]], dtype=np.float64)
    assert count_distinct(X) == 2
    assert count_distinct(np.empty((0, 3))) == 0
    with pytest.raises(TokendimError, match="2-D"):
        count_distinct(np.ones(5))


def test_unknown_estimators_raise_our_error():
    with pytest.raises(TokendimError):
        support_warning("twonm", 100, 3.0)
    with pytest.raises(TokendimError, match="No support rule"):
        minimum_support(object())
