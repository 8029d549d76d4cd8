"""The notebook views: one anywidget class per view, and the composed Explorer."""

from .layer_detail import LayerDetail
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
    "LayerDetail",
    "MetricsView",
    "ProjectionView",
    "SessionView",
    "SweepView",
    "TokenHeatmapView",
]
