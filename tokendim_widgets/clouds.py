"""Which tokens of a layer form the point cloud whose dimension is measured.

The estimate depends on how the cloud is built, so the choice is explicit and named:

``"all"``
    Every token of every prompt pooled into one cloud (the default: it is the cloud of the
    token-correlation paper, and it gives the most points, hence the smallest finite-sample bias).
``"last"``
    The last token of each prompt: one point per prompt (Cheng et al.). Needs many prompts.
``"per_prompt"``
    One cloud per prompt, estimated separately and averaged (Viswanathan et al.); the spread
    across prompts gives the error bar. Needs long prompts (more tokens than neighbours).

``drop_first`` (default ``True``) removes the tokens at input position 0. In Llama-style models
that position is an attention sink whose hidden state has a norm about 150 times the median
; left in, it forms its own far-away cluster that distorts every neighbourhood it touches
and the correlation integral's large scales.

``metric`` is the geometry of the cloud: ``"euclidean"`` (default) or ``"cosine"`` (rows
normalised to unit length, so distances are chords, monotone in the cosine distance).
``drop_outliers`` leaves out, layer by layer, the massive-norm tokens: rows whose norm exceeds
:data:`OUTLIER_FACTOR` times the layer's median norm (see :func:`massive_norm_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import TokendimError

CLOUDS: tuple[str, ...] = ("all", "last", "per_prompt")
METRICS: tuple[str, ...] = ("euclidean", "cosine")
#: A row is a massive-norm outlier when its norm exceeds this multiple of its layer's median.
OUTLIER_FACTOR = 20.0


@dataclass(frozen=True)
class CloudSpec:
    """A named way of choosing the rows of a layer that form the cloud(s)."""

    cloud: str = "all"
    drop_first: bool = True
    metric: str = "euclidean"
    drop_outliers: bool = False

    def __post_init__(self) -> None:
        if self.cloud not in CLOUDS:
            raise TokendimError(f"Unknown cloud {self.cloud!r}: choose one of {', '.join(CLOUDS)}.")
        if self.metric not in METRICS:
            raise TokendimError(
                f"Unknown metric {self.metric!r}: choose one of {', '.join(METRICS)}."
            )
        for name in ("drop_first", "drop_outliers"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TokendimError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @property
    def label(self) -> str:
        label = self.cloud + ("" if self.drop_first else "+first")
        if self.metric != "euclidean":
            label += f"+{self.metric}"
        if self.drop_outliers:
            label += "-outliers"
        return label

    def groups(self, tokens: pd.DataFrame) -> list[np.ndarray]:
        """Row indices of each cloud (one group, except for ``"per_prompt"``)."""
        rows = np.arange(len(tokens))
        if self.drop_first:
            rows = rows[tokens["position"].to_numpy() != 0]
        prompts = tokens["prompt"].to_numpy()[rows]
        if self.cloud == "all":
            return [rows]
        # Rows are in reading order within each prompt, so group boundaries are where the
        # prompt index changes; a stable sort keeps reading order inside each prompt anyway.
        order = np.argsort(prompts, kind="stable")
        rows, prompts = rows[order], prompts[order]
        starts = np.flatnonzero(np.r_[True, prompts[1:] != prompts[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        if self.cloud == "last":
            positions = tokens["position"].to_numpy()[rows]
            last = [s + int(np.argmax(positions[s:e])) for s, e in zip(starts, ends, strict=True)]
            return [rows[np.asarray(last, dtype=np.int64)]]
        return [rows[s:e] for s, e in zip(starts, ends, strict=True)]


def massive_norm_rows(X: np.ndarray, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """Boolean mask of the rows whose norm exceeds ``factor`` times the median row norm.

    Such tokens (attention sinks, delimiter tokens in some models) sit far from the rest of
    the cloud and distort every neighbourhood and large-scale count that reaches them.

    Examples
    --------
    >>> X = np.ones((5, 3)); X[2] *= 100
    >>> massive_norm_rows(X).tolist()
    [False, False, True, False, False]
    """
    X = np.asarray(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))  # no float64 copy of X
    if norms.size == 0:
        return np.zeros(0, dtype=bool)
    median = float(np.median(norms))
    return norms > factor * median if median > 0 else np.zeros(norms.shape, dtype=bool)


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): the cosine geometry."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
