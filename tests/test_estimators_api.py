"""The estimators' API: fitting from points, graphs and raw arrays; attributes; the registry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from tokendim_widgets.errors import TokendimError
from tokendim_widgets.estimators import (
    ESTIMATORS,
    GRIDE,
    MLE,
    CorrelationDimension,
    IDEstimator,
    PCADimension,
    TwoNN,
    make_estimator,
)
from tokendim_widgets.estimators.gride import gride_fit
from tokendim_widgets.knn import build_graph, knn
from tokendim_widgets.resampling import chi2_quantile


def cloud(n=600, d=3, D=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)) @ rng.normal(size=(d, D))


ALL = [
    TwoNN(device="cpu"),
    TwoNN(method="mle", device="cpu"),
    MLE(k=10, device="cpu"),
    GRIDE(range_max=16, device="cpu"),
    CorrelationDimension(device="cpu"),
    PCADimension(),
]


@pytest.mark.parametrize("est", ALL, ids=repr)
def test_fit_returns_self_with_the_common_attributes(est):
    X = cloud()
    assert est.fit(X) is est
    assert isinstance(est.dimension_, float) and np.isfinite(est.dimension_)
    low, high = est.dimension_interval_
    assert 0 <= low <= est.dimension_ <= high
    assert est.n_points_ == 600 and est.n_duplicates_ == 0


@pytest.mark.parametrize("est", ALL[:5], ids=repr)
def test_one_graph_serves_every_estimator(est):
    X = np.vstack([cloud(), cloud()[:25]])  # with copies
    graph = build_graph(X, 32, device="cpu")
    from_points = est.fit(X).dimension_
    assert est.fit(X, knn=graph).dimension_ == pytest.approx(from_points, rel=1e-12)
    assert est.n_duplicates_ == 25
    if not isinstance(est, CorrelationDimension):
        d, i = graph.distances, graph.indices
        assert est.fit(knn=(d, i)).dimension_ == pytest.approx(from_points, rel=1e-12)


def test_raw_graph_with_duplicates_equals_deduplicated_fit():
    X = cloud()
    rows = np.vstack([X, X[:40], X[:10]])  # some points three times
    d, i = knn(rows, 25, device="cpu")  # raw: copies are neighbours at distance 0
    assert (d[:, 0] == 0).sum() == 90
    for est in (TwoNN(), TwoNN(method="mle"), MLE(k=10), GRIDE(range_max=16)):
        raw = est.fit(knn=(d, i))
        ref = type(est)(**est.get_params()).fit(X)
        assert raw.dimension_ == pytest.approx(ref.dimension_, rel=1e-12)
        assert raw.n_points_ == 650 and raw.n_duplicates_ == 50
    local = MLE(k=10).fit(knn=(d, i)).local_dimensions_
    assert local.shape == (650,)
    np.testing.assert_array_equal(local[600:640], local[:40])
    # A graph built without deduplication is treated the same way.
    undeduped = build_graph(rows, 25, device="cpu", dedupe=False)
    assert MLE(k=10).fit(rows, knn=undeduped).dimension_ == pytest.approx(
        MLE(k=10).fit(X).dimension_, rel=1e-12
    )


def test_raw_graph_with_float_noise_copies():
    # A graph from another library: copies at ~1e-9 instead of 0 (float64 GEMM noise).
    X = cloud()
    rows = np.vstack([X, X[:30] + 1e-12])
    d, i = knn(rows, 20, device="cpu")
    d = np.where(d < 1e-9, 3e-9, d)
    est = TwoNN().fit(knn=(d, i))
    assert est.n_duplicates_ == 30
    assert est.dimension_ == pytest.approx(TwoNN().fit(X).dimension_, rel=1e-12)


def test_graph_must_match_x_and_hold_enough_neighbours():
    X = cloud()
    graph = build_graph(X, 5, device="cpu")
    with pytest.raises(
        TokendimError, match="needs 20 neighbours per point but the kNN graph holds 5"
    ):
        MLE().fit(X, knn=graph)
    with pytest.raises(TokendimError, match="X has 599 rows"):
        TwoNN().fit(X[:-1], knn=graph)
    with pytest.raises(TokendimError, match="KNNGraph"):
        TwoNN().fit(knn="graph")
    assert MLE(k=5).fit(knn=graph).dimension_ > 0


def test_required_neighbors():
    assert TwoNN().required_neighbors == 2
    assert MLE(k=7).required_neighbors == 7
    assert GRIDE().required_neighbors == 64
    assert GRIDE(range_max=50).required_neighbors == 32
    assert GRIDE(scale=40, range_max=16).required_neighbors == 80
    assert CorrelationDimension().required_neighbors == 20
    assert CorrelationDimension(r_min=0.1, r_max=0.2).required_neighbors == 1
    assert PCADimension().required_neighbors == 0
    assert max(make_estimator(n).required_neighbors for n in ESTIMATORS) == 64


def test_twonn_linear_is_the_fit_through_the_origin():
    X = cloud()
    est = TwoNN(discard_fraction=0.2).fit(X)
    mu = np.sort(np.exp(est.log_ratios_))
    n = mu.size
    keep = int(n * 0.8)
    x, y = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / n)
    assert est.dimension_ == pytest.approx(float(np.linalg.lstsq(x[:, None], y)[0][0]))
    assert est.n_used_ == keep
    # discard_fraction=0 still leaves out the largest ratio, where -log(1 - N/N) is infinite.
    assert np.isfinite(TwoNN(discard_fraction=0.0).fit(X).dimension_)


def test_twonn_mle_interval_is_the_chi2_interval():
    X = cloud()
    # The chi-square interval is the analytic one (the default resamples blocks).
    est = TwoNN(method="mle", interval="analytic").fit(X)
    assert est.interval_method_ == "chi-square (independent points)"
    total = est.log_ratios_.sum()
    n = est.log_ratios_.size
    assert est.dimension_ == pytest.approx((n - 1) / total)
    lo = scipy.stats.chi2.ppf(0.025, 2 * n) / (2 * total)
    hi = scipy.stats.chi2.ppf(0.975, 2 * n) / (2 * total)
    np.testing.assert_allclose(est.dimension_interval_, (lo, hi), rtol=1e-3)
    censored = TwoNN(method="mle", discard_fraction=0.1).fit(X)
    assert censored.n_used_ == int(0.9 * n)


def test_chi2_quantile_approximation():
    for dof in (40, 100, 400, 20000):
        for p in (0.0005, 0.005, 0.025, 0.5, 0.975, 0.995, 0.9995):
            rel = 6e-3 if dof < 100 else 1.1e-3
            assert chi2_quantile(p, dof) == pytest.approx(scipy.stats.chi2.ppf(p, dof), rel=rel)


def test_mle_conventions():
    X = cloud()
    biased = MLE(k=10).fit(X)
    unbiased = MLE(k=10, unbiased=True).fit(X)
    assert unbiased.dimension_ == pytest.approx(biased.dimension_ * 8 / 9)
    mean = MLE(k=10, aggregate="mean").fit(X)
    # The arithmetic mean of the local values is at least their harmonic mean.
    assert mean.dimension_ > biased.dimension_
    assert mean.dimension_ == pytest.approx(np.mean(biased.local_dimensions_))
    assert biased.dimension_ == pytest.approx(1 / np.mean(1 / biased.local_dimensions_))
    # The local value by hand for one point.
    d, _ = knn(X, 10, device="cpu")
    by_hand = 9 / np.sum(np.log(d[0, -1] / d[0, :-1]))
    assert biased.local_dimensions_[0] == pytest.approx(by_hand)


def test_mle_on_a_lattice_marks_undefined_points():
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0)), axis=-1).reshape(-1, 2)
    with pytest.warns(UserWarning, match="exactly the same distance"):
        est = MLE(k=4).fit(grid)  # interior points: 4 neighbours at distance 1
    assert est.n_undefined_ > 0
    assert np.isnan(est.local_dimensions_).sum() == est.n_undefined_
    assert np.isfinite(est.dimension_)
    with pytest.raises(TokendimError, match="lattice"):
        TwoNN(method="mle").fit(grid[[0, 1, 8, 9]] * 1.0)  # a square: r2 == r1 everywhere


def test_gride_curve_and_scale():
    X = cloud(n=800)
    g = GRIDE(range_max=32).fit(X)
    assert g.scales_.tolist() == [1, 2, 4, 8, 16]
    assert g.dimensions_.shape == g.errors_.shape == g.radii_.shape == (5,)
    assert np.all(np.diff(g.radii_) > 0)
    assert g.dimension_ == g.dimensions_[0]
    g4 = GRIDE(scale=4, range_max=32).fit(X)
    assert g4.dimension_ == pytest.approx(g.dimensions_[2])
    g3 = GRIDE(scale=3, range_max=32).fit(X)  # not a power of two: fitted on its own
    assert 2 < g3.dimension_ < 4 and g3.scales_.tolist() == g.scales_.tolist()
    # n1 = 1 is the TwoNN maximum-likelihood estimate (up to GRIDE's outlier cut).
    assert g.dimension_ == pytest.approx(TwoNN(method="mle").fit(X).dimension_, rel=0.05)
    # Fitted from few points the range shrinks to what exists.
    small = GRIDE().fit(X[:20])
    assert small.scales_.tolist() == [1, 2, 4, 8]


def test_gride_root_matches_scipy():
    rng = np.random.default_rng(3)
    r1 = rng.random(500) + 0.1
    r2 = r1 * np.exp(rng.exponential(0.3, 500))
    for n1 in (2, 4, 8):
        dim, _ = gride_fit(r1, r2, n1, 2 * n1)
        x = np.log(r2 / r1)
        n = x.size

        def score(d, n1=n1, x=x, n=n):
            return (n - 1) / d + (n1 - 1) * np.sum(x / -np.expm1(-d * x)) - (2 * n1 - 1) * x.sum()

        assert dim == pytest.approx(scipy.optimize.brentq(score, 1e-6, 1e3, xtol=1e-14), rel=1e-10)


def test_correlation_curve_window_and_fitted_line():
    X = cloud(n=1500)
    est = CorrelationDimension().fit(X)
    c = est.correlation_integral_
    assert est.radii_.shape == c.shape == (40,)
    assert np.all(np.diff(c) >= 0) and c[-1] == 1.0 and c[0] == 0.0
    lo, hi = est.window_
    assert est.fit_radii_[0] == lo and est.fit_radii_[-1] == hi and est.fit_radii_.size == 8
    d, _ = knn(X, 20, device="cpu")
    # The window is re-measured in float64 by the estimator: equal to the last bits.
    assert lo == pytest.approx(np.median(d[:, 9]), rel=1e-12)
    assert hi == pytest.approx(np.median(d[:, 19]), rel=1e-12)
    # The curve and the fitted points agree where they overlap.
    inside = (est.radii_ > lo) & (est.radii_ < hi)
    fitted = np.exp(est.intercept_) * est.radii_[inside] ** est.dimension_
    np.testing.assert_allclose(fitted, c[inside], rtol=0.1)
    # Counts by brute force at the window's ends.
    diff = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    pairs = diff[np.triu_indices(1500, 1)]
    for r, value in zip(
        est.fit_radii_[[0, -1]], est.fit_correlation_integral_[[0, -1]], strict=True
    ):
        assert value == pytest.approx(np.mean(pairs < r))
    explicit = CorrelationDimension(r_min=lo, r_max=hi).fit(X)
    assert explicit.dimension_ == pytest.approx(est.dimension_)


def test_correlation_from_a_graph():
    X = cloud(n=500)
    full = CorrelationDimension().fit(X)
    complete = build_graph(X, 499, device="cpu")  # every pair listed: exact counts
    from_graph = CorrelationDimension().fit(knn=complete)
    assert from_graph.dimension_ == pytest.approx(full.dimension_, rel=1e-9)
    assert from_graph.censored_fraction_ == 0.0 and full.exact_radius_ == np.inf
    np.testing.assert_allclose(from_graph.dimension_interval_, full.dimension_interval_, rtol=1e-9)
    with pytest.warns(UserWarning, match="counts are cut"):
        cut = CorrelationDimension().fit(knn=build_graph(X, 20, device="cpu"))
    assert 0.3 < cut.censored_fraction_ <= 1.0
    assert cut.exact_radius_ < cut.window_[1]
    wide = CorrelationDimension().fit(knn=build_graph(X, 120, device="cpu"))
    assert wide.censored_fraction_ < 0.01
    assert wide.dimension_ == pytest.approx(full.dimension_, rel=0.02)


def test_correlation_two_point_is_the_secant():
    X = cloud(n=1000)
    est = CorrelationDimension(method="two_point").fit(X)
    c1, c2 = est.fit_correlation_integral_
    r1, r2 = est.window_
    assert est.dimension_ == pytest.approx(np.log(c2 / c1) / np.log(r2 / r1))


def test_correlation_subsample_is_seeded():
    X = cloud(n=1200)
    a = CorrelationDimension(max_points=500).fit(X)
    b = CorrelationDimension(max_points=500).fit(X)
    c = CorrelationDimension(max_points=500, random_state=1).fit(X)
    assert a.n_used_ == 500 and a.n_points_ == 1200
    assert a.dimension_ == b.dimension_ != c.dimension_
    assert a.dimension_ == pytest.approx(CorrelationDimension().fit(X).dimension_, rel=0.15)


def test_pca_needs_points_and_reuses_the_graph_deduplication():
    X = np.vstack([cloud(), cloud()[:10]])
    graph = build_graph(X, 3, device="cpu")
    with pytest.raises(TokendimError, match="coordinates"):
        PCADimension().fit(knn=graph)
    est = PCADimension().fit(X, knn=graph)
    assert est.n_duplicates_ == 10
    assert est.dimension_ == pytest.approx(PCADimension().fit(X[:600]).dimension_)
    ev = est.eigenvalues_
    assert np.all(np.diff(ev) <= 0) and est.explained_variance_ratio_.sum() == pytest.approx(1)
    assert est.dimension_ == pytest.approx(ev.sum() ** 2 / (ev**2).sum())


def test_pca_with_fewer_points_than_features():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 200))
    wide = PCADimension(method="threshold", threshold=0.999).fit(X)
    assert wide.dimension_ == 4.0
    pr = PCADimension().fit(X)
    assert 1 < pr.dimension_ < 4 and pr.dimension_interval_[0] <= pr.dimension_


def test_intervals_are_seeded_and_cover_the_estimate():
    X = cloud()
    for est in (TwoNN(), MLE(), CorrelationDimension(), PCADimension()):
        a = est.fit(X).dimension_interval_
        b = type(est)(**est.get_params()).fit(X).dimension_interval_
        assert a == b
        c = type(est)(**{**est.get_params(), "random_state": 5}).fit(X).dimension_interval_
        assert c != a
        wider = type(est)(**{**est.get_params(), "confidence": 0.99}).fit(X).dimension_interval_
        assert wider[0] <= a[0] and wider[1] >= a[1]


def test_params_repr_and_registry():
    est = MLE(k=10)
    assert repr(est) == "MLE(k=10)"
    assert est.get_params()["k"] == 10
    assert est.set_params(k=12) is est and est.k == 12
    with pytest.raises(TokendimError, match="no parameter 'kk'"):
        est.set_params(kk=3)
    assert set(ESTIMATORS) == {"correlation", "twonn", "mle", "gride", "pca"}
    for name, cls in ESTIMATORS.items():
        made = make_estimator(name)
        assert type(made) is cls and isinstance(made, IDEstimator)
    assert make_estimator("GRIDE", scale=4).scale == 4
    with pytest.raises(TokendimError, match=r"Unknown estimator 'lpca'.*correlation, twonn"):
        make_estimator("lpca")
    with pytest.raises(TokendimError, match=r"no parameter 'n_neighbors'.*valid parameters: k"):
        make_estimator("mle", n_neighbors=5)


def test_estimators_do_not_warn_on_clean_data():
    X = cloud()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for est in ALL:
            est.fit(X)
