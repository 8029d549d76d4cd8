"""The wire protocol: the views' state built from a session, for the widgets and the HTML page.

One module below both the widgets and the export: the trait names and defaults of every view
(:data:`GROUPS`), the packing of results into binary buffers and small JSON values, and the
state of a session as the views receive it (:func:`session_state`, :func:`page_state`). The
protocol is described in docs/wire-protocol.md; js/src/codecs.ts decodes the same layout.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .analysis import peak_probabilities, summarize
from .clouds import CLOUDS
from .estimators import ESTIMATORS
from .models import list_aliases
from .prompts import builtin_sets

if TYPE_CHECKING:
    from .session import Session


def int32_bytes(values: Any) -> bytes:
    """Little-endian int32 bytes of an integer array."""
    return np.ascontiguousarray(np.asarray(values, dtype="<i4")).tobytes()


def float32_bytes(values: Any) -> bytes:
    """Little-endian float32 bytes of a float array (NaN kept: the views skip it)."""
    return np.ascontiguousarray(np.asarray(values, dtype="<f4")).tobytes()


def int_array(buffer: Any) -> np.ndarray:
    """Decode int32 bytes (bytes, memoryview or an array) sent back by a view."""
    if buffer is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(buffer, np.ndarray):
        return buffer.astype(np.int64, copy=False).ravel()
    if isinstance(buffer, (list, tuple)):
        return np.asarray(buffer, dtype=np.int64)
    raw = bytes(buffer)
    if len(raw) % 4:
        raise ValueError(f"An int32 buffer must hold a multiple of 4 bytes, not {len(raw)}.")
    return np.frombuffer(raw, dtype="<i4").astype(np.int64)


def token_buffers(tokens: pd.DataFrame) -> dict[str, Any]:
    """The token table as the views' buffers: text blob + offsets, prompt, position."""
    encoded = [str(text).encode("utf-8", errors="replace") for text in tokens["token"]]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        offsets[1:] = np.cumsum([len(chunk) for chunk in encoded])
    return {
        "n_tokens": len(tokens),
        "token_text": b"".join(encoded),
        "token_offsets": int32_bytes(offsets),
        "token_prompt": int32_bytes(tokens["prompt"].to_numpy()),
        "token_position": int32_bytes(tokens["position"].to_numpy()),
    }


def _finite_or_none(values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def curves_payload(curves: Mapping[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Every curve as a small JSON object (a few hundred numbers at most).

    Besides the values: the peak layer, the probability of the peak at each layer, the
    verdict, the interval method, each layer's kind (the embedding layer is drawn apart) and
    ``kind``: ``"control"`` for null-control curves, ``"curve"`` otherwise.
    """
    out = []
    for label, curve in curves.items():
        dims = curve["dimension"].to_numpy(dtype=float)
        finite = np.isfinite(dims)
        metrics = summarize(curve) if finite.any() else None
        peak = int(metrics["working_layer"]) if metrics is not None else None
        probabilities = (
            peak_probabilities(curve).reindex(curve["layer"]).fillna(0.0).tolist()
            if metrics is not None
            else []
        )
        out.append(
            {
                "label": str(label),
                "estimator": str(curve.attrs.get("estimator", label)),
                "model": str(curve.attrs.get("model", "")),
                "layers": [int(x) for x in curve["layer"]],
                "dimension": _finite_or_none(dims),
                "lower": _finite_or_none(curve["lower"]),
                "upper": _finite_or_none(curve["upper"]),
                "peak_layer": peak,
                "peak_probability": _finite_or_none(probabilities),
                "verdict": str(metrics["verdict"]) if metrics is not None else "",
                "layer_kinds": [str(k) for k in curve.attrs.get("layer_kinds", ())],
                "kind": "control" if curve.attrs.get("control") else "curve",
                "supported": (
                    [bool(v) for v in curve["supported"]] if "supported" in curve else []
                ),
                "interval_method": (
                    str(curve["interval_method"].iloc[0]) if "interval_method" in curve else ""
                ),
            }
        )
    return out


def local_id_payload(local_ids: pd.DataFrame | None) -> tuple[bytes, list[float]]:
    """The tokens x layers matrix as float32 bytes and a robust colour range.

    The range spans the 2nd to 98th percentile of the finite values, so that a few extreme
    local estimates (isolated tokens) do not wash out the colour scale of the others; the
    views mark the clipped tails in their legends and offer other ranges.
    """
    if local_ids is None or local_ids.size == 0:
        return b"", [0.0, 1.0]
    matrix = local_ids.to_numpy(dtype=np.float32)
    finite = matrix[np.isfinite(matrix)]
    if finite.size == 0:
        return float32_bytes(matrix), [0.0, 1.0]
    lo, hi = np.percentile(finite, [2, 98])
    if not hi > lo:
        hi = lo + 1.0
    return float32_bytes(matrix), [float(lo), float(hi)]


METRIC_LABELS = {
    "verdict": ("Shape", None),
    "working_dimension": ("Working-space dim. [95% CI]", ".2f"),
    "working_layer": ("Peak layer (p)", "d"),
    "final_dimension": ("Final dim. [95% CI]", ".2f"),
    "expansion_ratio": ("Expansion [95% CI]", ".2f"),
    "contraction_ratio": ("Contraction [95% CI]", ".2f"),
    "auc": ("Mean dim. (AUC)", ".2f"),
    "n_distinct": ("Distinct points (min)", "d"),
    "final_layer": ("Last layer", None),
    "metrics_interval": ("Intervals from", None),
}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _with_interval(row: pd.Series, key: str) -> str | None:
    """``"9.94 [8.70, 11.2]"``: a metric and its interval as one cell."""
    value = _number(row.get(key))
    if value is None:
        return None
    low, high = _number(row.get(f"{key}_lower")), _number(row.get(f"{key}_upper"))
    if low is None or high is None:
        return f"{value:.2f}"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def metrics_payload(
    table: pd.DataFrame | None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The metrics table as JSON rows and column descriptions (metrics with their intervals)."""
    columns = [
        {"key": "curve", "label": "Curve"},
        {"key": "model", "label": "Model"},
        {"key": "estimator", "label": "Estimator"},
    ] + [
        {"key": key, "label": label, **({"format": fmt} if fmt else {})}
        for key, (label, fmt) in METRIC_LABELS.items()
    ]
    if table is None:
        return [], columns
    rows = []
    for label, row in table.iterrows():
        item: dict[str, Any] = {"curve": str(label)}
        for key in ("model", "estimator", "verdict", "final_layer", "metrics_interval"):
            item[key] = str(row.get(key, "") or "")
        unsupported = _number(row.get("unsupported_layers"))
        if unsupported:
            item["verdict"] += f" ({int(unsupported)} layers on too few points)"
        for key in ("working_dimension", "final_dimension", "expansion_ratio", "contraction_ratio"):
            item[key] = _with_interval(row, key)
        layer = _number(row.get("working_layer"))
        share = _number(row.get("working_layer_probability"))
        item["working_layer"] = (
            None
            if layer is None
            else f"{int(layer)}" + (f" ({share:.2f})" if share is not None else "")
        )
        item["auc"] = _number(row.get("auc"))
        item["n_distinct"] = _number(row.get("n_distinct"))
        rows.append(item)
    return rows, columns


# ---- the views' traits -------------------------------------------------------------------------
#: Trait name -> default, by group. Every view has the "shared" group; the others are the data a
#: view shows (see :data:`VIEW_GROUPS`). The widgets declare their traits from these, and the
#: standalone page starts from the same values.
GROUPS: dict[str, dict[str, Any]] = {
    "shared": {
        "layer": 0,
        "n_layers": 0,
        "selected_tokens": np.empty(0, dtype=np.int64),
        "hovered_token": -1,
        "theme": "auto",
        "status": "idle",
        "error": "",
    },
    "tokens": {
        "n_tokens": 0,
        "token_text": b"",
        "token_offsets": b"",
        "token_prompt": b"",
        "token_position": b"",
    },
    "curve": {"curves": [], "curve_ylabel": "intrinsic dimension"},
    "projection": {
        "projection": b"",
        "projection_kind": "",
        "projection_layer": -1,
        "color_by": "local_id",
    },
    "local": {"local_id": b"", "local_id_range": [0.0, 1.0], "local_id_range_mode": "robust"},
    "metrics": {"metrics": [], "metrics_columns": []},
    "controls": {
        "model_ref": "",
        "model_choices": [],
        "prompt_set": "",
        "prompt_choices": [],
        "shuffled": False,
        "controls": [],
        "estimator": "twonn",
        "estimator_choices": [],
        "k": 20,
        "scale": 0,
        "cloud": "all",
        "cloud_choices": list(CLOUDS),
        "progress": 0.0,
        "tokens_per_second": 0.0,
        "eta_seconds": -1.0,
        "busy": False,
    },
}

#: The groups of each front-end view (its ``_view``).
VIEW_GROUPS: dict[str, tuple[str, ...]] = {
    "explorer": tuple(GROUPS),
    "curve": ("shared", "curve"),
    "scatter": ("shared", "tokens", "projection", "local"),
    "heatmap": ("shared", "tokens", "local"),
    "metrics": ("shared", "metrics"),
    "controls": ("shared", "controls"),
}

#: Session results -> the groups built from them (what to rebuild when a result changes).
RESULT_GROUPS: dict[str, tuple[str, ...]] = {
    "hidden_states": ("shared", "tokens"),
    "curves": ("curve", "metrics"),
    "local_ids": ("local",),
    "projection": ("projection",),
    "projection_kind": ("projection",),
}

#: Session status traits, copied as they are into views of the groups named.
STATUS = {
    "status": "shared",
    "error": "shared",
    "progress": "controls",
    "tokens_per_second": "controls",
    "eta_seconds": "controls",
    "busy": "controls",
}


def default(name: str) -> Any:
    """The default value of the trait ``name`` (a copy of mutable values)."""
    for traits in GROUPS.values():
        if name in traits:
            value = traits[name]
            return value.copy() if isinstance(value, (list, np.ndarray)) else value
    raise KeyError(name)


def session_state(session: Session, groups: Any) -> dict[str, Any]:
    """The values of the result traits of ``groups`` built from the session's results.

    Only what the session has computed is given: a group with no result yet is left out
    (the view keeps what it shows). The parameters a view edits (layer, estimator, ...) are
    mirrored by the widgets, not built here.
    """
    groups = set(groups)
    out: dict[str, Any] = {}
    states = session.hidden_states
    if states is not None:
        if "shared" in groups:
            out["n_layers"] = states.n_layers
        if "tokens" in groups:
            out.update(token_buffers(states.tokens))
    if "curve" in groups:
        out["curves"] = curves_payload(session.curves)
    if "metrics" in groups:
        out["metrics"], out["metrics_columns"] = metrics_payload(session.metrics)
    if "local" in groups:
        out["local_id"], out["local_id_range"] = local_id_payload(session.local_ids)
    if "projection" in groups and session.projection is not None:
        out["projection"] = float32_bytes(session.projection)
        out["projection_kind"] = session.projection_kind
        out["projection_layer"] = session.projection_layer
    return out


def choices() -> dict[str, list[str]]:
    """The menus of the controls: estimators, model aliases and built-in prompt sets."""
    return {
        "estimator_choices": list(ESTIMATORS),
        "model_choices": list(list_aliases()),
        "prompt_choices": list(builtin_sets()),
    }


def prompt_label(session: Session) -> str:
    """The prompt set's name as the states record it (what was extracted), else the session's."""
    recorded = getattr(session.hidden_states, "prompt_set", None)
    if isinstance(recorded, Mapping) and recorded.get("name"):
        return str(recorded["name"])
    name = getattr(session.prompts, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(session.prompts, (str, os.PathLike)):
        return Path(session.prompts).name
    return "custom"


#: The traits of the standalone page's state, in the order it writes them.
PAGE_TRAITS = (
    "layer", "n_layers", "n_tokens", "hovered_token", "theme", "curves", "curve_ylabel",
    "metrics", "metrics_columns", "local_id_range", "color_by", "projection_kind",
    "projection_layer", "model_ref", "model_choices", "prompt_set", "prompt_choices", "shuffled",
    "estimator", "estimator_choices", "k", "scale", "cloud", "cloud_choices", "status",
    "progress", "tokens_per_second", "eta_seconds", "error", "busy",
)  # fmt: skip

#: The binary traits of the standalone page, in the order it writes them.
PAGE_BUFFERS = (
    "token_text", "token_offsets", "token_prompt", "token_position", "local_id",
    "selected_tokens",
)  # fmt: skip


def page_state(
    session: Session, view_name: str, view: Any = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The state of a static page of ``view_name``: JSON values and binary buffers.

    Built from the session as the widgets build theirs (:func:`session_state`), then frozen:
    the controls show what the results were computed with and no work is pending. ``view``
    (a widget) gives its theme, colouring and curve label. Projections are not included: the
    page holds every layer's (see :mod:`tokendim_widgets.export`).
    """
    states = session.hidden_states
    values = {name: default(name) for traits in GROUPS.values() for name in traits}
    values.update(session_state(session, GROUPS))
    for name in ("theme", "color_by", "curve_ylabel"):
        if view is not None and hasattr(view, name):
            values[name] = getattr(view, name)
    n_layers = int(states.n_layers)
    layer = int(session.layer)
    if not 0 <= layer < n_layers:
        layer = int(session.projection_layer) if 0 <= session.projection_layer < n_layers else 0
    selected = int_array(session.selected_tokens)
    selected = np.unique(selected[(selected >= 0) & (selected < states.n_tokens)])
    values.update(
        layer=layer,
        # What the export was computed with: read-only in the page.
        model_ref=str(states.model_id or ""),
        prompt_set=prompt_label(session),
        shuffled=bool(session.shuffled),
        estimator=session.estimator,
        estimator_choices=list(dict.fromkeys([session.estimator, *session.overlay])),
        k=int(session.k),
        scale=int(session.scale or 0),
        cloud=session.cloud,
        cloud_choices=[session.cloud],
        status="done",
        progress=1.0,
        error="",
        busy=False,
        projection_kind="",
        projection_layer=-1,
        selected_tokens=int32_bytes(selected),
    )
    state = {"_view": view_name, **{name: values[name] for name in PAGE_TRAITS}}
    return state, {name: values[name] for name in PAGE_BUFFERS}
