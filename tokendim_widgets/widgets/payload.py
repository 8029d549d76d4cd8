"""The packing of results for the views, now in :mod:`tokendim_widgets.wire` (kept importable)."""

from ..wire import (
    METRIC_LABELS,
    curves_payload,
    float32_bytes,
    int32_bytes,
    int_array,
    local_id_payload,
    metrics_payload,
    token_buffers,
)

__all__ = [
    "METRIC_LABELS",
    "curves_payload",
    "float32_bytes",
    "int32_bytes",
    "int_array",
    "local_id_payload",
    "metrics_payload",
    "token_buffers",
]
