"""The reactive session: results follow the latest parameters, and only what changed is redone."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from planted import planted_layers

from tokendim_widgets import Session, TokendimError

PROFILE = (2, 5, 3)


@pytest.fixture()
def session():
    states = planted_layers(PROFILE, n_prompts=20, tokens_per_prompt=40, width=32)
    s = Session.from_hidden_states(states, projection_method="pca")
    yield s
    s.close()


def searches(session: Session) -> int:
    return session.results.searches()


def test_first_run_publishes_every_result(session):
    assert session.curve is None
    session.run().wait(60)
    assert session.status == "done" and not session.busy and session.error == ""
    np.testing.assert_allclose(session.curve["dimension"], PROFILE, rtol=0.2)
    assert session.local_ids.shape == (800, 3)
    assert session.projection.shape == (800, 2)
    assert session.projection_kind == "pca"
    first = session.hidden_states.tokens["position"].to_numpy() == 0
    assert np.isnan(session.projection[first]).all()
    assert np.isfinite(session.projection[~first]).all()
    # The layer starts at the curve's peak when the user has not chosen one.
    assert session.layer == 1 == session.projection_layer
    assert session.metrics.loc["twonn", "working_layer"] == 1


def test_changing_k_or_estimator_never_searches_again(session):
    session.run().wait(60)
    before = searches(session)
    session.k = 10
    session.wait(60)
    assert session.local_ids.attrs["k"] == 10
    session.estimator = "mle"
    session.wait(60)
    assert session.curve.attrs["estimator"] == "mle(k=10)"
    session.overlay = ["twonn"]
    session.wait(60)
    assert set(session.curves) == {"mle(k=10)", "twonn"}
    assert set(session.metrics.index) == {"mle(k=10)", "twonn"}
    assert searches(session) == before


def test_cached_layer_change_is_published_at_once(session):
    session.run().wait(60)
    # Wait for the background fill to project every layer.
    for _ in range(200):
        if len(session.results.projections(session.hidden_states, drop_first=True)) >= 3:
            break
        threading.Event().wait(0.05)
    session.layer = 0
    # Published synchronously, in this thread: no wait() needed.
    assert session.projection_layer == 0
    assert session.projection is session.results.cached_projection(
        session.hidden_states, 0, "pca", drop_first=True
    )


def test_one_hundred_rapid_changes_end_on_the_last_parameters(session):
    session.run().wait(60)
    rng = random.Random(0)
    choices = [("twonn", None), ("mle", 5), ("mle", 12), ("gride", None), ("mle", 20)]
    last = None

    def hammer(n: int) -> None:
        nonlocal last
        for _ in range(n):
            name, k = rng.choice(choices)
            k = k or rng.choice([6, 8, 14])
            with session.hold_trait_notifications():
                session.estimator = name
                session.k = k
            last = (name, k)

    # Half from a second thread, as when comm handlers run off the main thread.
    worker = threading.Thread(target=hammer, args=(50,))
    worker.start()
    worker.join()
    hammer(50)
    session.wait(120)
    name, k = last
    assert session.estimator == name and session.k == k
    assert session.curve.attrs["estimator"].startswith(name)
    if name == "mle":
        assert session.curve.attrs["params"]["k"] == k
    assert session.local_ids.attrs["k"] == k
    assert session.status == "done"


def test_an_error_is_shown_and_the_session_stays_usable(session):
    session.run().wait(60)
    good = session.curve
    session.estimator = "nonsense"
    with pytest.raises(TokendimError, match="Unknown estimator"):
        session.wait(60)
    assert "nonsense" in session.error and session.status == "error"
    assert session.curve is good  # the last good results stay on screen
    session.estimator = "mle"
    session.wait(60)
    assert session.error == "" and session.curve.attrs["estimator"] == "mle"


def test_a_bad_layer_is_an_error_not_a_crash(session):
    session.run().wait(60)
    session.layer = 99
    with pytest.raises(TokendimError, match="Layer 99"):
        session.wait(60)
    session.layer = 2
    session.wait(60)
    assert session.projection_layer == 2 and session.error == ""


def test_pinned_curves_stay_beside_new_ones(session):
    session.run().wait(60)
    label = session.pin("planted twonn")
    session.estimator = "mle"
    session.wait(60)
    assert set(session.curves) == {"mle", label}
    assert label in session.metrics.index
    session.unpin(label)
    assert set(session.curves) == {"mle"}


def test_unknown_parameter_is_rejected():
    with pytest.raises(TokendimError, match="Unknown session parameter"):
        Session(estimatr="mle")


def test_a_model_reference_and_its_shuffled_control(tiny_dir):
    prompts = [
        "The quick brown fox jumps over the lazy dog.",
        "A language model moves each token through its layers.",
        "She opened the door, looked outside and smiled at the rain.",
    ] * 8
    s = Session(model=tiny_dir("llama"), prompts=prompts, projection_method="pca", k=5)
    try:
        s.run().wait(120)
        plain = s.hidden_states.tokens
        assert s.hidden_states.n_layers == 4 and len(s.curve) == 4
        s.shuffled = True
        s.wait(120)
        shuffled = s.hidden_states.tokens
        # The same tokens in each prompt, in another order.
        for p in range(len(prompts)):
            a = plain.loc[plain["prompt"] == p, "token_id"].tolist()
            b = shuffled.loc[shuffled["prompt"] == p, "token_id"].tolist()
            assert sorted(a) == sorted(b)
        assert (plain["token_id"].to_numpy() != shuffled["token_id"].to_numpy()).any()
        assert len(s.curve) == 4 and s.error == ""
    finally:
        s.close()


def test_null_controls_are_drawn_beside_the_curve(session):
    session.controls = ["gaussian"]
    session.run().wait(120)
    labels = [label for label in session.curves if "control" in label]
    assert labels == ["twonn · gaussian control"]
    null = session.curves[labels[0]]
    assert null.attrs["control"] == "gaussian"
    assert len(null) == len(session.curve)
    assert labels[0] in session.metrics.index
    session.controls = []
    session.wait(60)
    assert not [label for label in session.curves if "control" in label]


def test_new_states_never_get_the_curve_of_other_states(tiny_dir, monkeypatch):
    # CPython reuses the id() of a freed object; make every id collide, as the worst case of
    # that reuse: results cached for one HiddenStates must never be served for another.
    import tokendim_widgets.session as session_module
    from tokendim_widgets import id_curve, local_id

    monkeypatch.setattr(session_module, "id", lambda obj: 1, raising=False)
    texts = ["The quick brown fox jumps over the lazy dog.", "SELECT name FROM users;"] * 6
    other = ["A language model moves each token through its layers, one by one."] * 12
    s = Session(model=tiny_dir("llama"), prompts=texts, projection_method="pca", k=5)
    try:
        s.run().wait(120)
        first = s.curve["dimension"].to_numpy()
        s.prompts = other
        s.wait(120)
        states = s.hidden_states
        fresh = id_curve(states, "twonn")
        np.testing.assert_array_equal(s.curve["dimension"], fresh["dimension"])
        assert not np.array_equal(s.curve["dimension"].to_numpy(), first)
        expected = local_id(states, 5)
        np.testing.assert_array_equal(s.local_ids.to_numpy(), expected.to_numpy())
    finally:
        s.close()


def test_a_model_with_fewer_layers_takes_its_own_peak(tiny_dir):
    texts = ["The quick brown fox jumps over the lazy dog.", "SELECT name FROM users;"] * 6
    s = Session(model=tiny_dir("llama"), prompts=texts, projection_method="pca", k=5)
    try:
        s.run().wait(120)
        assert s.hidden_states.n_layers == 4
        s.layer = 3  # the user's choice, a layer the next model does not have
        s.wait(120)
        s.model = tiny_dir("gpt2")  # 2 blocks: layers 0..2
        s.wait(120)
        assert s.error == "" and s.hidden_states.n_layers == 3
        assert 0 <= s.layer < 3 and s.projection_layer == s.layer
    finally:
        s.close()
