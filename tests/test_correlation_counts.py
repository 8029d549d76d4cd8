"""CorrelationDimension from points: exact window counts from a kNN graph plus exact rows.

Every window count is compared with a brute-force count of all pairs (float64 differences of
the rows, numpy), exactly: on clouds with copies, a large common offset in float32, float64
input, and graphs of few neighbours (many rows counted against all points). The plotted curve
is compared with the brute-force curve where float32 cannot blur it, and checked as a seeded
sample otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tokendim_widgets.estimators import CorrelationDimension
from tokendim_widgets.knn import build_graph
from tokendim_widgets.resampling import normal_interval

# Window radii are lowered by this relative amount before pairs are counted below them
# (docs/estimators.md), so that a pair whose distance is a window end stays out.
SHRINK = 1e-9


def slope(x, y):
    """Least-squares slope of y on x, with the estimator's arithmetic (compared bit for bit)."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    return float(np.dot(dx, y - ym) / np.dot(dx, dx))


def manifold(n=320, d=3, D=24, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.random((n, d))
    return np.sin(Y @ rng.normal(size=(d, D))) + 0.01 * rng.normal(size=(n, D))


def distinct(X):
    _, first = np.unique(X, axis=0, return_index=True)
    return X[np.sort(first)]


def pair_distances(X):
    """(n, n) float64 distances: norms of the float64 differences of the rows."""
    x = np.asarray(X).astype(np.float64)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))


def brute_counts(X, radii):
    """Pairs i < j of distinct rows strictly closer than each radius, lowered by SHRINK."""
    dist = pair_distances(distinct(X))
    upper = dist[np.triu_indices(dist.shape[0], 1)]
    return np.array([np.count_nonzero(upper < r * (1.0 - SHRINK)) for r in radii]), dist


def u_statistic_se(dist, radii):
    """The slope's standard error for independent points, from the pairs' distances.

    Hoeffding's variance of the ordered pair count S, m(m-1) [4(m-2) zeta1 + 2 zeta2], with
    zeta2 from the pair indicators and zeta1 from the spread of each point's partner count
    (whose expected scatter is (m-1)(m-2) [(m-4) zeta1 + zeta2]), then the delta method.
    A negative estimate of the slope's zeta1 counts as 0.
    """
    m = dist.shape[0]
    off = ~np.eye(m, dtype=bool)
    inside = [(dist < r * (1.0 - SHRINK)) & off for r in radii]
    c = np.stack([a.sum(axis=1) for a in inside], axis=1).astype(np.float64)
    total = c.sum(axis=0)
    both = np.array([[np.count_nonzero(a & b) for b in inside] for a in inside], dtype=float)
    u = total / (m * (m - 1.0))
    zeta2 = both / (m * (m - 1.0)) - np.outer(u, u)
    scatter = (c - c.mean(axis=0)).T @ (c - c.mean(axis=0))
    zeta1 = (scatter / ((m - 1.0) * (m - 2.0)) - zeta2) / (m - 4.0)
    cov = m * (m - 1.0) * (4.0 * (m - 2.0) * zeta1 + 2.0 * zeta2)
    x = np.log(radii)
    grad = (x - x.mean()) / np.sum((x - x.mean()) ** 2) / total
    # zeta1 >= 0: the slope's variance is at least that of which pairs fall inside r.
    floor = 2.0 * m * (m - 1.0) * (grad @ zeta2 @ grad)
    return float(np.sqrt(max(grad @ cov @ grad, floor)))


def check_exact(est, X):
    """The window counts, slope and point-level interval of ``est`` equal brute force's.

    ``est`` has ``interval="analytic"``: the U-statistic variance of independent points.
    """
    counts, dist = brute_counts(X, est.fit_radii_)
    m = dist.shape[0]
    pairs = m * (m - 1) / 2.0
    assert est.n_used_ == m
    np.testing.assert_array_equal(np.rint(est.fit_correlation_integral_ * pairs), counts)
    np.testing.assert_array_equal(est.fit_correlation_integral_, counts / pairs)  # bit for bit
    x = np.log(est.fit_radii_)
    assert est.dimension_ == slope(x, np.log(counts / pairs))
    assert est.interval_method_ == "U-statistic delta method (independent points)"
    se = u_statistic_se(dist, est.fit_radii_)
    assert est.standard_error_ == pytest.approx(se, rel=1e-9)
    interval = normal_interval(est.dimension_, se, est.confidence)
    np.testing.assert_allclose(est.dimension_interval_, interval, rtol=1e-9)


def clouds():
    X = manifold()
    return {
        "float64": X,
        "float32_offset": (X + 1e4).astype(np.float32),
        "copies": np.vstack([X, X[:40], X[:5]]),
    }


@pytest.mark.parametrize("name", ["float64", "float32_offset", "copies"])
@pytest.mark.parametrize("method", ["fit", "two_point"])
def test_window_counts_are_those_of_all_pairs(name, method):
    X = clouds()[name]
    est = CorrelationDimension(interval="analytic", k1=4, k2=9, method=method, device="cpu").fit(X)
    check_exact(est, X)
    # A graph of few neighbours: about half the rows are counted against every point.
    small = CorrelationDimension(interval="analytic", k1=4, k2=9, method=method, device="cpu").fit(
        X, knn=build_graph(X, 9, device="cpu")
    )
    assert small.n_exact_rows_ > 0.3 * small.n_used_
    check_exact(small, X)
    assert small.dimension_ == est.dimension_
    assert small.dimension_interval_ == est.dimension_interval_


@pytest.mark.parametrize("offset", [30.0, 3e3])
def test_rows_counted_against_all_are_exact_where_float32_blurs_the_radii(offset):
    # Two clusters far apart: the centred norms are large against the pair distances, so
    # float32 products err by more than the gaps between the window's radii (at 3e3 the rows
    # are too large for any bin to be read from float32). A small graph leaves most rows
    # counted against every point; their counts must still be exact.
    rng = np.random.default_rng(12)
    sign = np.where(np.arange(400) < 200, 1.0, -1.0)[:, None]
    X = (sign * offset + rng.normal(size=(400, 12)) * 0.3).astype(np.float32)
    est = CorrelationDimension(interval="analytic", k1=4, k2=9, device="cpu").fit(
        X, knn=build_graph(X, 9, device="cpu")
    )
    assert est.n_exact_rows_ > 0.3 * est.n_used_
    check_exact(est, X)


def test_window_ends_at_pair_distances_are_counted_exactly():
    # Radii exactly at (and a float32 rounding above) pair distances: the graph's float32
    # distances of those pairs fall on either side of the shrunk radius, so they must be
    # measured again as float64 differences before they are compared.
    X = clouds()["float32_offset"]
    dist = pair_distances(X)
    near = np.sort(dist, axis=1)[:, 1:12]
    for r_lo, r_hi in [
        (near[3, 2], near[7, 9]),
        (near[5, 4] * (1 + 6e-8), near[9, 8] * (1 + 3e-8)),
    ]:
        for k in (12, 40, None):
            est = CorrelationDimension(interval="analytic", r_min=r_lo, r_max=r_hi, device="cpu")
            est.fit(X) if k is None else est.fit(X, knn=build_graph(X, k, device="cpu"))
            check_exact(est, X)


@pytest.mark.parametrize("k", [9, 15, 30, 80, 319])
def test_a_given_graph_changes_nothing(k):
    X = clouds()["float32_offset"]
    own = CorrelationDimension(interval="analytic", k1=4, k2=9, device="cpu").fit(X)
    given = CorrelationDimension(interval="analytic", k1=4, k2=9, device="cpu").fit(
        X, knn=build_graph(X, k, device="cpu")
    )
    assert given.dimension_ == own.dimension_
    assert given.dimension_interval_ == own.dimension_interval_
    np.testing.assert_array_equal(given.fit_correlation_integral_, own.fit_correlation_integral_)
    if k == 319:  # every other point listed: no row needs counting against all
        assert given.n_exact_rows_ == 0


def test_a_graph_of_other_distances_is_not_trusted():
    X = clouds()["float64"]
    g = build_graph(X, 30, device="cpu")
    off = (g.distances * (1 + 1e-3), g.indices)  # e.g. a float32 expansion search
    est = CorrelationDimension(interval="analytic", k1=4, k2=9, device="cpu")
    with pytest.warns(UserWarning, match="counted from the points"):
        est.fit(X, knn=off)
    assert est.n_exact_rows_ == est.n_used_
    check_exact(est, X)


def test_curve_of_all_pairs_when_the_sample_holds_every_point():
    X = clouds()["float32_offset"]
    est = CorrelationDimension(k1=4, k2=9, curve_points=len(X), device="cpu").fit(X)
    dist = pair_distances(X)
    upper = np.sort(dist[np.triu_indices(len(X), 1)])
    r = est.radii_
    expected = np.searchsorted(upper, r, side="left") / upper.size
    # Away from pair distances the float32 products cannot move a pair across a radius.
    gap = np.abs(upper[np.clip(np.searchsorted(upper, r), 0, upper.size - 1)] - r)
    gap = np.minimum(gap, np.abs(upper[np.clip(np.searchsorted(upper, r) - 1, 0, None)] - r))
    clear = gap > 1e-5 * r
    assert clear.sum() >= 30
    np.testing.assert_array_equal(est.correlation_integral_[clear], expected[clear])
    assert est.correlation_integral_[-1] == 1.0


def test_curve_from_a_seeded_sample_of_points():
    X = clouds()["float64"]
    full = CorrelationDimension(k1=4, k2=9, curve_points=len(X), device="cpu").fit(X)
    a = CorrelationDimension(k1=4, k2=9, curve_points=60, device="cpu").fit(X)
    b = CorrelationDimension(k1=4, k2=9, curve_points=60, device="cpu").fit(X)
    c = CorrelationDimension(k1=4, k2=9, curve_points=60, random_state=3, device="cpu").fit(X)
    for est in (a, c):
        curve = est.correlation_integral_
        assert np.all(np.diff(curve) >= 0) and curve[0] >= 0 and curve[-1] == 1.0
        np.testing.assert_array_equal(est.radii_, full.radii_)
        # The window counts do not depend on the curve's sample.
        assert est.dimension_ == full.dimension_
    np.testing.assert_array_equal(a.correlation_integral_, b.correlation_integral_)
    assert not np.array_equal(a.correlation_integral_, c.correlation_integral_)
    # An estimate of the same curve: 60 points x 319 partners.
    inside = (full.correlation_integral_ > 0.05) & (full.correlation_integral_ < 0.95)
    np.testing.assert_allclose(
        a.correlation_integral_[inside], full.correlation_integral_[inside], rtol=0.3
    )


def test_sampled_curve_is_exact_up_to_the_window():
    # Up to r_max (and beyond, to the smallest last listed distance of an uncensored point)
    # every point's partners are known: the curve is that of all pairs there, sample or not.
    X = clouds()["float64"]
    dist = pair_distances(X)
    upper = np.sort(dist[np.triu_indices(len(X), 1)])
    for k in (None, 9, 30):
        est = CorrelationDimension(k1=4, k2=9, curve_points=40, device="cpu")
        if k is None:
            est.fit(X)
        else:
            est.fit(X, knn=build_graph(X, k, device="cpu"))
        r = est.radii_
        expected = np.searchsorted(upper, r, side="left") / upper.size
        gap = np.min(np.abs(upper[None, :] - r[:, None]), axis=1)
        below = (r <= est.window_[1]) & (gap > 1e-9 * r)
        assert below.sum() >= 5
        np.testing.assert_array_equal(est.correlation_integral_[below], expected[below])
        assert np.all(np.diff(est.correlation_integral_) >= 0)


def test_one_sampled_point_is_enough():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CorrelationDimension(k1=4, k2=9, curve_points=1, device="cpu").fit(manifold())
    assert est.correlation_integral_[-1] == 1.0
