"""The layer detail: GRIDE's scale curve, the refittable correlation counts, per-prompt IDs, the
one-layer convergence, and the LayerDetail widget that follows a session and selects prompts."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from frontend import send_from_browser
from scipy.spatial.distance import pdist, squareform

from tokendim_widgets import HiddenStates, Session
from tokendim_widgets.errors import TokendimError
from tokendim_widgets.estimators.correlation import replicate_counts
from tokendim_widgets.graphs import GraphCache
from tokendim_widgets.layer_detail import (
    correlation_counts,
    gride_scales,
    layer_convergence,
    prompt_ids,
)
from tokendim_widgets.resampling import bootstrap_interval, group_multiplicities
from tokendim_widgets.widgets import ProjectionView
from tokendim_widgets.widgets.layer_detail import LayerDetail


def _embedded(rng: np.random.Generator, n: int, d: int, width: int = 24) -> np.ndarray:
    basis, _ = np.linalg.qr(rng.normal(size=(width, d)))
    return (rng.normal(size=(n, d)) @ basis.T).astype(np.float32)


def _states(layers: list[np.ndarray], per_prompt: int) -> HiddenStates:
    n = layers[0].shape[0]
    n_prompts = n // per_prompt
    tokens = pd.DataFrame(
        {
            "prompt": np.repeat(np.arange(n_prompts), per_prompt).astype(np.int32),
            "position": np.tile(np.arange(per_prompt), n_prompts).astype(np.int32),
            "token_id": np.zeros(n, dtype=np.int32),
            "token": [f"t{i} " for i in range(n)],
        }
    )
    return HiddenStates.from_arrays(layers, tokens)


def test_gride_scale_curve_of_a_gaussian_is_flat_near_its_dimension():
    rng = np.random.default_rng(0)
    hs = _states([_embedded(rng, 3000, 5)], per_prompt=100)
    table = gride_scales(hs, 0, drop_first=False, device="cpu")
    assert table["n1"].tolist() == [1, 2, 4, 8, 16]
    assert table["n2"].tolist() == [2, 4, 8, 16, 32]
    assert table["dimension"].between(4.3, 5.7).all(), table
    assert table["dimension"].max() - table["dimension"].min() < 0.8
    assert (table["lower"] <= table["dimension"]).all()
    assert (table["dimension"] <= table["upper"]).all()
    assert (table["interval_method"] == "group bootstrap").all()
    assert table["radius"].is_monotonic_increasing


def test_gride_scales_drops_scales_the_cloud_cannot_reach():
    rng = np.random.default_rng(1)
    hs = _states([_embedded(rng, 20, 3)], per_prompt=10)
    table = gride_scales(hs, 0, drop_first=False, device="cpu")
    assert table["n2"].max() <= 19


def test_correlation_counts_are_the_exact_pair_counts():
    rng = np.random.default_rng(2)
    X = rng.random((300, 3)).astype(np.float32)
    hs = _states([X], per_prompt=30)
    cc = correlation_counts(hs, 0, drop_first=False, device="cpu")
    assert cc.n_counted == 300 and cc.counts.shape == (300, cc.radii.size)
    dists = pdist(X.astype(np.float64))
    for b in (10, 40, 80):
        # Ordered pairs closer than the radius (float32 distances: skip radii on a pair).
        r = cc.radii[b]
        if np.any(np.abs(dists - r) < 1e-5 * r):
            continue
        assert cc.counts[:, b].sum() == 2 * np.count_nonzero(dists < r)
    assert np.all(np.diff(cc.counts, axis=1) >= 0)
    assert cc.curve[-1] == pytest.approx(1.0)
    # The same pairs by the prompts of their two points (10 prompts of 30 rows, in order).
    assert cc.by_prompt.shape == (10, 10, cc.radii.size)
    np.testing.assert_array_equal(cc.by_prompt.sum(axis=(0, 1)), cc.counts.sum(axis=0))
    np.testing.assert_array_equal(cc.by_prompt, cc.by_prompt.transpose(1, 0, 2))
    square = squareform(dists)
    np.fill_diagonal(square, np.inf)
    for b in (40, 80):
        r = cc.radii[b]
        if np.any(np.abs(dists - r) < 1e-5 * r):
            continue
        between = (square[:30, 60:90] < r).sum()  # prompt 0 with prompt 2
        assert cc.by_prompt[0, 2, b] == between


def test_correlation_window_refits_from_the_counts():
    rng = np.random.default_rng(3)
    hs = _states([rng.random((2000, 3)).astype(np.float32)], per_prompt=50)
    cc = correlation_counts(hs, 0, drop_first=False, device="cpu")
    fit = cc.fit()
    assert 2.5 < fit["dimension"] < 3.4, fit
    assert fit["lower"] <= fit["dimension"] <= fit["upper"]
    assert fit["interval_method"] == "group bootstrap over prompts"
    assert (fit["r_min"], fit["r_max"]) == pytest.approx(cc.default_window)
    # Another window: the least-squares slope of log C over the grid radii inside it.
    lo, hi = cc.default_window[0] * 0.7, cc.default_window[1] * 2.0
    moved = cc.fit(lo, hi)
    inside = (cc.radii >= lo) & (cc.radii <= hi)
    slope = np.polyfit(np.log(cc.radii[inside]), np.log(cc.curve[inside]), 1)[0]
    assert moved["dimension"] == pytest.approx(slope)
    assert moved["n_radii"] == np.count_nonzero(inside)
    # Its replicates are the correlation dimension's, second-order term included.
    mult = group_multiplicities(cc.by_prompt.shape[0], 200, 0)
    reps = replicate_counts(cc.by_prompt, mult)
    x = np.log(cc.radii[inside])
    slopes = [np.polyfit(x, np.log(rep[inside]), 1)[0] for rep in reps]
    low, high = bootstrap_interval(moved["dimension"], np.asarray(slopes), 0.95)[0]
    assert (moved["lower"], moved["upper"]) == pytest.approx((low, high))
    assert moved["dimension"] != pytest.approx(fit["dimension"])
    with pytest.raises(TokendimError, match="at least three"):
        cc.fit(cc.radii[5], cc.radii[6])
    with pytest.raises(TokendimError, match="r_min < r_max"):
        cc.fit(2.0, 1.0)


def test_prompt_ids_one_per_prompt_and_short_prompts_left_out():
    rng = np.random.default_rng(4)
    low = [_embedded(rng, 120, 2) for _ in range(5)]
    high = [_embedded(rng, 120, 8) for _ in range(5)]
    X = np.vstack(low + high)
    hs = _states([X], per_prompt=120)
    table = prompt_ids(hs, 0)
    assert table["prompt"].tolist() == list(range(10))
    assert (table["n_tokens"] == 119).all()  # position 0 dropped
    assert table["dimension"].iloc[:5].max() < table["dimension"].iloc[5:].min()
    assert table.attrs["left_out"] == []
    # Prompts shorter than min_tokens get no estimate of their own.
    short = prompt_ids(hs, 0, min_tokens=200)
    assert short.empty and short.attrs["left_out"] == list(range(10))


def test_layer_convergence_halves_the_sample():
    rng = np.random.default_rng(5)
    hs = _states([_embedded(rng, 1600, 4)], per_prompt=40)
    table = layer_convergence(hs, 0, levels=3, drop_first=False)
    assert table["n"].tolist() == [1600, 800, 400]
    assert table["dimension"].between(3, 5).all()


@pytest.fixture
def session():
    rng = np.random.default_rng(6)
    layers = [_embedded(rng, 900, d) for d in (3, 6, 4)]
    hs = _states(layers, per_prompt=30)
    s = Session.from_hidden_states(hs, projection_method="pca", k=10, layer=1)
    yield s
    s.close()


def test_layer_detail_follows_the_session_layer(session):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.run().wait(120)
        graphs = GraphCache(session.hidden_states, device="cpu")
        detail = LayerDetail(session, device="cpu", graphs=graphs).wait(120)
        try:
            assert detail.layer == 1
            assert graphs.searches > 0  # the shared cache served the panels
            assert set(detail.panel_status.values()) == {"ready"}, detail.panel_status
            assert [row["n1"] for row in detail.scale_curve] == [1, 2, 4, 8, 16]
            six = detail.scale_curve[0]["dimension"]
            assert len(detail.prompts) == 30
            assert detail.window == pytest.approx(detail.correlation["default_window"])
            assert "dimension" in detail.window_fit
            assert detail.convergence[0]["n"] >= 800
            session.layer = 0
            detail.wait(120)
            assert detail.layer == 0
            assert detail.scale_curve[0]["dimension"] < six - 1
        finally:
            detail.close()


def test_layer_detail_window_and_prompt_selection(session):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.run().wait(120)
        detail = LayerDetail(session, device="cpu").wait(120)
    try:
        lo, hi = detail.correlation["default_window"]
        first = detail.window_fit["dimension"]
        detail.window = [lo * 0.6, hi * 1.8]  # what dragging the window's edges sends
        assert detail.window_fit["r_min"] == pytest.approx(lo * 0.6)
        assert detail.window_fit["dimension"] != pytest.approx(first)
        detail.window = [lo, lo * 1.0000001]
        assert "error" in detail.window_fit
        # A click on prompt 4 in the browser sends this message; the session's other views
        # (here the projection) receive the selection.
        scatter = ProjectionView(session)
        send_from_browser(detail, {"type": "select_prompt", "prompt": 4})
        rows = np.flatnonzero(session.hidden_states.tokens["prompt"].to_numpy() == 4)
        assert np.array_equal(np.sort(session.selected_tokens), rows)
        assert np.array_equal(np.sort(np.asarray(scatter.selected_tokens)), rows)
        assert detail.selected_prompts == [4]
        send_from_browser(detail, {"type": "select_prompt", "prompt": None})
        assert len(session.selected_tokens) == 0 and detail.selected_prompts == []
        # A selection made elsewhere that covers a whole prompt highlights it here.
        session.selected_tokens = np.flatnonzero(
            session.hidden_states.tokens["prompt"].to_numpy() == 7
        )
        assert detail.selected_prompts == [7]
    finally:
        detail.close()


def test_layer_detail_stops_observing_on_close(session):
    before = set(threading.enumerate())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.run().wait(120)
        detail = LayerDetail(session, device="cpu").wait(120)
    (worker,) = [t for t in set(threading.enumerate()) - before if "layer-detail" in t.name]
    assert detail.layer == 1
    detail.close()
    worker.join(5)
    assert not worker.is_alive()  # the detail's worker thread ends
    session.selected_tokens = np.arange(30)
    assert detail.selected_prompts == []
    session.layer = 2
    assert detail.layer == 1
