"""The multi-model view of a sweep: curves on relative depth, working dimension against quality.

Unlike the session views it observes no session: it shows a finished
:class:`~tokendim_widgets.sweeps.SweepResult`. Clicking a model sets ``selected_model``;
:meth:`SweepView.session` and :meth:`SweepView.explorer` open that model's layers.
"""

from __future__ import annotations

import math
from typing import Any

import anywidget
import pandas as pd
import traitlets as t

from ..errors import TokendimError
from ..sweeps import SweepResult
from .views import STATIC


def _bundle() -> Any:
    path = STATIC / "widget.js"
    if not path.exists():
        raise TokendimError(
            "The front end is not built: run `npm ci && npm run build` in js/ "
            "(or reinstall the package)."
        )
    return path


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _column(frame: pd.DataFrame, name: str) -> list[float | None]:
    return [_finite(v) for v in frame[name]] if name in frame else [None] * len(frame)


class SweepView(anywidget.AnyWidget):
    """All models of a sweep in two linked plots, with intervals.

    Left: each model's ID curve against relative depth with its interval band. Right: the
    working-space dimension against bits per byte, intervals on both axes (quality: bootstrap
    over prompts), with Spearman's rank correlation and its bootstrap interval over models.

    Parameters
    ----------
    result : SweepResult
        The output of :func:`~tokendim_widgets.sweep`.
    estimator : str, optional
        Which estimator's curves and metrics (default: the sweep's first).

    Examples
    --------
    >>> view = SweepView(td.sweep(["smollm2-135m", "gpt2"], "mixed"))  # doctest: +SKIP
    >>> view.selected_model = "gpt2"  # doctest: +SKIP
    >>> view.explorer()  # doctest: +SKIP
    """

    _esm = _bundle()
    _view = t.Unicode("sweep").tag(sync=True)
    theme = t.Unicode("auto").tag(sync=True)
    estimator = t.Unicode("").tag(sync=True)
    selected_model = t.Unicode("").tag(sync=True)
    x_label = t.Unicode("bits per byte").tag(sync=True)
    y_label = t.Unicode("working dimension").tag(sync=True)
    sweep_curves: t.List[Any] = t.List().tag(sync=True)
    sweep_points: t.List[Any] = t.List().tag(sync=True)
    sweep_correlation = t.Dict().tag(sync=True)

    def __init__(self, result: SweepResult, *, estimator: str | None = None, **kwargs: Any):
        if result.metrics.empty:
            raise TokendimError(
                "This sweep has no results to show (every model failed); see result.errors."
            )
        super().__init__(**kwargs)
        self.result = result
        self.observe(self._fill, names="estimator")
        self.estimator = estimator or str(result.metrics["estimator"].iloc[0])

    def _fill(self, change: Any = None) -> None:
        metrics = self.result.metrics[self.result.metrics["estimator"] == self.estimator]
        if metrics.empty:
            known = ", ".join(self.result.metrics["estimator"].unique())
            raise TokendimError(f"No estimator {self.estimator!r} in this sweep; choose {known}.")
        curves = self.result.curves[self.result.curves["estimator"] == self.estimator]
        with self.hold_sync():
            self.sweep_curves = [
                {
                    "model": str(model),
                    "depth": _column(group, "depth"),
                    "dimension": _column(group, "dimension"),
                    "lower": _column(group, "lower"),
                    "upper": _column(group, "upper"),
                }
                for model, group in curves.groupby("model", sort=False)
            ]
            self.sweep_points = [
                {
                    "model": str(row["model"]),
                    "x": _finite(row["bits_per_byte"]),
                    "x_lower": _finite(row["bits_per_byte_lower"]),
                    "x_upper": _finite(row["bits_per_byte_upper"]),
                    "y": _finite(row["working_dimension"]),
                    "y_lower": _finite(row["working_dimension_lower"]),
                    "y_upper": _finite(row["working_dimension_upper"]),
                }
                for _, row in metrics.iterrows()
            ]
            corr = self.result.correlation(estimator=self.estimator)
            self.sweep_correlation = {k: _finite(v) for k, v in corr.items()}

    def _chosen(self, model: str | None) -> str:
        name = model or self.selected_model
        if not name:
            raise TokendimError("No model selected: click one in the view or pass model=.")
        return name

    def session(self, model: str | None = None, **params: Any) -> Any:
        """A :class:`~tokendim_widgets.Session` on the selected model (or ``model``)."""
        estimator = self.estimator.split("(")[0]
        return self.result.session(self._chosen(model), **{"estimator": estimator, **params})

    def explorer(self, model: str | None = None, **params: Any) -> Any:
        """An :class:`~tokendim_widgets.Explorer` on the selected model's layers, started."""
        from .views import Explorer

        return Explorer(session=self.session(model, **params))
