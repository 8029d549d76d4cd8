"""2-D projections: PCA preview, UMAP from the kNN graph, alignment, duplicates, warm-up.

The first UMAP test of a session pays umap-learn's import and numba compilation once (a few
seconds when numba's on-disk cache is warm, up to a minute on the very first run after
installing); every UMAP fit here is small (n <= 600, few epochs).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import in_new_process
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors

from tokendim_widgets import projection as P
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.knn import KNNGraph

# --------------------------------------------------------------------------------------------
# data


def two_blobs(n: int = 600, dim: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated Gaussian blobs in ``dim`` dimensions, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    direction = rng.normal(size=dim)
    direction *= 8.0 / np.linalg.norm(direction)
    X = rng.normal(size=(n, dim)) + np.where(labels[:, None] == 1, direction, -direction)
    return X.astype(np.float32), labels


def circle(n: int = 400, dim: int = 100, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A circle of radius 5 in a random 2-D plane of ``dim`` dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)  # evenly: the mean is the centre
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    X = 5.0 * np.c_[np.cos(theta), np.sin(theta)] @ basis.T + noise * rng.normal(size=(n, dim))
    return X + 3.0  # an offset: centring is the function's job


def sk_graph(X: np.ndarray, k: int) -> KNNGraph:
    """A kNN graph made with scikit-learn, independently of our search (distinct points)."""
    d, i = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    n = X.shape[0]
    assert (i[:, 0] == np.arange(n)).all()  # distinct points: self comes first
    return KNNGraph(d[:, 1:], i[:, 1:], np.arange(n), np.arange(n))


def procrustes_residual(Y: np.ndarray, reference: np.ndarray) -> float:
    """Relative residual of the best similarity fit of Y onto reference."""
    Z = P.align_to(Y, reference)
    r = reference - reference.mean(axis=0)
    return float(np.linalg.norm(Z - reference) / np.linalg.norm(r))


# --------------------------------------------------------------------------------------------
# PCA preview


def test_pca_shape_dtype_and_deterministic() -> None:
    X, _ = two_blobs()
    Y = P.pca_2d(X)
    assert Y.shape == (600, 2) and Y.dtype == np.float32
    assert np.array_equal(Y, P.pca_2d(X))


def test_pca_matches_exact_svd_up_to_sign() -> None:
    rng = np.random.default_rng(1)
    scales = np.r_[10.0, 6.0, np.geomspace(3.0, 0.1, 198)]  # a gap after the top two
    X = rng.normal(size=(800, 200)) * scales  # randomized path (D > 42)
    Xc = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    exact = Xc @ vt[:2].T
    Y = P.pca_2d(X).astype(np.float64)
    for j in range(2):
        sign = np.sign(Y[:, j] @ exact[:, j])
        np.testing.assert_allclose(Y[:, j], sign * exact[:, j], atol=1e-4 * np.abs(exact).max())
    assert Y[:, 0].var() > Y[:, 1].var()


def test_pca_on_a_flat_spectrum_captures_the_top_variance() -> None:
    """Without a gap the top plane is ill-defined; the preview must still show (nearly) the
    most variance any plane can."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(800, 200)) * np.geomspace(10.0, 0.1, 200)
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    Y = P.pca_2d(X).astype(np.float64)
    assert np.sum(Y**2) / (s[0] ** 2 + s[1] ** 2) > 0.995


@pytest.mark.parametrize("dim", [10, 200])  # exact SVD and randomized paths
def test_pca_sign_convention_is_a_property_of_the_cloud(dim: int) -> None:
    rng = np.random.default_rng(2)
    # Skewed along both principal axes, so the third moment decides the orientation.
    X = rng.exponential(size=(500, dim)) * np.r_[5.0, 3.0, np.full(dim - 2, 0.5)]
    Y = P.pca_2d(X)
    tol = 1e-4 * float(np.abs(Y).max())
    np.testing.assert_allclose(P.pca_2d(-X), Y, atol=tol)  # sign of the data
    Q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    np.testing.assert_allclose(P.pca_2d(X @ Q), Y, atol=tol)  # basis it is written in
    perm = rng.permutation(500)
    np.testing.assert_allclose(P.pca_2d(X[perm]), Y[perm], atol=tol)  # row order
    np.testing.assert_allclose(P.pca_2d(X, seed=7), Y, atol=tol)  # the randomized start
    assert (np.mean(Y.astype(np.float64) ** 3, axis=0) > 0).all()


def test_pca_recovers_a_circle() -> None:
    X = circle()
    Y = P.pca_2d(X).astype(np.float64)
    radius = np.linalg.norm(Y - Y.mean(axis=0), axis=1)
    assert radius.std() / radius.mean() < 0.02
    assert trustworthiness(X, Y, n_neighbors=10) > 0.99


def test_pca_separates_two_blobs_on_the_first_axis() -> None:
    X, labels = two_blobs()
    Y = P.pca_2d(X)
    first = Y[:, 0]
    assert first[labels == 0].max() < first[labels == 1].min() or (
        first[labels == 1].max() < first[labels == 0].min()
    )


def test_pca_large_common_offset_costs_no_precision() -> None:
    X = circle(dim=50).astype(np.float32)
    shifted = (X.astype(np.float64) + 1000.0).astype(np.float32)
    Y, Z = P.pca_2d(X), P.pca_2d(shifted)

    # float32 stores the shifted cloud to ~1e-4 absolute; the pictures agree to that level.
    # A circle's two principal directions have equal variance, so the picture may turn by
    # the rounding's angle (platform-dependent): compare what a rotation leaves alone, the
    # distances between the points of the picture.
    def distances(A: np.ndarray) -> np.ndarray:
        return np.linalg.norm(A[:, None, :] - A[None, :, :], axis=-1)

    np.testing.assert_allclose(distances(Z), distances(Y), atol=2e-3)


def test_pca_small_and_degenerate_inputs() -> None:
    line = np.arange(10.0).reshape(-1, 1)
    Y = P.pca_2d(line)
    assert (Y[:, 1] == 0).all() and np.ptp(Y[:, 0]) > 0
    assert (P.pca_2d(np.ones((1, 5))) == 0).all()
    assert (P.pca_2d(np.ones((20, 5))) == 0).all()  # one distinct point
    ints = np.random.default_rng(0).integers(0, 9, size=(30, 4))
    np.testing.assert_allclose(P.pca_2d(ints), P.pca_2d(ints.astype(float)), atol=1e-5)
    half = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float16)
    assert P.pca_2d(half).dtype == np.float32


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(5),
        np.zeros((2, 3, 4)),
        np.zeros((0, 3)),
        np.array([[1.0, np.nan], [0.0, 1.0]]),
        np.array([["a", "b"], ["c", "d"]]),
        np.ones((3, 2), dtype=complex),
    ],
)
def test_pca_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(TokendimError):
        P.pca_2d(bad)


PCA_WITHOUT_THREADPOOLCTL = """
import sys
import numpy as np
sys.modules["threadpoolctl"] = None  # as without threadpoolctl: `import` fails
from tokendim_widgets import projection as P
np.save(sys.argv[2], P.pca_2d(np.load(sys.argv[1])))
"""


def test_pca_same_picture_with_or_without_the_blas_thread_limit(tmp_path: Path) -> None:
    X, _ = two_blobs(n=300)
    limited = P.pca_2d(X)  # small: one BLAS thread when threadpoolctl is there
    np.save(tmp_path / "X.npy", X)
    in_new_process(PCA_WITHOUT_THREADPOOLCTL, tmp_path / "X.npy", tmp_path / "Y.npy")
    unlimited = np.load(tmp_path / "Y.npy")
    np.testing.assert_allclose(unlimited, limited, atol=1e-4 * float(np.abs(limited).max()))


def test_pca_rejects_bad_seed() -> None:
    with pytest.raises(TokendimError, match="seed"):
        P.pca_2d(np.ones((3, 3)), seed=-1)


# --------------------------------------------------------------------------------------------
# alignment


@pytest.mark.parametrize("reflect", [False, True])
def test_align_recovers_rotation_reflection_scale_and_shift(reflect: bool) -> None:
    rng = np.random.default_rng(3)
    A = rng.normal(size=(200, 2))
    angle = 0.7
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if reflect:
        R = R @ np.diag([1.0, -1.0])
    B = 2.5 * A @ R + np.array([4.0, -7.0])
    np.testing.assert_allclose(P.align_to(B, A), A, atol=1e-5)
    assert P.align_to(B, A).dtype == np.float32


def test_align_without_reflection_keeps_handedness() -> None:
    rng = np.random.default_rng(4)
    A = rng.normal(size=(100, 2)) * [3.0, 1.0]
    B = A * [1.0, -1.0]  # a mirror image
    Z = P.align_to(B, A, reflection=False).astype(np.float64)
    # The map B -> Z is linear (plus shift); its determinant must stay positive.
    Bc = np.c_[B, np.ones(len(B))]
    M = np.linalg.lstsq(Bc, Z, rcond=None)[0][:2]
    assert np.linalg.det(M) > 0
    assert np.linalg.norm(Z - A) > 0.1 * np.linalg.norm(A)  # cannot match a mirror exactly
    np.testing.assert_allclose(P.align_to(B, A), A, atol=1e-5)  # with reflection it can


def test_align_without_scale_keeps_size() -> None:
    rng = np.random.default_rng(5)
    A = rng.normal(size=(50, 2))
    Z = P.align_to(3.0 * A, A, scale=False).astype(np.float64)
    np.testing.assert_allclose(
        np.linalg.norm(Z - Z.mean(0)), np.linalg.norm(3.0 * A - 3.0 * A.mean(0)), rtol=1e-5
    )


def test_align_ignores_undefined_rows_and_checks_shapes() -> None:
    rng = np.random.default_rng(6)
    A = rng.normal(size=(60, 2))
    B = -A + 1.0
    B[5] = np.nan
    Z = P.align_to(B, A)
    assert np.isnan(Z[5]).all()
    np.testing.assert_allclose(np.delete(Z, 5, 0), np.delete(A, 5, 0), atol=1e-5)
    with pytest.raises(TokendimError, match="same shape"):
        P.align_to(A, A[:-1])
    with pytest.raises(TokendimError, match="two rows"):
        P.align_to(np.full((3, 2), np.nan), A[:3])


# --------------------------------------------------------------------------------------------
# duplicates, epochs, layer order


def test_spread_duplicates_makes_small_deterministic_florets() -> None:
    rng = np.random.default_rng(7)
    base = (rng.normal(size=(20, 2)) * 10).astype(np.float32)
    inverse = np.r_[np.arange(20), np.zeros(9, dtype=int), np.full(3, 5)]
    Y = base[inverse]
    Z = P.spread_duplicates(Y, inverse, amount=0.01)
    assert np.array_equal(Z, P.spread_duplicates(Y, inverse, amount=0.01))
    np.testing.assert_array_equal(Z[:20], Y[:20])  # the first row of each group stays
    assert len(np.unique(Z, axis=0)) == len(Z)  # every copy visible
    rms = np.sqrt(np.mean(np.sum((Y - Y.mean(0)) ** 2, axis=1)))
    moved = np.linalg.norm(Z - Y, axis=1)
    assert moved[20:29].max() <= 0.01 * rms * 3.0 + 1e-5  # 9 copies: radius <= sqrt(9) steps
    assert np.array_equal(P.spread_duplicates(Y, inverse, amount=0.0), Y.astype(np.float32))
    with pytest.raises(TokendimError):
        P.spread_duplicates(Y, inverse[:-1])
    with pytest.raises(TokendimError):
        P.spread_duplicates(Y, inverse, amount=-1.0)


def test_auto_epochs_fewer_for_larger_clouds() -> None:
    sizes = [10, 100, 1000, 1500, 3000, 5000, 7500, 10_000, 100_000, 10**7]
    epochs = [P.auto_epochs(n) for n in sizes]
    assert all(a >= b for a, b in itertools.pairwise(epochs))
    assert epochs[0] == 500 and epochs[-1] == 100
    assert P.auto_epochs(5000) == 150


def test_layer_order_goes_outwards_from_the_start() -> None:
    order = P.layer_order(7, 2)
    assert sorted(order) == list(range(7)) and order[0] == 2
    distances = [abs(layer - 2) for layer in order]
    assert distances == sorted(distances)
    with pytest.raises(TokendimError):
        P.layer_order(3, 3)


# --------------------------------------------------------------------------------------------
# UMAP


def test_umap_separates_two_blobs() -> None:
    X, labels = two_blobs()
    Y = P.umap_2d(X, knn=sk_graph(X, 15), n_epochs=100)
    assert Y.shape == (600, 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    assert silhouette_score(Y, labels) > 0.7


def test_umap_keeps_the_neighbourhoods_of_a_circle() -> None:
    X = circle(n=400)
    Y = P.umap_2d(X, knn=sk_graph(X, 15), n_epochs=100)
    assert trustworthiness(X, Y, n_neighbors=10) > 0.95


def test_umap_is_reproducible_with_a_seed() -> None:
    X, _ = two_blobs(n=300, seed=1)
    graph = sk_graph(X, 15)
    Y1 = P.umap_2d(X, knn=graph, n_epochs=60)
    Y2 = P.umap_2d(X, knn=graph, n_epochs=60)
    assert np.array_equal(Y1, Y2)  # serial SGD with a fixed seed: bit for bit
    Y3 = P.umap_2d(X, knn=graph, n_epochs=60, seed=1)
    assert not np.array_equal(Y1, Y3)


def test_umap_from_a_graph_searches_no_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    import umap.umap_

    import tokendim_widgets.knn as knn_module

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a neighbour search ran")

    class NoNNDescent:
        def __init__(self, *args: object, **kwargs: object) -> None:
            forbidden()

    monkeypatch.setattr(umap.umap_, "NNDescent", NoNNDescent)
    monkeypatch.setattr(umap.umap_, "nearest_neighbors", forbidden)
    monkeypatch.setattr(umap.umap_, "pairwise_distances", forbidden)
    monkeypatch.setattr(knn_module, "build_graph", forbidden)
    monkeypatch.setattr(knn_module, "knn", forbidden)
    X, _ = two_blobs(n=300, seed=2)  # < 4096 points: umap-learn's all-pairs path if it could
    Y = P.umap_2d(X, knn=sk_graph(X, 20), n_epochs=30)  # extra columns are ignored
    assert Y.shape == (300, 2) and np.isfinite(Y).all()


def test_umap_accepts_a_distances_indices_pair_and_searches_when_none() -> None:
    X, _ = two_blobs(n=300, seed=3)
    graph = sk_graph(X, 15)
    Y_graph = P.umap_2d(X, knn=graph, n_epochs=30)
    Y_pair = P.umap_2d(X, knn=(graph.distances, graph.indices), n_epochs=30)
    np.testing.assert_array_equal(Y_pair, Y_graph)
    from tokendim_widgets.knn import build_graph

    # None searches here, exactly as build_graph does (UMAP is chaotic: the float32 distances
    # of scikit-learn, ~1e-6 off, already give another layout).
    Y_none = P.umap_2d(X, n_epochs=30)
    np.testing.assert_array_equal(Y_none, P.umap_2d(X, knn=build_graph(X, 14), n_epochs=30))


def test_umap_gives_duplicates_their_representatives_position() -> None:
    from tokendim_widgets.knn import build_graph

    X, _ = two_blobs(n=300, seed=4)
    rows = np.r_[np.arange(300), np.repeat(np.arange(10), 4)]  # 40 copies of 10 points
    Xd = X[rows]
    graph = build_graph(Xd, 15, device="cpu")
    assert graph.n_unique == 300
    Y = P.umap_2d(Xd, knn=graph, n_epochs=30)
    assert Y.shape == (340, 2)
    for original in range(10):
        group = np.flatnonzero(rows == original)
        assert (Y[group] == Y[original]).all()
    Z = P.umap_2d(Xd, knn=graph, n_epochs=30, jitter=0.003)
    assert len(np.unique(Z, axis=0)) == 340  # stacked points made visible
    np.testing.assert_array_equal(Z[:300], Y[:300])  # representatives do not move
    spread = np.linalg.norm(Z[300:] - Y[300:], axis=1)
    assert 0 < spread.max() < 0.05 * np.ptp(Y, axis=0).max()


def clusters(n: int = 480, dim: int = 40, n_clusters: int = 6, seed: int = 0) -> np.ndarray:
    """Gaussian clusters: UMAP places them in an arbitrary arrangement."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 3.0
    return (centres[np.arange(n) % n_clusters] + rng.normal(size=(n, dim))).astype(np.float32)


def test_umap_from_an_init_layout_stays_in_its_frame() -> None:
    """A layer initialised from its neighbour's layout moves little and keeps the frame."""
    rng = np.random.default_rng(5)
    X = clusters(seed=5)
    X_next = X + 0.3 * rng.normal(size=X.shape).astype(np.float32)  # the next "layer"
    Y = P.umap_2d(X, knn=sk_graph(X, 15), n_epochs=80)
    graph_next = sk_graph(X_next, 15)
    Y_warm = P.umap_2d(X_next, knn=graph_next, n_epochs=80, init=Y)
    Y_cold = P.umap_2d(X_next, knn=graph_next, n_epochs=80, init="spectral")
    warm, cold = procrustes_residual(Y_warm, Y), procrustes_residual(Y_cold, Y)
    assert warm < 0.5 * cold
    # Returned aligned to the init: the same centre and size as the layout it started from.
    np.testing.assert_allclose(Y_warm.mean(0), Y.mean(0), atol=0.05 * np.ptp(Y))
    ratio = np.linalg.norm(Y_warm - Y_warm.mean(0)) / np.linalg.norm(Y - Y.mean(0))
    assert 0.8 < ratio < 1.25


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_neighbors": 30}, "neighbours per point"),
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"n_neighbors": 2.5}, "n_neighbors"),
        ({"min_dist": 2.0}, "min_dist"),
        ({"n_epochs": 0}, "n_epochs"),
        ({"n_epochs": "many"}, "n_epochs"),
        ({"init": "random"}, "init"),
        ({"init": np.zeros((10, 2))}, "one row per row"),
        ({"init": np.full((100, 2), np.nan)}, "NaN"),
        ({"seed": -3}, "seed"),
        ({"jitter": -1.0}, "jitter"),
        ({"knn": "graph"}, "KNNGraph"),
    ],
)
def test_umap_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    X = np.random.default_rng(0).normal(size=(100, 5))
    kwargs.setdefault("knn", sk_graph(X, 20))
    with pytest.raises(TokendimError, match=match):
        P.umap_2d(X, **kwargs)  # type: ignore[arg-type]


def test_umap_rejects_a_graph_of_another_cloud_or_too_few_points() -> None:
    X = np.random.default_rng(0).normal(size=(100, 5))
    with pytest.raises(TokendimError, match="rows"):
        P.umap_2d(X[:90], knn=sk_graph(X, 15))
    with pytest.raises(TokendimError, match="distinct points"):
        P.umap_2d(X[:15], knn=sk_graph(X[:15], 14))


# Warm-ups in a new process: this one's may have warmed umap-learn up already.
WARM_UP_WITHOUT_UMAP = """
import sys
sys.modules["umap"] = None  # makes `import umap` fail
from tokendim_widgets import projection as P
from tokendim_widgets.errors import TokendimError
try:
    P.warm_up(background=False)
except TokendimError as exc:
    assert "umap-learn" in str(exc), exc
else:
    raise AssertionError("the warm-up did not fail")
future = P.warm_up(background=True)  # a failed warm-up is tried again
assert isinstance(future.exception(timeout=60), TokendimError), future.exception()
assert not P.umap_ready()
"""


def test_missing_umap_learn_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
    X = np.random.default_rng(0).normal(size=(100, 5))
    with pytest.raises(TokendimError, match=r"pip install \"tokendim-widgets\[umap\]\""):
        P.umap_2d(X, knn=sk_graph(X, 15))
    in_new_process(WARM_UP_WITHOUT_UMAP)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert P.umap_available() is False
    assert P.pca_2d(X).shape == (100, 2)  # the preview works without umap-learn


def test_a_wrong_umap_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.setitem(sys.modules, "umap", types.ModuleType("umap"))  # PyPI's other "umap"
    X = np.random.default_rng(0).normal(size=(100, 5))
    with pytest.raises(TokendimError, match="not umap-learn"):
        P.umap_2d(X, knn=sk_graph(X, 15))


WARM_UP = """
from tokendim_widgets import projection as P
assert not P.umap_ready()
future = P.warm_up(background=True)
assert future.result(timeout=600) is None
assert P.umap_ready()
assert P.warm_up() is future
assert P.umap_available() is True
"""


def test_warm_up_returns_one_future_and_sets_ready() -> None:
    in_new_process(WARM_UP)


# The background warm-up yields the CPU to the foreground work (nice is per thread on Linux).
WARM_UP_PRIORITY = """
import os, threading, time
from tokendim_widgets import projection as P
before = os.getpriority(os.PRIO_PROCESS, 0)
future = P.warm_up(background=True)
(thread,) = [t for t in threading.enumerate() if t.name == "tokendim-umap-warm-up"]
seen = set()
while thread.is_alive() and 19 not in seen:
    try:
        seen.add(os.getpriority(os.PRIO_PROCESS, thread.native_id))
    except OSError:  # the thread has just ended
        break
    time.sleep(0.001)
assert 19 in seen, seen
assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this thread keeps its priority
assert future.result(timeout=600) is None
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_background_warm_up_runs_at_the_lowest_priority() -> None:
    in_new_process(WARM_UP_PRIORITY)


# --------------------------------------------------------------------------------------------
# layers


def drifting_layers(n_layers: int = 4, n: int = 300, seed: int = 8) -> list[np.ndarray]:
    """Layers of one cloud that change a little from one to the next. The top two principal
    variances are nearly equal, so a raw PCA preview spins freely from layer to layer."""
    rng = np.random.default_rng(seed)
    base = circle(n=n, dim=30, noise=0.3, seed=seed)
    layers = [base]
    for _ in range(n_layers - 1):
        layers.append(layers[-1] + 0.15 * rng.normal(size=base.shape))
    return layers


def test_layer_projector_aligns_pca_previews_into_motion() -> None:
    layers = drifting_layers()
    projector = P.LayerProjector()
    aligned = projector.project_all(layers, start=1, kind="pca")
    raw = [P.pca_2d(X) for X in layers]
    assert projector.init_from_[("pca", 1)] is None
    assert projector.init_from_[("pca", 0)] == 1 and projector.init_from_[("pca", 3)] == 2
    raw_steps = []
    for a, b, ra, rb in zip(aligned, aligned[1:], raw, raw[1:], strict=False):
        step = np.linalg.norm(b - a) / np.linalg.norm(a - a.mean(0))
        raw_steps.append(np.linalg.norm(rb - ra) / np.linalg.norm(ra - ra.mean(0)))
        assert step < 0.2
        assert step <= raw_steps[-1] + 1e-6
    assert max(raw_steps) > 0.5  # the raw previews do jump somewhere: alignment was needed
    np.testing.assert_allclose(aligned[1], raw[1])  # the first of the chain is not moved


def test_layer_projector_chains_umap_layouts() -> None:
    rng = np.random.default_rng(9)
    layers = [clusters(seed=9)]
    for _ in range(2):
        layers.append(layers[-1] + 0.3 * rng.normal(size=layers[0].shape).astype(np.float32))
    graphs = [sk_graph(X, 15) for X in layers]
    projector = P.LayerProjector(n_epochs=60)
    chained = projector.project_all(layers, graphs, start=0)
    assert projector.init_from_[("umap", 0)] is None
    assert projector.init_from_[("umap", 1)] == 0 and projector.init_from_[("umap", 2)] == 1
    independent = [
        P.umap_2d(X, knn=g, n_epochs=60, init="spectral")
        for X, g in zip(layers, graphs, strict=True)
    ]
    for j in (1, 2):
        assert procrustes_residual(chained[j], chained[j - 1]) < procrustes_residual(
            independent[j], independent[j - 1]
        )
    projector.pca(5, layers[0])
    with pytest.raises(TokendimError, match="same tokens"):
        projector.pca(6, layers[0][:-1])


# --------------------------------------------------------------------------------------------
# numba's on-disk cache of umap-learn's kernels, across processes

_CHILD = r"""
import json, sys, numpy as np
from tokendim_widgets import projection as P
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 8)).astype(np.float32)
d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
np.fill_diagonal(d2, np.inf)
i = np.argsort(d2, axis=1)[:, :14]
d = np.sqrt(np.take_along_axis(d2, i, axis=1))
Y = P.umap_2d(X, knn=(d, i), n_epochs=40)
import umap.umap_ as uu
stats = uu.smooth_knn_dist.stats
print(json.dumps({"Y": Y.tolist(), "cached": stats.cache_path is not None,
                  "hits": len(stats.cache_hits), "misses": len(stats.cache_misses)}))
"""


def _child(env_extra: dict[str, str]) -> dict[str, Any]:
    root = Path(P.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_umap_kernels_persist_across_processes_with_identical_results() -> None:
    """A second process loads the compiled kernels instead of compiling them, and the layout
    is bit-identical to one compiled in memory with the cache turned off."""
    plain = _child({"TOKENDIM_UMAP_CACHE": "0"})
    assert plain["cached"] is False
    _child({})  # compiles and saves (or already finds them saved)
    again = _child({})
    assert again["cached"] is True
    assert again["hits"] >= 1 and again["misses"] == 0
    assert again["Y"] == plain["Y"]
