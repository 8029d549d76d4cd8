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
(RESEARCH.md); left in, it forms its own far-away cluster that distorts every neighbourhood
it touches and the correlation integral's large scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import TokendimError

CLOUDS: tuple[str, ...] = ("all", "last", "per_prompt")


@dataclass(frozen=True)
class CloudSpec:
    """A named way of choosing the rows of a layer that form the cloud(s)."""

    cloud: str = "all"
    drop_first: bool = True

    def __post_init__(self) -> None:
        if self.cloud not in CLOUDS:
            raise TokendimError(f"Unknown cloud {self.cloud!r}: choose one of {', '.join(CLOUDS)}.")

    @property
    def label(self) -> str:
        return self.cloud + ("" if self.drop_first else "+first")

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
