"""Widget traits the views rely on: the robust local-ID range and the null-control toggle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokendim_widgets import HiddenStates, Session
from tokendim_widgets.widgets import ControlsView
from tokendim_widgets.wire import local_id_payload


def test_local_id_range_is_the_2nd_to_98th_percentile():
    values = np.arange(101, dtype=float)
    values[-1] = 1e6  # one isolated token must not set the scale
    matrix = pd.DataFrame(np.column_stack([values, values]))
    matrix.iloc[0, 0] = np.nan  # missing cells are left out
    data, (lo, hi) = local_id_payload(matrix)
    finite = matrix.to_numpy()[np.isfinite(matrix.to_numpy())]
    assert (lo, hi) == tuple(float(v) for v in np.percentile(finite, [2, 98]))
    assert hi < 100 and lo > 1
    assert len(data) == matrix.size * 4


def test_controls_toggle_reaches_the_session_both_ways():
    states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 60, 4)))
    session = Session.from_hidden_states(states, projection_method="pca")
    try:
        view = ControlsView(session)
        assert view.controls == [] and not view.has_trait("local_id_range_mode")
        view.controls = ["gaussian"]  # what the "Gaussian control" checkbox does
        assert list(session.controls) == ["gaussian"]
        session.controls = []
        assert view.controls == []
    finally:
        session.close()
