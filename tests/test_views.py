"""The Python side of the views: their traits, the sync with the session, messages, close()."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest
from frontend import send_from_browser
from planted import planted_layers

from tokendim_widgets import HiddenStates, Session, id_curve, wire
from tokendim_widgets.clouds import CloudSpec
from tokendim_widgets.estimators import TwoNN
from tokendim_widgets.results import Results
from tokendim_widgets.widgets import (
    ControlsView,
    Explorer,
    IDCurveView,
    MetricsView,
    ProjectionView,
    TokenHeatmapView,
)

VIEWS = [Explorer, IDCurveView, ProjectionView, TokenHeatmapView, MetricsView, ControlsView]
#: The name each view gives the front end (the ``_view`` of its state), which picks its groups.
VIEW_NAMES = {
    Explorer: "explorer",
    IDCurveView: "curve",
    ProjectionView: "scatter",
    TokenHeatmapView: "heatmap",
    MetricsView: "metrics",
    ControlsView: "controls",
}
PROTOCOL = {name for traits in wire.GROUPS.values() for name in traits}


@pytest.fixture()
def session():
    states = planted_layers((2, 5, 3), n_prompts=10, tokens_per_prompt=30, width=16)
    s = Session.from_hidden_states(states, projection_method="pca", k=8)
    yield s
    s.close()


def make(cls, session):
    return cls(session=session, run=False) if cls is Explorer else cls(session)


@pytest.mark.parametrize("cls", VIEWS)
def test_each_view_declares_only_the_traits_of_its_groups(cls, session):
    view = make(cls, session)
    try:
        assert view.get_state()["_view"] == VIEW_NAMES[cls]
        declared = PROTOCOL & set(view.trait_names(sync=lambda v: v))
        groups = wire.VIEW_GROUPS[VIEW_NAMES[cls]]
        expected = {name for group in groups for name in wire.GROUPS[group]}
        assert declared == expected
        for name in declared:  # the defaults are the wire module's
            default = wire.default(name)
            if isinstance(default, np.ndarray):
                assert np.array_equal(view.trait_defaults(name), default)
            else:
                assert view.trait_defaults(name) == default, name
    finally:
        view.close()


@pytest.mark.parametrize("cls", VIEWS)
def test_views_receive_the_session_state_of_their_groups(cls, session):
    view = make(cls, session)
    try:
        session.run().wait(60)
        expected = wire.session_state(session, wire.VIEW_GROUPS[VIEW_NAMES[cls]])
        assert expected  # something to compare
        for name, value in expected.items():
            assert getattr(view, name) == value, name
        assert view.layer == session.layer and view.status == "done"
    finally:
        view.close()


def test_parameters_are_mirrored_both_ways(session):
    view = Explorer(session=session, run=False)
    try:
        view.layer = 2
        view.k = 5
        view.selected_tokens = [4, 2]
        assert session.layer == 2 and session.k == 5
        assert [int(row) for row in session.selected_tokens] == [4, 2]
        session.estimator = "mle"
        session.scale = None
        assert view.estimator == "mle" and view.scale == 0
        view.k = 0  # refused by the session: the view shows why
        assert session.k == 5 and "Invalid k" in view.error
    finally:
        view.close()


def test_messages_run_cancel_and_report_bad_uploads(session):
    view = ControlsView(session)
    try:
        send_from_browser(view, {"type": "run"})
        session.wait(60)
        assert session.curve is not None
        send_from_browser(view, {"type": "prompts_file", "name": "notes.pdf", "text": ""})
        assert "upload a .txt" in view.error
        send_from_browser(view, "not a dict")  # ignored
        send_from_browser(view, {"type": "cancel"})
    finally:
        view.close()


def test_an_image_reply_resolves_the_export_future(session, tmp_path):
    view = IDCurveView(session)
    try:
        sent = []
        view.send = sent.append
        future = view.export_image("curve", "svg", tmp_path / "c.svg", timeout=30)
        request = sent[0]
        assert request["type"] == "export" and request["format"] == "svg"
        svg = '<svg xmlns="http://www.w3.org/2000/svg"/>'
        reply = {"type": "export_result", "request_id": request["request_id"], "data": svg}
        send_from_browser(view, reply)
        assert future.result(5).read_text() == svg
    finally:
        view.close()


@pytest.mark.parametrize("cls", VIEWS)
def test_close_stops_following_the_session(cls, session):
    view = make(cls, session)
    view.close()
    before = dict(view.trait_values())
    session.layer = 2
    session.run().wait(60)
    after = view.trait_values()
    for name in PROTOCOL & set(before):
        if isinstance(before[name], np.ndarray):
            assert np.array_equal(after[name], before[name]), name
        else:
            assert after[name] == before[name], name


def test_explorer_close_leaves_a_given_session_open(session):
    Explorer(session=session, run=False).close()
    session.run().wait(60)  # the worker still runs
    assert session.curve is not None


def test_explorer_close_closes_the_session_it_created():
    explorer = Explorer(run=False, projection_method="pca")
    explorer.close()
    with pytest.raises(TimeoutError):
        explorer.session.run().wait(0.5)  # no worker left to do it


def test_new_states_after_freeing_old_ones_get_their_own_curve():
    rng = np.random.default_rng(1)
    results = Results()
    spec = CloudSpec("all", drop_first=False)
    old = HiddenStates.from_arrays(rng.normal(size=(2, 150, 3)).astype("float32"))
    first = results.curve(old, TwoNN(), spec)["dimension"].to_numpy()
    del old
    gc.collect()
    # Same shape, other values (rank 1 in a 3-D space): a cached curve would be wrong.
    line = rng.normal(size=(2, 150, 1)) * np.array([1.0, 2.0, -1.0])
    new = HiddenStates.from_arrays(line.astype("float32"))
    curve = results.curve(new, TwoNN(), spec)["dimension"].to_numpy()
    np.testing.assert_allclose(curve, id_curve(new, TwoNN(), drop_first=False)["dimension"])
    assert not np.allclose(curve, first)


def test_results_fill_projections_from_the_start_and_cache_them():
    states = planted_layers((2, 3, 2, 3), n_prompts=6, tokens_per_prompt=30, width=8)
    results = Results()
    calls = []
    layouts = results.fill_projections(
        states, "pca", drop_first=True, start=2, progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for layer, xy in enumerate(layouts):
        assert xy is results.cached_projection(states, layer, "pca", drop_first=True)
    assert results.cached_projection(states, 0, "pca", drop_first=False) is None
    results.fill_projections(states, "pca", drop_first=True, progress=lambda *a: calls.append(a))
    assert len(calls) == 4  # everything was cached


def test_the_export_does_not_import_the_widgets():
    code = (
        "import sys, tokendim_widgets.export\n"
        "assert 'tokendim_widgets.widgets' not in sys.modules, 'export imports the widgets'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
