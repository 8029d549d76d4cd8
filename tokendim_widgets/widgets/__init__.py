"""The notebook views: one anywidget class per view, and the composed Explorer."""

from .sweep_view import SweepView
from .views import (
    ControlsView,
    Explorer,
    IDCurveView,
    MetricsView,
    ProjectionView,
    SessionView,
    TokenHeatmapView,
)

__all__ = [
    "ControlsView",
    "Explorer",
    "IDCurveView",
    "MetricsView",
    "ProjectionView",
    "SessionView",
    "SweepView",
    "TokenHeatmapView",
]
