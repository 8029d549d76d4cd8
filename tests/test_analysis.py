"""ID curves, local-ID matrices, clouds and metrics recover a planted dimension profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted import planted_layers

from tokendim_widgets import TokendimError, compare, id_curve, local_id, summarize
from tokendim_widgets.clouds import CloudSpec
from tokendim_widgets.estimators import MLE, TwoNN
from tokendim_widgets.graphs import GraphCache

# Rises to a working space of 8, then contracts: the expansion-contraction shape of the paper.
PROFILE = (2, 4, 8, 5, 3)


@pytest.fixture(scope="module")
def states():
    return planted_layers(PROFILE)


@pytest.fixture(scope="module")
def graphs(states):
    return GraphCache(states)


@pytest.mark.parametrize("estimator", ["twonn", "mle"])
def test_curve_recovers_the_planted_profile(states, graphs, estimator):
    curve = id_curve(states, estimator, graphs=graphs)
    assert list(curve.columns[:8]) == [
        "layer",
        "depth",
        "dimension",
        "lower",
        "upper",
        "estimator",
        "n_tokens",
        "n_distinct",
    ]
    assert curve["layer"].tolist() == list(range(len(PROFILE)))
    # Uniform cubes of dimension <= 8 at N ~ 1500. TwoNN uses only the two nearest neighbours
    # and lands within ~10%. MLE's k=20 neighbourhoods reach the cube's faces: at d=8 almost
    # every one does, and it underestimates by up to ~17% there (boundary bias).
    rtol = {"twonn": 0.15, "mle": 0.2}[estimator]
    np.testing.assert_allclose(curve["dimension"], PROFILE, rtol=rtol)
    assert np.argmax(curve["dimension"].to_numpy()) == 2  # the peak is where it was planted
    assert (curve["lower"] <= curve["dimension"]).all()
    assert (curve["dimension"] <= curve["upper"]).all()
    assert (curve["upper"] - curve["lower"] > 0).all()
    # drop_first (the default) leaves one token per prompt out.
    assert (curve["n_tokens"] == 30 * 49).all()
    assert (curve["n_distinct"] == 30 * 49).all()
    assert curve.attrs["cloud"] == "all" and curve.attrs["drop_first"] is True


def test_graphs_are_searched_once_for_every_estimator_and_k(states):
    graphs = GraphCache(states)
    id_curve(states, "twonn", graphs=graphs)
    searches = graphs.searches
    assert searches == len(PROFILE)
    id_curve(states, "mle", graphs=graphs)
    id_curve(states, MLE(k=10), graphs=graphs)
    id_curve(states, TwoNN(method="mle"), graphs=graphs)
    local_id(states, k=15, graphs=graphs)
    assert graphs.searches == searches


def test_summary_metrics_of_the_planted_profile(states, graphs):
    metrics = summarize(id_curve(states, "twonn", graphs=graphs))
    assert metrics["working_layer"] == 2
    assert metrics["working_depth"] == pytest.approx(0.5)
    assert metrics["working_dimension"] == pytest.approx(8, rel=0.15)
    # The expansion is measured from layer 1 (the first layer of the peak search), not from
    # the embeddings.
    assert metrics["first_dimension"] == pytest.approx(4, rel=0.15)
    assert metrics["expansion_ratio"] == pytest.approx(8 / 4, rel=0.25)
    assert metrics["contraction_ratio"] == pytest.approx(8 / 3, rel=0.25)
    assert metrics["first_dimension"] < metrics["working_dimension"]
    assert metrics["final_dimension"] < metrics["working_dimension"]
    # The mean dimension over depth lies between the smallest and the largest value.
    assert 2 < metrics["auc"] < 8


def test_summarize_exact_arithmetic():
    curve = pd.DataFrame({"layer": [0, 1, 2, 3, 4], "dimension": [2.0, 6.0, 10.0, 8.0, 4.0]})
    m = summarize(curve)
    assert m["working_dimension"] == 10.0
    assert m["working_layer"] == 2
    assert m["first_dimension"] == 6.0  # layer 1: the embeddings stay out
    assert m["expansion_ratio"] == pytest.approx(10 / 6)
    assert m["contraction_ratio"] == 2.5
    # Trapezoid over depth 0, .25, .5, .75, 1: (2+6)/8 + (6+10)/8 + (10+8)/8 + (8+4)/8 = 6.75
    assert m["auc"] == pytest.approx(6.75)


def test_compare_builds_one_row_per_curve(states, graphs):
    table = compare(
        {
            "twonn": id_curve(states, "twonn", graphs=graphs),
            "mle": id_curve(states, "mle", graphs=graphs),
        }
    )
    assert table.index.tolist() == ["twonn", "mle"]
    assert (table["working_layer"] == 2).all()
    assert set(table["estimator"]) == {"twonn", "mle"}


def test_local_id_matrix_is_aligned_with_tokens(states, graphs):
    matrix = local_id(states, k=20, graphs=graphs)
    assert matrix.shape == (states.n_tokens, states.n_layers)
    assert matrix.index.equals(states.tokens.index)
    first = states.tokens["position"].to_numpy() == 0
    assert np.isnan(matrix.to_numpy()[first]).all()
    values = matrix.to_numpy()[~first]
    assert np.isfinite(values).all()
    # The median local estimate tracks the planted dimension of each layer (local MLE is
    # noisy per point and biased low at the cube's boundary, hence the median and 20%).
    np.testing.assert_allclose(np.median(values, axis=0), PROFILE, rtol=0.2)


def test_local_id_keeps_the_first_position_when_asked(states, graphs):
    matrix = local_id(states, k=10, drop_first=False, layers=[0, -1], graphs=graphs)
    assert matrix.columns.tolist() == [0, len(PROFILE) - 1]
    assert np.isfinite(matrix.to_numpy()).all()


def test_cloud_options_select_the_right_tokens(states):
    tokens = states.tokens
    (pooled,) = CloudSpec("all", drop_first=False).groups(tokens)
    assert len(pooled) == states.n_tokens
    (last,) = CloudSpec("last").groups(tokens)
    assert len(last) == 30
    assert (tokens["position"].to_numpy()[last] == 49).all()
    per_prompt = CloudSpec("per_prompt").groups(tokens)
    assert len(per_prompt) == 30
    for group in per_prompt:
        assert len(set(tokens["prompt"].to_numpy()[group])) == 1
        assert 0 not in tokens["position"].to_numpy()[group]


def test_per_prompt_and_last_token_curves():
    # 60 prompts of 40 tokens: per-prompt clouds are small, so the mean is noisier; the
    # last-token cloud has 60 points.
    states = planted_layers((3, 6), n_prompts=60, tokens_per_prompt=40, width=32, seed=1)
    per_prompt = id_curve(states, "twonn", cloud="per_prompt")
    assert per_prompt["dimension"].iloc[0] < per_prompt["dimension"].iloc[1]
    np.testing.assert_allclose(per_prompt["dimension"], [3, 6], rtol=0.35)
    assert (per_prompt["upper"] > per_prompt["lower"]).all()
    last = id_curve(states, "twonn", cloud="last")
    assert (last["n_tokens"] == 60).all()
    np.testing.assert_allclose(last["dimension"], [3, 6], rtol=0.5)


def test_bad_input_raises_clear_errors(states, graphs):
    with pytest.raises(TokendimError, match="estimator"):
        id_curve(states, "nonsense", graphs=graphs)
    with pytest.raises(TokendimError, match="out of range"):
        id_curve(states, "twonn", layers=[7], graphs=graphs)
    with pytest.raises(TokendimError, match="cloud"):
        id_curve(states, "twonn", cloud="sideways", graphs=graphs)
    with pytest.raises(TokendimError, match="Not an estimator"):
        id_curve(states, 3.5, graphs=graphs)
    with pytest.raises(TokendimError, match="empty"):
        summarize(pd.DataFrame({"layer": [], "dimension": []}))
