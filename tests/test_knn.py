"""The exact kNN search, the duplicates policy and the graph object."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokendim_widgets.errors import TokendimError
from tokendim_widgets.estimators import TwoNN
from tokendim_widgets.knn import (
    DEFAULT_RTOL,
    KNNGraph,
    build_graph,
    deduplicate,
    graph_from_arrays,
    knn,
)


def brute_force(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: float64 differences of every pair, self excluded, ties by index."""
    x = np.asarray(X, dtype=np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    i = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, i, axis=1), i


def embedded_cube(n: int, d: int, D: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(D, d)))
    return rng.random((n, d)) @ basis.T


# ---------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n", "D", "k", "chunk"),
    [(300, 20, 10, None), (257, 3, 5, 7), (50, 64, 49, 1), (1500, 40, 12, 256), (700, 8, 3, 64)],
)
def test_knn_equals_brute_force(dtype, n, D, k, chunk):
    X = embedded_cube(n, min(D, 5), D, seed=n).astype(dtype)
    d, i = knn(X, k, device="cpu", chunk_size=chunk)
    ref_d, ref_i = brute_force(X, k)
    assert d.dtype == np.float64 and i.dtype == np.int64
    assert d.shape == i.shape == (n, k)
    np.testing.assert_array_equal(i, ref_i)
    # Norms of differences in the input's precision: float32 sums of squares round at ~1e-7.
    np.testing.assert_allclose(d, ref_d, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert np.all(np.diff(d, axis=1) >= 0)
    assert not np.any(i == np.arange(n)[:, None])


def test_common_offset_breaks_naive_float32_but_not_ours():
    # Hidden states have huge norms against their neighbour distances: a common
    # offset of 100 in 768 coordinates makes |x|^2 ~ 8e6 while neighbours are ~0.1 apart.
    X = (embedded_cube(2000, 5, 768, seed=1) + 100.0).astype(np.float32)
    t = torch.from_numpy(X)
    sq = (t * t).sum(1)
    naive = sq[:, None] + sq[None, :] - 2.0 * t @ t.T
    naive.fill_diagonal_(float("inf"))
    naive_r1 = naive.clamp_min(0).min(dim=1).values.sqrt().numpy()
    assert (naive_r1 == 0).mean() > 0.3  # the naive float32 search is wrong for many points

    d, i = knn(X, 2, device="cpu", chunk_size=512)
    x64 = X.astype(np.float64)
    ref = np.linalg.norm(x64[:, None, :] - x64[i], axis=2)
    np.testing.assert_allclose(d, ref, rtol=1e-5)
    for q in range(0, 2000, 50):  # brute force on a subset of queries checks the order
        row = np.linalg.norm(x64 - x64[q], axis=1)
        row[q] = np.inf
        assert d[q, 0] == pytest.approx(row.min(), rel=1e-5)
    assert d[:, 0].min() > 0
    est = TwoNN(device="cpu").fit(X)
    assert np.isfinite(est.dimension_) and 4.0 < est.dimension_ < 5.5


def test_huge_norm_rows_are_searched_again_in_float64():
    # Like the first position of every prompt (~150x the median norm): the float32 error
    # bound cannot certify these rows' candidates, so they take the float64 path.
    rng = np.random.default_rng(2)
    X = embedded_cube(400, 4, 32, seed=2)
    X[:5] = X[:5] * 1.0 + rng.normal(size=(5, 32)) * 150.0
    X[5] = X[4] + 1e-3  # a near neighbour of a huge row
    # Many near neighbours of a huge row, closer to one another than the float32 products'
    # error at that norm: only float64 products rank them, so only that path gets them right.
    X[6:46] = X[3] + rng.normal(size=(40, 32)) * 1e-3
    X32 = X.astype(np.float32)
    d, i = knn(X32, 6, device="cpu")
    ref_d, ref_i = brute_force(X32, 6)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5)


def test_clouds_stored_cluster_by_cluster():
    # Token clouds come prompt by prompt: consecutive rows are near one another, the order
    # in which a naive tiling would sample each row's first threshold.
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(12, 24)) * 3.0
    X = np.repeat(centres, 150, axis=0) + rng.normal(size=(1800, 24)) * 0.3
    d, i = knn(X.astype(np.float32), 10, device="cpu", chunk_size=200)
    ref_d, ref_i = brute_force(X.astype(np.float32), 10)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5)


def test_self_is_excluded_by_index_even_with_exact_copies():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    d, i = knn(X, 2, device="cpu")
    assert i[0].tolist() == [1, 2] and i[1].tolist() == [0, 2]
    assert d[0, 0] == 0.0 and d[1, 0] == 0.0


def test_ties_are_ordered_by_index():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    d, i = knn(X, 4, device="cpu")
    assert i[0].tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(d[0], 1.0)


def test_input_types():
    X = embedded_cube(60, 3, 8)
    _, ref_i = knn(X, 4, device="cpu")
    for variant in (torch.from_numpy(X), X.tolist(), X.astype(np.float16)):
        d, i = knn(variant, 4, device="cpu")
        assert d.shape == (60, 4)
    d, i = knn(torch.from_numpy(X), 4, device="cpu")
    np.testing.assert_array_equal(i, ref_i)
    d, i = knn(np.arange(20).reshape(10, 2), 1, device="cpu")  # integers -> float64
    assert d[0, 0] == pytest.approx(np.sqrt(8.0))


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("X", "k", "match"),
    [
        (np.arange(10.0), 2, "2-D"),
        (np.ones((3, 2, 2)), 1, "2-D"),
        (np.zeros((0, 3)), 1, "empty"),
        (np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]), 1, "non-finite"),
        (np.array([[0.0, np.inf], [1.0, 1.0], [2.0, 2.0]]), 1, "non-finite"),
        (np.ones((5, 2)), 0, "k must be an integer >= 1, got 0"),
        (np.ones((5, 2)), -3, "k must be an integer >= 1, got -3"),
        (np.ones((5, 2)), 2.5, "integer"),
        (np.ones((5, 2)), True, "integer"),
        (np.ones((5, 2)), 5, "at least 6"),
        (np.array([["a", "b"], ["c", "d"]]), 1, "numbers"),
        (np.ones((4, 2), dtype=complex), 1, "real"),
    ],
)
def test_bad_input(X, k, match):
    with pytest.raises(TokendimError, match=match):
        knn(X, k, device="cpu")


def test_bad_chunk_size_and_device():
    with pytest.raises(TokendimError, match="chunk_size"):
        knn(np.ones((5, 2)) * np.arange(5)[:, None], 1, device="cpu", chunk_size=0)
    with pytest.raises(TokendimError):
        knn(np.ones((5, 2)), 1, device="no-such-device")


# ---------------------------------------------------------------------------------------------
# duplicates


def test_deduplicate_exact_near_and_signed_zero():
    X = np.array(
        [
            [0.0, 0.0],
            [1.0, 2.0],
            [-0.0, 0.0],  # bitwise different, same point
            [1.0, 2.0 + 1e-12],  # float noise
            [5.0, 5.0],
            [1.0, 2.0],
        ]
    )
    keep, inverse = deduplicate(X)
    assert keep.tolist() == [0, 1, 4]
    assert inverse.tolist() == [0, 1, 0, 1, 2, 1]
    np.testing.assert_allclose(X[keep][inverse], X, atol=1e-9)
    keep0, _ = deduplicate(X, rtol=0)  # bitwise only: -0.0 and the 1e-12 copy stay
    assert keep0.tolist() == [0, 1, 2, 3, 4]


def test_deduplicate_merges_chains_and_is_scale_and_translation_invariant():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(200, 6))
    step = DEFAULT_RTOL * 0.4 * np.sqrt((base - base.mean(0)).var(0).sum())
    chain = base[0] + np.outer(np.arange(1, 4), np.eye(6)[0]) * step  # 0 - a - b - c chain
    X = np.vstack([base, chain])
    keep, inverse = deduplicate(X)
    assert keep.size == 200 and set(inverse[200:]) == {0}
    for transformed in (X * 1e-4, X * 3e3, X + 1e4):
        k2, inv2 = deduplicate(transformed)
        np.testing.assert_array_equal(k2, keep)
        np.testing.assert_array_equal(inv2, inverse)


def test_deduplicate_finds_every_pair_within_the_threshold():
    # Chains of near-copies: each link inside the threshold, rows two links apart outside it,
    # so a chain is merged whole only if every close pair was found. The row after each
    # chain is just outside the threshold from its end, and stays apart.
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(40, 5))
    rtol = 1e-3
    thr = rtol * np.sqrt(((centres - centres.mean(0)) ** 2).sum(1).mean())
    steps = np.array([0.0, 0.8, 1.6, 2.4, 3.2, 4.5]) * thr  # the last: 1.3 thr from the end
    directions = rng.normal(size=(40, 5))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    X = (centres[:, None, :] + steps[None, :, None] * directions[:, None, :]).reshape(-1, 5)
    group = np.repeat(np.arange(40) * 2, 6) + np.tile([0, 0, 0, 0, 0, 1], 40)
    order = rng.permutation(X.shape[0])  # the copies scattered through the cloud
    X, group = X[order], group[order]
    radius = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    assert 0.95 < rtol * radius / thr < 1.05  # the threshold the steps were made for
    keep, inverse = deduplicate(X, rtol=rtol)
    first = {g: int(np.flatnonzero(group == g)[0]) for g in np.unique(group)}
    assert keep.tolist() == sorted(first.values())
    assert keep[inverse].tolist() == [first[g] for g in group]


def test_build_graph_removes_copies_and_maps_back():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4))
    rows = np.vstack([X, X[:7], X[3:5] * (1 + 1e-13)])
    g = build_graph(rows, 6, device="cpu")
    assert (g.n_points, g.n_unique, g.n_duplicates, g.k) == (129, 120, 9, 6)
    assert g.distances.min() > g.threshold > 0
    ref_d, ref_i = knn(X, 6, device="cpu")
    np.testing.assert_allclose(g.distances, ref_d)
    np.testing.assert_array_equal(g.indices, ref_i)
    values = np.arange(120.0)
    expanded = g.expand(values)
    assert expanded[120:127].tolist() == list(range(7)) and expanded[127:].tolist() == [3, 4]
    t = g.truncate(2)
    assert t.k == 2 and t.n_points == 129
    np.testing.assert_array_equal(t.distances, g.distances[:, :2])
    with pytest.raises(TokendimError, match="holds 6"):
        g.truncate(7)
    with pytest.raises(TokendimError, match="one value per distinct point"):
        g.expand(np.arange(129.0))
    raw = build_graph(rows, 3, device="cpu", dedupe=False)
    assert raw.n_duplicates == 0 and raw.distances[:, 0].min() == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_build_graph_merges_exactly_what_deduplicate_merges(seed):
    # build_graph looks for near copies in its graph instead of a pass over all rows: the
    # groups must be deduplicate()'s, chains and borderline pairs included.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6)) + 50.0
    radius = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    thr = DEFAULT_RTOL * radius
    steps = rng.choice([0.3, 0.9, 0.999, 1.001, 2.0], size=40) * thr
    direction = rng.normal(size=(40, 6))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    X[100:140] = X[60:100] + steps[:, None] * direction  # near copies, some just outside
    X[140:150] = X[100:110] + 0.5 * thr * direction[:10]  # chains of copies
    g = build_graph(X, 5, device="cpu")
    keep, inverse = deduplicate(X)
    np.testing.assert_array_equal(g.keep, keep)
    np.testing.assert_array_equal(g.inverse, inverse)
    # The threshold: rtol times the RMS radius of the rows (no two are bitwise copies).
    radius = float(np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean()))
    assert g.threshold == pytest.approx(DEFAULT_RTOL * radius, rel=1e-6)
    _, ref_i = knn(X[keep], 5, device="cpu")
    np.testing.assert_array_equal(g.indices, ref_i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_copies_of_rows_that_share_their_leading_bytes(dtype):
    # Copies are looked for among rows whose first bytes hash alike, then compared whole:
    # rows that agree on their first 64 bytes but not after are not copies.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 40)).astype(dtype)
    X[:, :16] = 1.0  # every row has the same leading bytes
    X[100:150] = X[:50]  # copies
    X[150] = X[0]
    X[150, -1] = np.nextafter(X[0, -1], np.inf)  # differs in its last bit only
    X[200:210, 30] = 7.0
    X[210:220] = X[200:210]  # copies that are also near one another
    keep, inverse = deduplicate(X, rtol=0)
    _, first = np.unique(X, axis=0, return_index=True)
    assert keep.tolist() == np.sort(first).tolist()
    np.testing.assert_array_equal(X[keep][inverse], X)
    assert 150 in keep and 100 not in keep and 210 not in keep
    g = build_graph(X, 4, device="cpu", rtol=0)
    np.testing.assert_array_equal(g.keep, keep)
    np.testing.assert_array_equal(g.inverse, inverse)


def test_build_graph_too_few_distinct_points():
    X = np.repeat(np.eye(3), 10, axis=0)
    with pytest.raises(TokendimError, match=r"4 distinct points, but there are 3 \(27 duplicate"):
        build_graph(X, 3, device="cpu")
    assert build_graph(X, 2, device="cpu").n_unique == 3


def test_graph_from_arrays_collapses_zero_distances():
    X = np.array([[0.0], [0.0], [1.0], [3.0], [3.0], [7.0]])
    d, i = knn(X, 4, device="cpu")  # rows 0/1 and 3/4 are copies at distance 0
    g = graph_from_arrays(d, i)
    assert g.keep.tolist() == [0, 2, 3, 5]
    assert g.inverse.tolist() == [0, 0, 1, 2, 2, 3]
    # Row 0's distinct neighbours: 1.0 (x=1), 3.0 (x=3, one entry for both copies); the
    # fewest distinct neighbours of any kept row is 2.
    assert g.k == 2
    np.testing.assert_allclose(g.distances[0], [1.0, 3.0])
    assert g.distances.min() > 0
    assert g.indices[0].tolist() == [1, 2]


def test_graph_from_arrays_drops_self_and_sorts():
    d = np.array([[0.0, 2.0, 1.0], [0.0, 1.0, 3.0], [0.0, 2.0, 3.0]])
    i = np.array([[0, 2, 1], [1, 0, 2], [2, 0, 1]])
    g = graph_from_arrays(d, i)
    assert g.keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(g.distances, [[1.0, 2.0], [1.0, 3.0], [2.0, 3.0]])
    np.testing.assert_array_equal(g.indices, [[1, 2], [0, 2], [0, 1]])


@pytest.mark.parametrize(
    ("d", "i", "match"),
    [
        (np.zeros((3, 2)), np.zeros((3, 3), dtype=int), "one shape"),
        (np.ones((3, 2)), np.full((3, 2), 5), "rows of the graph"),
        (-np.ones((3, 2)), np.zeros((3, 2), dtype=int), "non-negative"),
        (np.full((3, 2), np.nan), np.zeros((3, 2), dtype=int), "finite"),
        (np.ones((3, 2)), np.full((3, 2), 0.5), "integers"),
        (np.zeros((3, 1)), np.array([[1], [0], [0]]), "no neighbour that is not a copy"),
    ],
)
def test_graph_from_arrays_bad_input(d, i, match):
    with pytest.raises(TokendimError, match=match):
        graph_from_arrays(d, i)


def test_knngraph_validates_shapes():
    with pytest.raises(TokendimError):
        KNNGraph(np.ones((3, 2)), np.ones((3, 3), dtype=int), np.arange(3), np.arange(3))
    with pytest.raises(TokendimError):
        KNNGraph(np.ones((3, 2)), np.ones((3, 2), dtype=int), np.arange(2), np.arange(3))


# ---------------------------------------------------------------------------------------------
# property: always the brute-force answer


@st.composite
def clouds(draw):
    n = draw(st.integers(3, 40))
    D = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    X += draw(st.sampled_from([0.0, 100.0, -1e4]))
    dups = draw(st.integers(0, n // 3))
    X[:dups] = X[n - dups :] if dups else X[:0]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    k = draw(st.integers(1, n - 1))
    return X.astype(dtype), k


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clouds(), st.sampled_from([None, 1, 3, 16]))
def test_knn_distances_match_brute_force(case, chunk):
    X, k = case
    d, i = knn(X, k, device="cpu", chunk_size=chunk)
    ref_d, _ = brute_force(X, k)
    # The distances are exact (the index order may differ only between exact ties).
    rtol = 1e-12 if X.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(d, ref_d, rtol=rtol, atol=0)
    x64 = X.astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(x64[:, None, :] - x64[i], axis=2), d, rtol=rtol)
    assert not np.any(i == np.arange(len(X))[:, None])
