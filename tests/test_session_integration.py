"""The session end to end: the bundled SmolLM2, and UMAP projections that follow the layer."""

from __future__ import annotations

import numpy as np
import pytest
from planted import planted_layers

from tokendim_widgets import Session

pytestmark = pytest.mark.slow


def test_bundled_smollm2_curve_and_metrics():
    session = Session(
        model="smollm2-135m", prompts="mixed", estimator="twonn", projection_method="pca"
    )
    try:
        session.run().wait(900)
        curve = session.curve
        assert len(curve) == 31
        assert curve["layer"].tolist() == list(range(31))
        values = curve[["dimension", "lower", "upper"]].to_numpy()
        assert np.isfinite(values).all()
        assert (curve["lower"] < curve["dimension"]).all()
        assert (curve["dimension"] < curve["upper"]).all()
        metrics = session.metrics.loc["twonn"]
        assert 0 <= metrics["working_layer"] <= 30
        assert metrics["working_dimension"] >= metrics["final_dimension"] > 0
        assert session.local_ids.shape == (session.hidden_states.n_tokens, 31)
        assert session.hidden_states.hidden_size == 576
        # A second estimator comes from the cached kNN graphs: no new search.
        before = session.results.searches()
        session.estimator = "mle"
        session.wait(120)
        assert len(session.curve) == 31
        assert session.results.searches() == before
    finally:
        session.close()


def test_umap_replaces_the_pca_preview_and_follows_the_layer():
    states = planted_layers((2, 3, 2), n_prompts=10, tokens_per_prompt=60, width=16)
    session = Session.from_hidden_states(states, layer=1)
    kinds = []
    session.observe(lambda change: kinds.append(change["new"]), names="projection_kind")
    try:
        session.run().wait(600)
        assert kinds[0] == "pca" and session.projection_kind == "umap"
        assert session.projection_layer == 1
        first = states.tokens["position"].to_numpy() == 0
        assert np.isfinite(session.projection[~first]).all()
        # Once the background fill has projected layer 2, selecting it is immediate.
        for _ in range(600):
            if session.results.cached_projection(states, 2, "umap", drop_first=True) is not None:
                break
            threading_wait(0.1)
        session.layer = 2
        assert session.projection_layer == 2 and session.projection_kind == "umap"
    finally:
        session.close()


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)
