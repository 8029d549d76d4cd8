"""Resampled intervals: group weights, pairing across fits, and coverage on known clouds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from tokendim_widgets.errors import TokendimError
from tokendim_widgets.estimators import GRIDE, MLE, CorrelationDimension, PCADimension, TwoNN
from tokendim_widgets.estimators.correlation import BLENDED_METHOD, BLOCK_ARTEFACT
from tokendim_widgets.knn import build_graph
from tokendim_widgets.resampling import (
    AUTO_BLOCKS,
    as_group_labels,
    bootstrap_interval,
    distinct_weights,
    graph_blocks,
    group_weights,
)

GRAPH_ESTIMATORS = [
    TwoNN(),
    TwoNN(method="mle"),
    MLE(k=10),
    GRIDE(range_max=16),
    GRIDE(scale=2, range_max=16),
    CorrelationDimension(),
]


def prompt_cloud(
    rng: np.random.Generator, n_prompts: int = 20, n_tokens: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Prompts as correlated walks on their own random patches of a 6-d space, in D = 32."""
    d = 6
    basis = np.linalg.qr(np.random.default_rng(7).normal(size=(32, d)))[0].T
    parts = []
    for _ in range(n_prompts):
        centre = 2.0 * rng.normal(size=d)
        d_patch = int(rng.integers(1, 4))
        size, noise = 0.6 * np.exp(0.3 * rng.normal(size=2))
        patch = np.linalg.qr(rng.normal(size=(d, d_patch)))[0]
        steps = rng.normal(size=(n_tokens, d_patch)) * np.sqrt(1 - 0.7**2)
        steps[0] = rng.normal(size=d_patch)
        u = lfilter([1.0], [1.0, -0.7], steps, axis=0)  # u_t = 0.7 u_(t-1) + step_t
        parts.append(centre + size * u @ patch.T + noise / 6.0 * rng.normal(size=(n_tokens, d)))
    groups = np.repeat(np.arange(n_prompts), n_tokens)
    return np.concatenate(parts) @ basis, groups


@pytest.fixture(scope="module")
def cloud() -> tuple[np.ndarray, np.ndarray, object]:
    X, groups = prompt_cloud(np.random.default_rng(0))
    return X, groups, build_graph(X, 32, device="cpu")


# -- the resampling module ------------------------------------------------------------------


def test_group_labels_are_checked() -> None:
    with pytest.raises(TokendimError, match="one label per row"):
        as_group_labels([0, 1, 2], 4)
    with pytest.raises(TokendimError, match="1-D"):
        as_group_labels(np.zeros((2, 2)), 2)
    with pytest.raises(TokendimError, match="NaN"):
        as_group_labels([0.0, np.nan], 2)
    uniques, codes = as_group_labels(["b", "a", "b"], 3)
    assert uniques.tolist() == ["a", "b"] and codes.tolist() == [1, 0, 1]


def test_estimators_check_groups(cloud: tuple) -> None:
    X, groups, graph = cloud
    for est in [TwoNN(), CorrelationDimension(), PCADimension()]:
        with pytest.raises(TokendimError, match="labels but the data has"):
            est.fit(X, knn=graph, groups=groups[:-1])


def test_group_weights_are_paired_over_the_sorted_labels() -> None:
    labels = np.array([3, 3, 1, 1, 2, 7])
    w = group_weights(labels, 50, 4)
    assert w.shape == (50, 6)
    assert np.allclose(w.sum(axis=1) >= 0, True)
    # Rows of one group share their weight; another order of the rows, the same draws.
    assert np.array_equal(w[:, 0], w[:, 1]) and np.array_equal(w[:, 2], w[:, 3])
    perm = np.array([5, 2, 0, 4, 1, 3])
    assert np.array_equal(group_weights(labels[perm], 50, 4), w[:, perm])
    # Four groups drawn four times: the multiplicities of the groups sum to 4.
    per_group = w[:, [2, 4, 0, 5]]
    assert np.all(per_group.sum(axis=1) == 4)
    assert not np.array_equal(group_weights(labels, 50, 5), w)


def test_copies_weigh_the_mean_of_their_rows() -> None:
    rows = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, 1.0]])
    out = distinct_weights(rows, np.array([0, 1, 0]), 2)
    assert np.allclose(out, [[2.5, 2.0], [0.5, 3.0]])


def test_graph_blocks_cover_every_point(cloud: tuple) -> None:
    _, groups, graph = cloud
    labels = graph_blocks(graph.indices, 25, 0)
    assert labels.shape == (graph.n_unique,) and labels.min() == 0
    sizes = np.bincount(labels)
    assert np.all(sizes > 0)
    # The prompts lie mostly apart: most blocks stay inside one prompt.
    assert sizes.size >= 15
    pure = [np.unique(groups[graph.keep][labels == b]).size == 1 for b in range(sizes.size)]
    assert np.mean(pure) > 0.7
    # One connected cloud: about the blocks asked for, following the graph's edges.
    rng = np.random.default_rng(0)
    one = build_graph(rng.normal(size=(1000, 4)), 10, device="cpu")
    blocks = graph_blocks(one.indices, 25, 0)
    assert 20 <= blocks.max() + 1 <= 30
    assert np.mean(blocks[one.indices[:, 1]] == blocks) > 0.6
    # A point and its nearest neighbour share their distance: never split.
    assert np.array_equal(blocks[one.indices[:, 0]], blocks)
    assert np.array_equal(labels[graph.indices[:, 0]], labels)


def test_bootstrap_interval_kinds() -> None:
    reps = np.random.default_rng(0).normal(5.0, 0.5, size=4000)
    (lo, hi), se = bootstrap_interval(5.0, reps, 0.95)
    assert se == pytest.approx(0.5, rel=0.05)
    assert lo == pytest.approx(5 - 0.98, abs=0.06) and hi == pytest.approx(5 + 0.98, abs=0.06)
    (blo, bhi), _ = bootstrap_interval(5.2, reps, 0.95, kind="basic")
    assert blo == pytest.approx(2 * 5.2 - hi) and bhi == pytest.approx(2 * 5.2 - lo)
    (nlo, nhi), _ = bootstrap_interval(5.0, reps, 0.95, kind="normal")
    assert nhi - nlo == pytest.approx(2 * 1.959964 * se)


# -- the estimators ---------------------------------------------------------------------------


@pytest.mark.parametrize("est", GRAPH_ESTIMATORS, ids=repr)
def test_intervals_hold_the_estimate_and_keep_it(est: object, cloud: tuple) -> None:
    X, groups, graph = cloud
    analytic = type(est)(**{**est.get_params(), "interval": "analytic"}).fit(X, knn=graph)
    assert analytic.bootstrap_dimensions_ is None and analytic.n_groups_ is None
    assert "independent points" in analytic.interval_method_
    blended = isinstance(est, CorrelationDimension)  # U-statistic + the blocks' excess
    for kind, g, method in [
        ("auto", groups, "group bootstrap"),
        ("auto", None, BLENDED_METHOD if blended else "block bootstrap"),
        ("bootstrap", None, "point bootstrap (independent points)"),
    ]:
        fitted = type(est)(**{**est.get_params(), "interval": kind, "n_bootstrap": 60})
        fitted.fit(X, knn=graph, groups=g)
        assert fitted.dimension_ == analytic.dimension_  # the estimate never changes
        lo, hi = fitted.dimension_interval_
        assert lo <= fitted.dimension_ <= hi and hi > lo
        assert fitted.interval_method_ == method
        if method == BLENDED_METHOD:
            assert fitted.bootstrap_dimensions_ is None and fitted.n_groups_ is not None
            continue
        assert fitted.bootstrap_dimensions_.shape == (60,)
        assert np.isfinite(fitted.bootstrap_dimensions_).mean() > 0.95
        if g is not None:
            assert fitted.n_groups_ == 20


@pytest.mark.parametrize("est", GRAPH_ESTIMATORS, ids=repr)
def test_replicates_are_paired_across_fits(est: object, cloud: tuple) -> None:
    X, groups, graph = cloud
    a = type(est)(**est.get_params()).fit(X, knn=graph, groups=groups)
    # The same labels renamed in order and the rows shuffled: the same draws of groups.
    perm = np.random.default_rng(1).permutation(X.shape[0])
    Xp = X[perm]
    b = type(est)(**est.get_params()).fit(
        Xp, knn=build_graph(Xp, 32, device="cpu"), groups=[f"p{g:03d}" for g in groups[perm]]
    )
    np.testing.assert_allclose(b.bootstrap_dimensions_, a.bootstrap_dimensions_, rtol=1e-6)


def test_grouped_intervals_are_wider_on_prompt_clouds(cloud: tuple) -> None:
    X, groups, graph = cloud
    for est, factor in [(MLE(k=10), 3.0), (TwoNN(), 1.3)]:
        point = type(est)(**{**est.get_params(), "interval": "analytic"}).fit(X, knn=graph)
        grouped = est.fit(X, knn=graph, groups=groups)
        width = np.diff(grouped.dimension_interval_)[0]
        assert width > factor * np.diff(point.dimension_interval_)[0], type(est).__name__


def test_pca_leaves_out_groups(cloud: tuple) -> None:
    X, groups, _ = cloud
    grouped = PCADimension().fit(X, groups=groups)
    point = PCADimension().fit(X)
    assert grouped.interval_method_ == "group jackknife" and grouped.n_groups_ == 20
    assert point.interval_method_ == "jackknife (independent points)"
    assert grouped.dimension_ == point.dimension_
    assert grouped.standard_error_ > point.standard_error_


@pytest.mark.parametrize(
    "est", [*GRAPH_ESTIMATORS, PCADimension(), CorrelationDimension(k1=5, k2=10)], ids=repr
)
def test_cosine_is_euclidean_on_unit_rows(est: object) -> None:
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(600, 4)) @ rng.normal(size=(4, 12))) + 3.0
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    params = {**est.get_params(), "n_bootstrap": 30}
    cos = type(est)(**{**params, "metric": "cosine"}).fit(X)
    euc = type(est)(**params).fit(unit)
    assert cos.dimension_ == pytest.approx(euc.dimension_, rel=1e-9)
    assert cos.dimension_interval_ == pytest.approx(euc.dimension_interval_, rel=1e-9)
    plain = type(est)(**params).fit(X)
    assert plain.dimension_ != pytest.approx(cos.dimension_, rel=1e-6)


def test_cosine_rejects_zero_rows() -> None:
    X = np.random.default_rng(0).normal(size=(100, 5))
    X[3] = 0.0
    with pytest.raises(TokendimError, match="non-zero"):
        TwoNN(metric="cosine").fit(X)


def test_correlation_local_slope_shows_the_plateau() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((2000, 3)) @ rng.normal(size=(3, 20))
    est = CorrelationDimension(device="cpu").fit(X)
    assert est.local_slope_.shape == est.radii_.shape
    lo, hi = est.window_
    inside = (est.radii_ >= lo) & (est.radii_ <= hi)
    assert np.allclose(est.local_slope_[inside], est.dimension_, atol=0.6)


def test_bad_interval_parameters() -> None:
    with pytest.raises(TokendimError, match="interval"):
        TwoNN(interval="exact").fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(TokendimError, match="n_bootstrap"):
        MLE(n_bootstrap=1).fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(TokendimError, match="metric"):
        GRIDE(metric="manhattan").fit(np.random.default_rng(0).normal(size=(50, 3)))


# -- coverage ---------------------------------------------------------------------------------


def _brute_graph(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sq = np.sum(X * X, axis=1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0))
    np.fill_diagonal(dist, np.inf)
    idx = np.argsort(dist, axis=1)[:, :k]
    return np.take_along_axis(dist, idx, axis=1), idx


@pytest.fixture(scope="module")
def replicate_clouds() -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """60 seeded prompt clouds (12 prompts x 60 tokens) and their 10-neighbour graphs."""
    out = []
    for r in range(60):
        X, groups = prompt_cloud(np.random.default_rng([11, r]), 12, 60)
        out.append((groups, _brute_graph(X, 10)))
    return out


def _coverage(clouds: list, make: object, interval: str, with_groups: bool) -> float:
    """Share of the clouds whose interval holds the mean estimate."""
    fits = []
    for r, (groups, graph) in enumerate(clouds):
        est = make(interval=interval, n_bootstrap=100, random_state=r)
        est.fit(knn=graph, groups=groups if with_groups else None)
        fits.append((est.dimension_, *est.dimension_interval_))
    arr = np.asarray(fits)
    truth = arr[:, 0].mean()
    return float(np.mean((arr[:, 1] <= truth) & (truth <= arr[:, 2])))


def test_grouped_intervals_cover_on_prompt_clouds(replicate_clouds: list) -> None:
    mle = lambda **kw: MLE(k=10, **kw)  # noqa: E731
    assert _coverage(replicate_clouds, TwoNN, "auto", True) >= 0.8
    assert _coverage(replicate_clouds, mle, "auto", True) >= 0.8
    # The check can fail: MLE's point-level interval collapses on these clouds (45%).
    assert _coverage(replicate_clouds, mle, "analytic", False) < 0.7


def test_correlation_point_interval_is_calibrated_on_independent_points() -> None:
    # 80 seeded Gaussian clouds (n = 300, d = 5), fitted from their full graphs: the spread of
    # the estimates over the mean standard error is 0.93 here (0.90-1.07 over other seeds);
    # without the correction of the pairs' second-order part (counted twice in the scatter of
    # the points' partner counts) it would be 0.67-0.70, too wide.
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(12, 5)))[0].T
    fits = []
    for r in range(80):
        X = np.random.default_rng([0, r]).normal(size=(300, 5)) @ basis
        est = CorrelationDimension(interval="analytic", device="cpu").fit(knn=_brute_graph(X, 299))
        fits.append((est.dimension_, est.standard_error_, *est.dimension_interval_))
    assert est.interval_method_ == "U-statistic delta method (independent points)"
    assert est.bootstrap_dimensions_ is None and est.n_groups_ is None
    arr = np.asarray(fits)
    ratio = arr[:, 0].std(ddof=1) / arr[:, 1].mean()
    truth = arr[:, 0].mean()
    coverage = np.mean((arr[:, 2] <= truth) & (truth <= arr[:, 3]))
    assert 0.8 < ratio < 1.25, ratio
    assert 0.85 <= coverage <= 1.0, coverage


def test_correlation_default_without_groups_adds_what_the_blocks_find_beyond_independence(
    cloud: tuple,
) -> None:
    X, _, graph = cloud
    point = CorrelationDimension(interval="analytic").fit(X, knn=graph)
    blended = CorrelationDimension().fit(X, knn=graph)
    assert blended.interval_method_ == BLENDED_METHOD
    # The same blocks, given as groups, are the block bootstrap the default measures.
    blocks = graph_blocks(graph.indices, AUTO_BLOCKS, 0)
    by_blocks = CorrelationDimension().fit(X, knn=graph, groups=blocks)
    assert by_blocks.interval_method_ == "group bootstrap"
    se_u, se_b = point.standard_error_, by_blocks.standard_error_
    expected = np.sqrt(se_u**2 + max(0.0, se_b**2 - BLOCK_ARTEFACT * se_u**2))
    assert blended.standard_error_ == pytest.approx(expected, rel=1e-9)
    # Prompts as patches of their own: the blocks see them, and the interval widens.
    assert se_b**2 > 3 * se_u**2
    assert blended.standard_error_ > 1.5 * se_u
    lo, hi = blended.dimension_interval_
    assert hi - lo == pytest.approx(2 * 1.959964 * blended.standard_error_, rel=1e-5)


def test_replicate_counts_weigh_pairs_as_a_u_statistic() -> None:
    from tokendim_widgets.estimators.correlation import replicate_counts

    rng = np.random.default_rng(3)
    n_g, n_w = 5, 3
    pairs = rng.integers(0, 20, size=(n_g, n_g, 1)).astype(float)
    grouped = np.cumsum(np.repeat(pairs + pairs.transpose(1, 0, 2), n_w, axis=2), axis=2)
    mult = rng.multinomial(n_g, np.full(n_g, 1 / n_g), size=400).astype(float)
    out = replicate_counts(grouped, mult)
    # Each ordered pair (g, h): m_g within a unit; across, the mean of the ends' multiplicities
    # plus the second-order term ((m_g - 1)(m_h - 1) + 1/G) / sqrt(2).
    expect = np.zeros_like(out)
    for g in range(n_g):
        for h in range(n_g):
            if g == h:
                w = mult[:, g]
            else:
                second = (mult[:, g] - 1) * (mult[:, h] - 1) + 1 / n_g
                w = (mult[:, g] + mult[:, h]) / 2 + second / np.sqrt(2)
            expect += w[:, None] * grouped[g, h][None, :]
    assert np.allclose(out, expect)
    # Unbiased under the multinomial draw: replicates average to the data's counts.
    assert np.allclose(out.mean(axis=0), grouped.sum(axis=(0, 1)), rtol=0.03)
