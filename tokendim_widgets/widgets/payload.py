"""What the views receive: session results packed into binary buffers and small JSON values.

Bulk arrays travel as little-endian float32 / int32 bytes (binary comm buffers), never as JSON
lists; token texts travel as one UTF-8 blob with int32 byte offsets, so 100,000 tokens cost one
buffer instead of 100,000 JSON strings. Everything here is a pure function, tested without a
browser; js/src/codecs.ts decodes the same layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import peak_probabilities, summarize


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
