"""Properties every estimator must have, on random clouds drawn by hypothesis.

Invariance to rotation, translation and uniform scaling; duplicates change nothing but
``n_duplicates_``; clouds just big enough for the neighbours asked; float32 and float64
input; no NaN or inf ever. Clouds are drawn from a seed (continuous coordinates, so no exact
distance ties), a size, an intrinsic and an ambient dimension.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokendim_widgets.estimators import (
    GRIDE,
    MLE,
    CorrelationDimension,
    PCADimension,
    TwoNN,
)
from tokendim_widgets.knn import build_graph

FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def estimators():
    """Small-neighbourhood settings so that clouds of a few dozen points suffice."""
    return {
        "twonn": TwoNN(device="cpu"),
        "twonn_mle": TwoNN(method="mle", discard_fraction=0.1, device="cpu"),
        "mle": MLE(k=5, device="cpu"),
        "mle_mean": MLE(k=6, aggregate="mean", unbiased=True, device="cpu"),
        "gride": GRIDE(scale=2, range_max=8, device="cpu"),
        "correlation": CorrelationDimension(k1=3, k2=7, device="cpu"),
        "correlation_2pt": CorrelationDimension(k1=3, k2=7, method="two_point", device="cpu"),
        "pca": PCADimension(),
        "pca_threshold": PCADimension(method="threshold"),
    }


@st.composite
def clouds(draw, min_n=30, max_n=120):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, 4))
    D = draw(st.integers(d, 10))
    rng = np.random.default_rng(seed)
    Y = rng.random((n, d)) if draw(st.booleans()) else rng.normal(size=(n, d))
    basis, _ = np.linalg.qr(rng.normal(size=(D, d)))
    X = Y @ basis.T + 1e-3 * rng.normal(size=(n, D))  # a little noise: general position
    return X, seed


def results(est) -> dict[str, np.ndarray]:
    out = {
        "dimension": np.asarray(est.dimension_),
        "interval": np.asarray(est.dimension_interval_),
    }
    if hasattr(est, "local_dimensions_"):
        out["local"] = est.local_dimensions_
    if hasattr(est, "dimensions_"):
        out["curve"] = est.dimensions_
    return out


def fit_all(X) -> dict[str, dict[str, np.ndarray]]:
    return {name: results(est.fit(X)) for name, est in estimators().items()}


def assert_finite(res) -> None:
    for name, values in res.items():
        for key, arr in values.items():
            assert np.all(np.isfinite(arr)), (name, key, arr)


def assert_same(a, b, rtol) -> None:
    for name in a:
        for key in a[name]:
            np.testing.assert_allclose(a[name][key], b[name][key], rtol=rtol, atol=1e-9 * rtol)


@FAST
@given(clouds(), st.sampled_from(["rotation", "translation", "scaling"]))
def test_invariant_to_rotation_translation_and_scaling(cloud, how):
    X, seed = cloud
    rng = np.random.default_rng(seed + 1)
    if how == "rotation":
        Q, _ = np.linalg.qr(rng.normal(size=(X.shape[1], X.shape[1])))
        Y = X @ Q
    elif how == "translation":
        Y = X + rng.normal(size=X.shape[1]) * 1e3
    else:
        Y = X * float(rng.choice([1e-3, 7.0, 1e4]))
    a, b = fit_all(X), fit_all(Y)
    assert_finite(a)
    assert_finite(b)
    # Exact neighbours and float64 arithmetic: only rounding separates the two fits (the
    # 1e3 translation costs ~1e-13 relative in each coordinate of a unit-size cloud).
    assert_same(a, b, rtol=1e-6)


@FAST
@given(clouds(), st.integers(1, 20), st.booleans())
def test_duplicates_change_nothing_but_the_count(cloud, n_copies, near):
    X, seed = cloud
    rng = np.random.default_rng(seed + 2)
    src = rng.integers(0, len(X), size=n_copies)
    copies = X[src]
    if near:  # copies through float noise, not bitwise equal
        copies = copies * (1 + 1e-12 * rng.normal(size=copies.shape))
    Y = np.vstack([X, copies])
    a = {name: est.fit(X) for name, est in estimators().items()}
    b = {name: est.fit(Y) for name, est in estimators().items()}
    for name in a:
        assert b[name].n_points_ == len(Y)
        assert b[name].n_duplicates_ == n_copies
        assert a[name].n_duplicates_ == 0
        np.testing.assert_allclose(b[name].dimension_, a[name].dimension_, rtol=1e-9)
        np.testing.assert_allclose(b[name].dimension_interval_, a[name].dimension_interval_)
    local = b["mle"].local_dimensions_
    np.testing.assert_allclose(local[: len(X)], a["mle"].local_dimensions_)
    np.testing.assert_allclose(local[len(X) :], local[src])  # copies get their original's value
    assert np.all(np.isfinite(local))


@FAST
@given(clouds(min_n=40, max_n=80))
def test_float32_and_float64_agree(cloud):
    X, _ = cloud
    X32 = X.astype(np.float32)
    # Compare with float64 arithmetic on the same (rounded) coordinates: what differs is then
    # only our float32 arithmetic, whose distances are correctly rounded differences (~1e-7
    # relative), not the input's rounding (which alone can move a 1-D cloud's estimate by
    # 0.3%, its closest pairs being 1e-4 apart).
    a, b = fit_all(X32.astype(np.float64)), fit_all(X32)
    assert_finite(b)
    for name in a:
        np.testing.assert_allclose(a[name]["dimension"], b[name]["dimension"], rtol=1e-4)


@pytest.mark.parametrize("name", list(estimators()))
def test_just_enough_points(name):
    est = estimators()[name]
    need = max(est.required_neighbors, 1)
    n = need + 1
    if name.startswith("correlation"):
        n = need + 2  # the window must hold pairs at both ends
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny clouds may warn (e.g. a censored window)
        est.fit(X)
        assert np.isfinite(est.dimension_) and est.dimension_ > 0
        assert np.all(np.isfinite(est.dimension_interval_))
        if est.required_neighbors:
            graph = build_graph(X, need, device="cpu")
            again = estimators()[name].fit(X, knn=graph)
            assert again.dimension_ == pytest.approx(est.dimension_)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(3, 12))
def test_never_nan_or_inf_on_heavy_duplication(seed, n_distinct):
    # A token cloud at the embedding layer: few distinct points, each repeated many times.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_distinct, 5))
    X = base[rng.integers(0, n_distinct, size=200)]
    X[:n_distinct] = base  # every distinct point appears
    graph = build_graph(X, n_distinct - 1, device="cpu")
    for est in (TwoNN(), MLE(k=2), GRIDE(range_max=n_distinct - 1)):
        est.fit(X, knn=graph)
        assert np.isfinite(est.dimension_) and est.dimension_ > 0
        assert np.all(np.isfinite(est.dimension_interval_))
        assert est.n_duplicates_ == 200 - n_distinct
    local = MLE(k=2).fit(X, knn=graph).local_dimensions_
    assert local.shape == (200,) and np.all(np.isfinite(local))
