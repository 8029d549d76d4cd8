"""Session faults: an error does not stick, bad options raise our error, Ctrl-C cancels."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from planted import planted_layers

from tokendim_widgets import Session, TokendimError


@pytest.fixture()
def session():
    states = planted_layers((2, 5, 3), n_prompts=10, tokens_per_prompt=30, width=16)
    s = Session.from_hidden_states(states, projection_method="pca")
    yield s
    s.close()


def test_an_error_does_not_stick_when_going_back_to_a_cached_layer(session):
    session.run().wait(60)
    session.layer = 2
    session.wait(60)
    assert session.projection_layer == 2  # layer 2's projection is now cached
    session.layer = 99
    with pytest.raises(TokendimError, match="Layer 99"):
        session.wait(60)
    assert session.status == "error"
    session.layer = 2
    session.wait(60)  # does not raise the old error
    assert session.error == "" and session.status == "done"
    assert session.projection_layer == 2


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("k", 2.5, "k must be an integer"),
        ("k", 0, "k must be an integer >= 1, got 0"),
        ("k", "5", "k must be an integer"),
        ("k", True, "k must be an integer"),
        ("scale", -3, "scale must be an integer >= 1 or None, got -3"),
        ("max_tokens", 0.5, "max_tokens must be an integer"),
        ("max_length", 0, "max_length must be an integer >= 1 or None, got 0"),
        ("layer", 1.5, "layer must be an integer"),
        ("projection_method", "tsne", "projection_method must be one of 'umap', 'pca'"),
    ],
)
def test_bad_options_raise_our_error(session, name, value, match):
    before = getattr(session, name)
    with pytest.raises(TokendimError, match=match):
        setattr(session, name, value)
    assert getattr(session, name) == before  # the bad value was not taken
    with pytest.raises(TokendimError, match=match):
        Session(**{name: value})


def test_good_options_are_kept(session):
    session.k = np.int64(7)
    assert session.k == 7 and type(session.k) is int
    session.max_tokens = None
    session.projection_method = "pca"


def test_an_interrupted_wait_cancels_the_work(session, monkeypatch):
    main = threading.current_thread()
    real_wait = threading.Event.wait
    states_out = threading.Event()
    interrupted = threading.Event()

    def hold(change):  # the worker waits here until the wait below was interrupted
        states_out.set()
        real_wait(interrupted, 30)

    def ctrl_c(self, timeout=None):
        if threading.current_thread() is main and self is not states_out:
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    session.observe(hold, names="hidden_states")
    session.run()
    assert states_out.wait(30)  # the pass has started: the curve is still to come
    monkeypatch.setattr(threading.Event, "wait", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        session.wait()
    monkeypatch.undo()
    interrupted.set()
    session.wait(30, raise_error=False)
    assert session.status == "cancelled" and session.curve is None
    session.close(timeout=30)
    with pytest.raises(TimeoutError):  # the worker stopped: nothing runs any more
        session.run().wait(0.5)


def test_option_errors_are_also_trait_errors_for_linked_widgets(session):
    import traitlets as t

    with pytest.raises(t.TraitError):
        session.k = 2.5
