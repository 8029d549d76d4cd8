"""tokendim-widgets: the layer-wise geometry of language models, in linked Jupyter views.

>>> import tokendim_widgets as td
>>> td.__version__
'0.1.0'

Importing the package is cheap: torch, transformers and the widgets load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it. Resolved lazily (PEP 562) so that `import
# tokendim_widgets` does not import torch (seconds) until something needs it.
_EXPORTS: dict[str, str] = {
    "TokendimError": "errors",
    "Cancelled": "errors",
    "load_model": "models",
    "list_aliases": "models",
    "extract": "extraction",
    "random_init_states": "extraction",
    "HiddenStates": "hidden_states",
    "model_quality": "quality",
    "PromptSet": "prompts",
    "as_prompt_set": "prompts",
    "builtin_sets": "prompts",
    "build_graph": "knn",
    "TwoNN": "estimators",
    "MLE": "estimators",
    "GRIDE": "estimators",
    "CorrelationDimension": "estimators",
    "PCADimension": "estimators",
    "make_estimator": "estimators",
    "id_curve": "analysis",
    "local_id": "analysis",
    "summarize": "analysis",
    "compare": "analysis",
    "convergence": "analysis",
    "null_curves": "analysis",
    "peak_probabilities": "analysis",
    "format_metrics": "analysis",
    "Session": "session",
    "export_html": "export",
    "export_data": "export",
    "Explorer": "widgets",
    "IDCurveView": "widgets",
    "ProjectionView": "widgets",
    "TokenHeatmapView": "widgets",
    "MetricsView": "widgets",
    "ControlsView": "widgets",
    "SweepView": "widgets",
    "LayerDetail": "widgets",
    "sweep": "sweeps",
    "SweepResult": "sweeps",
}

__all__ = [
    "GRIDE",
    "MLE",
    "Cancelled",
    "ControlsView",
    "CorrelationDimension",
    "Explorer",
    "HiddenStates",
    "IDCurveView",
    "LayerDetail",
    "MetricsView",
    "PCADimension",
    "ProjectionView",
    "PromptSet",
    "Session",
    "SweepResult",
    "SweepView",
    "TokenHeatmapView",
    "TokendimError",
    "TwoNN",
    "__version__",
    "as_prompt_set",
    "build_graph",
    "builtin_sets",
    "compare",
    "convergence",
    "export_data",
    "export_html",
    "extract",
    "format_metrics",
    "id_curve",
    "list_aliases",
    "load_model",
    "local_id",
    "make_estimator",
    "model_quality",
    "null_curves",
    "peak_probabilities",
    "random_init_states",
    "summarize",
    "sweep",
]

if TYPE_CHECKING:
    from .analysis import (
        compare,
        convergence,
        format_metrics,
        id_curve,
        local_id,
        null_curves,
        peak_probabilities,
        summarize,
    )
    from .errors import Cancelled, TokendimError
    from .estimators import GRIDE, MLE, CorrelationDimension, PCADimension, TwoNN, make_estimator
    from .export import export_data, export_html
    from .extraction import extract, random_init_states
    from .hidden_states import HiddenStates
    from .knn import build_graph
    from .models import list_aliases, load_model
    from .prompts import PromptSet, as_prompt_set, builtin_sets
    from .quality import model_quality
    from .session import Session
    from .sweeps import SweepResult, sweep
    from .widgets import (
        ControlsView,
        Explorer,
        IDCurveView,
        LayerDetail,
        MetricsView,
        ProjectionView,
        SweepView,
        TokenHeatmapView,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokendim_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
