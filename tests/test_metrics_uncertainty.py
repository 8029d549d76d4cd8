"""Curves report sample size and near copies; metrics carry intervals and a verdict."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from planted import planted_layers

from tokendim_widgets import HiddenStates, TokendimError, compare, id_curve, summarize
from tokendim_widgets.analysis import (
    NearCopyWarning,
    convergence,
    format_metrics,
    gaussian_control,
    null_curves,
    peak_probabilities,
)
from tokendim_widgets.clouds import CloudSpec
from tokendim_widgets.graphs import GraphCache, merge_rtol


@pytest.fixture(scope="module")
def rise_and_fall():
    return planted_layers((2, 4, 8, 5, 3), n_prompts=40, tokens_per_prompt=40, seed=3)


def test_planted_rise_and_fall_is_called_expansion_contraction(rise_and_fall):
    curve = id_curve(rise_and_fall, "twonn")
    m = summarize(curve)
    assert m["verdict"] == "expansion-contraction"
    assert m["working_layer"] == 2
    assert m["expansion_ratio_lower"] > 1 and m["contraction_ratio_lower"] > 1
    for key in ("working_dimension", "final_dimension", "expansion_ratio", "contraction_ratio"):
        assert m[f"{key}_lower"] <= m[key] <= m[f"{key}_upper"]
    assert 0.5 < m["working_layer_probability"] <= 1.0
    p = peak_probabilities(curve)
    assert p.sum() == pytest.approx(1.0)
    assert p.loc[0] == 0.0  # the embedding layer never competes
    assert p.idxmax() == 2


def test_monotone_profile_is_rising_and_names_no_working_space():
    states = planted_layers((2, 3, 5, 7, 9), n_prompts=40, tokens_per_prompt=40, seed=4)
    m = summarize(id_curve(states, "twonn"))
    assert m["verdict"] == "rising"
    assert m["working_layer"] == 4  # the arg-max is the last layer ...
    assert m["contraction_ratio"] == pytest.approx(1.0)  # ... so nothing contracts
    assert m["contraction_ratio_lower"] <= 1.0


def test_flat_and_falling_verdicts():
    flat = pd.DataFrame(
        {"layer": range(5), "dimension": [5.0] * 5, "lower": [3.0] * 5, "upper": [7.0] * 5}
    )
    assert summarize(flat)["verdict"] == "flat"
    falling = pd.DataFrame(
        {
            "layer": range(5),
            "dimension": [9.0, 9.0, 7.0, 5.0, 3.0],
            "lower": [8.8, 8.8, 6.8, 4.8, 2.8],
            "upper": [9.2, 9.2, 7.2, 5.2, 3.2],
        }
    )
    assert summarize(falling)["verdict"] == "falling"


def test_metric_intervals_widen_with_layer_intervals():
    base = {"layer": range(4), "dimension": [3.0, 6.0, 9.0, 5.0]}
    narrow = summarize(
        pd.DataFrame({**base, "lower": [2.9, 5.9, 8.9, 4.9], "upper": [3.1, 6.1, 9.1, 5.1]})
    )
    wide = summarize(pd.DataFrame({**base, "lower": [0, 3, 6, 2], "upper": [6, 9, 12, 8]}))
    width = lambda m: m["working_dimension_upper"] - m["working_dimension_lower"]  # noqa: E731
    assert width(wide) > 5 * width(narrow)
    assert narrow["verdict"] == "expansion-contraction"
    assert wide["verdict"] != "expansion-contraction"  # 6 vs 9 with +-3 is not a clear rise


def test_n_distinct_counts_points_after_merging_copies():
    rng = np.random.default_rng(0)
    unique = rng.normal(size=(300, 16)).astype(np.float32)
    layer0 = np.repeat(unique, 4, axis=0)  # every token four times: an embedding table
    layer1 = rng.normal(size=(1200, 16)).astype(np.float32)
    tokens = pd.DataFrame(
        {
            "prompt": np.repeat(np.arange(40), 30),
            "position": np.tile(np.arange(1, 31), 40),
            "token_id": 0,
            "token": "x",
        }
    )
    curve = id_curve(HiddenStates.from_arrays([layer0, layer1], tokens), "twonn")
    assert curve["n_tokens"].tolist() == [1200, 1200]
    assert curve["n_distinct"].tolist() == [300, 1200]


def _near_copy_cloud(dtype: str) -> HiddenStates:
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(64, 8)))[0]
    cloud = rng.uniform(-1, 1, size=(1200, 8)) @ basis.T + 3.0
    # 10% of the tokens are the same states as others, recomputed at bfloat16 precision.
    copies = cloud[:120] * (1 + 1e-3 * rng.standard_normal(size=(120, 64)))
    X = np.vstack([cloud, copies]).astype(np.float32)
    tokens = pd.DataFrame(
        {"prompt": np.arange(len(X)) % 40, "position": 1, "token_id": 0, "token": "x"}
    )
    return HiddenStates.from_arrays([X], tokens, options={"dtype": dtype})


def test_near_copies_at_bf16_noise_are_merged_and_reported():
    assert merge_rtol("float32") is None and merge_rtol("bfloat16") == 5e-3
    with pytest.warns(NearCopyWarning, match="near copies"):
        fp32 = id_curve(_near_copy_cloud("float32"), "twonn")
    assert fp32["near_copy_fraction"].iloc[0] > 0.1
    assert fp32["dimension"].iloc[0] < 5  # driven down by the copies: the warning is due
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearCopyWarning)
        bf16 = id_curve(_near_copy_cloud("bfloat16"), "twonn")
    assert bf16["n_distinct"].iloc[0] == 1200  # the 120 recomputed copies merged
    assert bf16["near_copy_fraction"].iloc[0] < 0.05
    assert bf16["dimension"].iloc[0] == pytest.approx(8, rel=0.2)
    assert bf16.attrs["compute_dtype"] == "bfloat16"


def test_cosine_metric_equals_euclidean_on_unit_rows(rise_and_fall):
    layers = [rise_and_fall.layer(i) for i in range(rise_and_fall.n_layers)]
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in layers]
    normed = HiddenStates.from_arrays(unit, rise_and_fall.tokens)
    cos = id_curve(rise_and_fall, "twonn", metric="cosine")
    euc = id_curve(normed, "twonn")
    np.testing.assert_allclose(cos["dimension"], euc["dimension"], rtol=1e-6)
    assert cos.attrs["metric"] == "cosine"
    with pytest.raises(TokendimError, match="metric"):
        id_curve(rise_and_fall, "twonn", metric="manhattan")


def test_massive_norm_tokens_are_counted_and_can_be_left_out(rise_and_fall):
    layers = [rise_and_fall.layer(i).copy() for i in range(rise_and_fall.n_layers)]
    sink = rise_and_fall.tokens["position"].to_numpy() == 5
    for x in layers:
        x[sink] *= 500.0
    states = HiddenStates.from_arrays(layers, rise_and_fall.tokens)
    kept = id_curve(states, "twonn")
    dropped = id_curve(states, "twonn", drop_outliers=True)
    assert (kept["n_outliers"] == sink.sum()).all()
    assert (dropped["n_tokens"] == kept["n_tokens"] - sink.sum()).all()


def test_same_n_for_every_layer_and_model(rise_and_fall):
    curve = id_curve(rise_and_fall, "twonn", n=500)
    assert (curve["n_distinct"] == 500).all()
    again = id_curve(rise_and_fall, "twonn", n=500)
    pd.testing.assert_frame_equal(curve, again)  # seeded
    other = planted_layers((3, 6, 4), n_prompts=20, tokens_per_prompt=40, seed=5)
    table = compare({"a": rise_and_fall, "b": other}, match_n="min")
    assert table["n_distinct"].nunique() == 1
    assert table["n_distinct"].iloc[0] == 20 * 39
    with pytest.raises(TokendimError, match="hidden states"):
        compare({"a": curve}, match_n=100)
    with pytest.raises(TokendimError, match="distinct"):
        id_curve(rise_and_fall, "twonn", n=10**6)


def test_convergence_decimates_by_halves(rise_and_fall):
    conv = convergence(rise_and_fall, "twonn", layers=[1, 2], levels=3)
    assert conv["n"].unique().tolist() == [1560, 780, 390]
    assert set(conv["layer"]) == {1, 2}
    big = conv[(conv["layer"] == 2) & (conv["n"] == 1560)]["dimension"].iloc[0]
    assert big == pytest.approx(8, rel=0.2)


def test_gaussian_control_matches_size_and_covariance(rise_and_fall):
    null = gaussian_control(rise_and_fall, seed=0)
    assert null.n_tokens == rise_and_fall.n_tokens and null.n_layers == rise_and_fall.n_layers
    x, y = rise_and_fall.layer(2).astype(np.float64), null.layer(2).astype(np.float64)
    np.testing.assert_allclose(np.cov(y.T), np.cov(x.T), atol=0.05)
    curves = null_curves(rise_and_fall, "twonn", controls=["gaussian"])
    assert set(curves) == {"gaussian"}
    assert "Gaussian control" in curves["gaussian"].attrs["model"]
    with pytest.raises(TokendimError, match="control"):
        null_curves(rise_and_fall, controls=["nonsense"])


def test_format_metrics_shows_intervals_and_verdicts(rise_and_fall):
    graphs = GraphCache(rise_and_fall)
    table = compare({"twonn": id_curve(rise_and_fall, "twonn", graphs=graphs)})
    text = format_metrics(table)
    assert "expansion-contraction" in text
    assert "[" in text and "intervals from" in text


@pytest.mark.parametrize("estimator", ["twonn", "mle", "gride", "correlation"])
def test_staged_graphs_give_the_curves_of_one_deep_graph(rise_and_fall, estimator):
    deep = GraphCache(rise_and_fall)
    staged = GraphCache(rise_and_fall, staged=True, stage_min_rows=0)
    a = id_curve(rise_and_fall, estimator, layers=[1, 2], graphs=deep)
    b = id_curve(rise_and_fall, estimator, layers=[1, 2], graphs=staged)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs.get("replicates") == b.attrs.get("replicates")
    if estimator == "twonn":  # the shallow graphs hold just the two neighbours TwoNN needs
        assert all(staged.cached(layer, CloudSpec()).k == 2 for layer in (1, 2))
    # A later request for more neighbours deepens to the full capacity, once per layer.
    searches = staged.searches
    id_curve(rise_and_fall, "mle", layers=[1, 2], graphs=staged)
    id_curve(rise_and_fall, ("mle", {"k": 40}), layers=[1, 2], graphs=staged)
    assert staged.searches - searches <= 2


def test_a_small_cloud_is_searched_deep_at_once_even_when_staged(rise_and_fall):
    n_rows = len(GraphCache(rise_and_fall).rows(1, CloudSpec()))
    staged = GraphCache(rise_and_fall, staged=True, stage_min_rows=n_rows + 1)
    staged.first_k = 2
    twonn = id_curve(rise_and_fall, "twonn", layers=[1, 2], graphs=staged)
    assert all(staged.cached(layer, CloudSpec()).k == staged.capacity for layer in (1, 2))
    searches = staged.searches
    gride = id_curve(rise_and_fall, "gride", layers=[1, 2], graphs=staged)
    assert staged.searches == searches  # nothing left to deepen
    deep = GraphCache(rise_and_fall)
    pd.testing.assert_frame_equal(
        twonn, id_curve(rise_and_fall, "twonn", layers=[1, 2], graphs=deep)
    )
    pd.testing.assert_frame_equal(
        gride, id_curve(rise_and_fall, "gride", layers=[1, 2], graphs=deep)
    )


def test_layers_on_too_few_points_are_flagged_in_curves_and_metrics():
    from tokendim_widgets.errors import SupportWarning

    rng = np.random.default_rng(2)
    few = np.repeat(rng.normal(size=(7, 32)), 40, axis=0)  # 280 tokens, 7 distinct states
    many = rng.normal(size=(280, 32))
    tokens = pd.DataFrame(
        {"prompt": np.arange(280) % 20, "position": 1, "token_id": 0, "token": "x"}
    )
    states = HiddenStates.from_arrays([many.astype("f4"), few.astype("f4")], tokens)
    with pytest.warns(SupportWarning, match="distinct points"):
        curve = id_curve(states, "twonn")
    assert curve["supported"].tolist() == [True, False]
    m = summarize(curve, peak_from=0)
    assert m["unsupported_layers"] == 1
    assert "too few points" in format_metrics(compare({"c": curve}, peak_from=0))


def test_null_curve_of_a_reinitialised_tiny_model(tiny_dir):
    import tokendim_widgets as td

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "SELECT name FROM users WHERE age > 30;",
        "She opened the door, looked outside and smiled at the rain.",
    ] * 10
    model = tiny_dir("llama")
    states = td.extract(model, texts, progress=False)
    # The tiny model itself is a seed-0 initialisation: its control takes another seed.
    curves = null_curves(states, "twonn", controls=["random_init"], model=model, seed=7, warn=False)
    null = curves["random_init"]
    assert null.attrs["control"] == "random_init"
    assert "random init, seed 7" in null.attrs["model"]
    assert len(null) == states.n_layers
    real = id_curve(states, "twonn", warn=False)
    assert not np.allclose(null["dimension"], real["dimension"])  # other weights, other clouds
    again = null_curves(states, "twonn", controls=["random_init"], model=model, seed=7, warn=False)
    pd.testing.assert_frame_equal(again["random_init"], null)  # seeded (and cached)
