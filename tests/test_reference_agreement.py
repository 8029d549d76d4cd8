"""Agreement with the reference implementations: scikit-dimension and its stored fixtures.

scikit-dimension (a test-only dependency) ships ``skdim/tests/reference/fixtures.json``:
outputs of R intrinsicDimension, R ider and DADApy on seeded data sets that its
``data.py`` rebuilds. DADApy itself pins numpy < 2 and cannot share this environment, so its
stored outputs stand in for it (RESEARCH.md: where both implement a formula, DADApy and
scikit-dimension agree to 1e-7, so they are one reference per formula).

Where the definitions match, ours reproduce the references to rounding (rtol 1e-6, the
fixtures' own tolerance), far inside the 2% the issue asks:

=========================================  ====================================================
ours                                        reference
=========================================  ====================================================
``TwoNN()`` (linear, discard 0.1)           DADApy ``compute_id_2NN()``; skdim ``TwoNN()``
``TwoNN(method="mle")`` (discard 0)         DADApy ``compute_id_2NN(algorithm="ml")``;
                                            skdim ``TwoNN(method="mle", discard_fraction=0)``
``GRIDE(range_max=64)`` curve and errors    DADApy ``return_id_scaling_gride(range_max=64)``
``MLE(k)``, ``aggregate``, ``unbiased``     R ``maxLikGlobalDimEst``; skdim ``MLE``
``CorrelationDimension(method=             R ider ``corint(k1, k2)``; skdim ``CorrInt``
"two_point")``
=========================================  ====================================================

Definitions that differ, and why ours are kept:

* ``CorrelationDimension()`` (default ``method="fit"``) fits the slope by least squares at 8
  radii across the window instead of the secant through its two ends: it uses the whole
  window, so one end's count does not decide the estimate. Same window, so it stays within
  2% of ``CorrInt`` (checked below; 0.05-0.8% measured).
* Duplicates: the references divide by zero distances (skdim's harmonic MLE returns 0 with 5%
  duplicated rows, DADApy's 2NN-ml 0.0, RESEARCH.md); ours merge copies first, so on
  duplicated data ours equal the references on the deduplicated data.
* ``TwoNN(discard_fraction=0)`` (linear) leaves out the largest ratio, whose empirical
  distribution value 1 has an infinite ``-log(1 - F)``; skdim fits it and raises.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import skdim

from tokendim_widgets.estimators import GRIDE, MLE, CorrelationDimension, TwoNN
from tokendim_widgets.knn import build_graph

_SPEC = importlib.util.find_spec("skdim")
assert _SPEC is not None and _SPEC.submodule_search_locations
REFERENCE = Path(next(iter(_SPEC.submodule_search_locations))) / "tests" / "reference"


def _reference_data():
    sys.path.insert(0, str(REFERENCE))
    try:
        import data  # skdim's deterministic data sets (seeded RandomState streams)
    finally:
        sys.path.remove(str(REFERENCE))
    return data


# skdim's TwoNN computes -log(1 - F) for its plotting attributes also where F = 1.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")

FIXTURES = json.loads((REFERENCE / "fixtures.json").read_text())
ID_DATA = _reference_data().id_datasets()  # ball5_in10 (300 x 10), sphere4_in5 (300 x 5)


@pytest.mark.parametrize("name", sorted(ID_DATA))
def test_dadapy_fixtures(name):
    X, ref = ID_DATA[name], FIXTURES["dadapy"][name]
    assert TwoNN(device="cpu").fit(X).dimension_ == pytest.approx(ref["twonn_base_mu0.9"], rel=1e-6)
    assert TwoNN(method="mle", device="cpu").fit(X).dimension_ == pytest.approx(
        ref["twonn_ml"], rel=1e-6
    )
    g = GRIDE(range_max=64, device="cpu").fit(X)
    assert g.scales_.tolist() == [1, 2, 4, 8, 16, 32]
    np.testing.assert_allclose(g.dimensions_, ref["gride_range64_ids"], rtol=1e-6)
    np.testing.assert_allclose(g.errors_, ref["gride_range64_errs"], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ID_DATA))
def test_r_intrinsicdimension_fixtures(name):
    X, ref = ID_DATA[name], FIXTURES["intrinsicDimension"][name]
    cases = {
        "mle_k20": MLE(k=20),
        "mle_k5": MLE(k=5),
        "mle_k20_unbiased": MLE(k=20, unbiased=True),
        "mle_k20_mean": MLE(k=20, aggregate="mean"),
    }
    for key, est in cases.items():
        assert est.fit(X).dimension_ == pytest.approx(ref[key], rel=1e-6), key


@pytest.mark.parametrize("name", sorted(ID_DATA))
def test_r_ider_fixture(name):
    X, ref = ID_DATA[name], FIXTURES["ider"][name]["corint_k10_k20"]
    two_point = CorrelationDimension(k1=10, k2=20, method="two_point", device="cpu")
    assert two_point.fit(X).dimension_ == pytest.approx(ref, rel=1e-6)
    # From a kNN graph alone the counts are exact below every point's 64th neighbour.
    graph = build_graph(X, 64, device="cpu")
    from_graph = CorrelationDimension(method="two_point").fit(knn=graph)
    assert from_graph.censored_fraction_ == 0.0
    assert from_graph.dimension_ == pytest.approx(ref, rel=1e-6)
    assert CorrelationDimension(device="cpu").fit(X).dimension_ == pytest.approx(ref, rel=0.02)


# ---------------------------------------------------------------------------------------------
# scikit-dimension on the same data


def _embed(Y: np.ndarray, D: int, seed: int) -> np.ndarray:
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(D, Y.shape[1])))
    return Y @ basis.T


def _datasets():
    rng = np.random.default_rng(0)
    return {
        "cube5_in40": _embed(rng.random((1500, 5)), 40, 1),
        "sphere3_in4": skdim.datasets.hyperSphere(1000, 4, random_state=2),
        "gauss8_in50": _embed(rng.normal(size=(2000, 8)), 50, 3),
        "swiss_roll": skdim.datasets.swissRoll3Sph(1200, 0, random_state=4),
    }


DATA = _datasets()


@pytest.fixture(scope="module", params=sorted(DATA))
def dataset(request):
    X = DATA[request.param]
    return X, build_graph(X, 64, device="cpu")


def test_twonn_matches_skdim(dataset):
    X, graph = dataset
    assert TwoNN().fit(X, knn=graph).dimension_ == pytest.approx(
        skdim.id.TwoNN().fit(X).dimension_, rel=1e-6
    )
    ours = TwoNN(method="mle").fit(X, knn=graph).dimension_
    assert ours == pytest.approx(
        skdim.id.TwoNN(method="mle", discard_fraction=0.0).fit(X).dimension_, rel=1e-6
    )
    # With censoring both use the Type-II censored likelihood.
    assert TwoNN(method="mle", discard_fraction=0.1).fit(X, knn=graph).dimension_ == (
        pytest.approx(
            skdim.id.TwoNN(method="mle", discard_fraction=0.1).fit(X).dimension_, rel=1e-6
        )
    )


def test_mle_matches_skdim(dataset):
    X, graph = dataset
    ours = MLE(k=20).fit(X, knn=graph)
    theirs = skdim.id.MLE().fit(X, n_neighbors=20)
    assert ours.dimension_ == pytest.approx(theirs.dimension_, rel=1e-6)
    np.testing.assert_allclose(ours.local_dimensions_, theirs.dimension_pw_, rtol=1e-6)
    assert MLE(k=10, aggregate="mean").fit(X, knn=graph).dimension_ == pytest.approx(
        skdim.id.MLE().fit(X, n_neighbors=10, comb="mean").dimension_, rel=1e-6
    )
    assert MLE(k=20, unbiased=True).fit(X, knn=graph).dimension_ == pytest.approx(
        skdim.id.MLE(unbiased=True).fit(X, n_neighbors=20).dimension_, rel=1e-6
    )


def test_gride_matches_skdim(dataset):
    X, graph = dataset
    ours = GRIDE(range_max=64).fit(X, knn=graph)
    theirs = skdim.id.GRIDE(multiscale=True, range_max=64).fit(X)
    np.testing.assert_array_equal(ours.scales_, theirs.scales_)
    np.testing.assert_allclose(ours.dimensions_, theirs.dimension_scales_, rtol=1e-6)
    np.testing.assert_allclose(ours.errors_, theirs.error_scales_, rtol=1e-6)
    np.testing.assert_allclose(ours.radii_, theirs.radius_scales_, rtol=1e-6)
    at4 = skdim.id.GRIDE(n1=4).fit(X).dimension_
    assert GRIDE(scale=4).fit(X, knn=graph).dimension_ == pytest.approx(at4, rel=1e-6)


def test_correlation_matches_skdim(dataset):
    X, graph = dataset
    theirs = skdim.id.CorrInt(k1=10, k2=20).fit(X).dimension_
    two_point = CorrelationDimension(method="two_point", device="cpu").fit(X, knn=graph)
    assert two_point.dimension_ == pytest.approx(theirs, rel=1e-6)
    # Our default: least squares over the same window (a different estimator, within 2%).
    assert CorrelationDimension(device="cpu").fit(X, knn=graph).dimension_ == pytest.approx(
        theirs, rel=0.02
    )


def test_duplicated_rows_give_the_references_answer_on_distinct_rows():
    # 5% duplicated rows, as in RESEARCH.md. The references are run on the distinct rows.
    X = DATA["cube5_in40"]
    rng = np.random.default_rng(9)
    rows = np.vstack([X, X[rng.choice(len(X), 75, replace=False)]])
    graph = build_graph(rows, 64, device="cpu")
    assert graph.n_duplicates == 75
    pairs = [
        (TwoNN(), skdim.id.TwoNN().fit(X).dimension_),
        (
            TwoNN(method="mle"),
            skdim.id.TwoNN(method="mle", discard_fraction=0.0).fit(X).dimension_,
        ),
        (MLE(k=20), skdim.id.MLE().fit(X, n_neighbors=20).dimension_),
        (GRIDE(), skdim.id.GRIDE().fit(X).dimension_),
        (
            CorrelationDimension(method="two_point", device="cpu"),
            skdim.id.CorrInt().fit(X).dimension_,
        ),
    ]
    for est, reference in pairs:
        assert est.fit(rows, knn=graph).dimension_ == pytest.approx(reference, rel=1e-6)
        assert est.fit(rows).dimension_ == pytest.approx(reference, rel=1e-6)
