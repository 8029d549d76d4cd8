"""What one layer's single number rests on: its scale, sample-size and prompt dependence.

The ID curve reports one estimate per layer. These functions take one layer apart:

* :func:`gride_scales`: GRIDE at neighbour ranks n1 = 1, 2, 4, ... (n2 = 2 n1). A flat curve
  says the estimate does not depend on the scale; a rising one that small scales see fewer
  directions (noise, curvature or clustering decide which).
* :func:`correlation_counts`: the correlation integral C(r) of the layer's distinct points,
  kept as per-point pair counts so that :meth:`CorrelationCounts.fit` re-estimates the
  Grassberger-Procaccia slope for any window, with a bootstrap over prompts, without counting
  pairs again.
* :func:`prompt_ids`: one TwoNN estimate per prompt, from that prompt's tokens alone.
* :func:`layer_convergence`: the estimate at N, N/2, N/4, ... points
  (:func:`~tokendim_widgets.analysis.convergence` on one layer).

All use the pooled cloud of every token of the layer (``cloud="all"``), the cloud of the
default ID curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .analysis import convergence
from .clouds import CloudSpec, unit_rows
from .errors import TokendimError
from .estimators import GRIDE, TwoNN
from .estimators.correlation import local_slope, replicate_counts
from .graphs import GraphCache
from .knn import graph_from_arrays
from .resampling import as_group_labels, bootstrap_interval, group_multiplicities
from .validation import check_int

if TYPE_CHECKING:
    from .hidden_states import HiddenStates

__all__ = [
    "CorrelationCounts",
    "correlation_counts",
    "gride_scales",
    "layer_convergence",
    "prompt_ids",
]

#: GRIDE's n1 of the scale curve (n2 = 2 n1).
DEFAULT_SCALES = (1, 2, 4, 8, 16)
#: Neighbour ranks of the default correlation window, as :class:`CorrelationDimension` sets it:
#: the medians of the k1-th and k2-th neighbour distances.
WINDOW_RANKS = (10, 20)
#: Fewest tokens a prompt needs for its own estimate (TwoNN on fewer is mostly noise).
MIN_PROMPT_TOKENS = 16


def _cache(hidden_states: HiddenStates, graphs: GraphCache | None, device: str) -> GraphCache:
    if graphs is not None:
        if graphs.hidden_states is not hidden_states:
            raise TokendimError("graphs= must be a GraphCache of these hidden states.")
        return graphs
    return GraphCache(hidden_states, device=device)


def _layer_index(hidden_states: HiddenStates, layer: int) -> int:
    n = hidden_states.n_layers
    index = int(layer) + n if int(layer) < 0 else int(layer)
    if not 0 <= index < n:
        raise TokendimError(f"Layer {layer} is out of range: these states have {n} (0..{n - 1}).")
    return index


def gride_scales(
    hidden_states: HiddenStates,
    layer: int,
    *,
    scales: Sequence[int] = DEFAULT_SCALES,
    drop_first: bool = True,
    metric: str = "euclidean",
    drop_outliers: bool = False,
    confidence: float = 0.95,
    n_bootstrap: int = 200,
    random_state: int | None = 0,
    graphs: GraphCache | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """GRIDE's estimate of one layer at each scale n1 (n2 = 2 n1), with intervals.

    Why: GRIDE at n1 = 1 is TwoNN; larger n1 measure the dimension over larger
    neighbourhoods, so the curve shows at which scale the layer's estimate is read.

    Parameters
    ----------
    hidden_states : HiddenStates
    layer : int
        Layer index (negative counts from the end).
    scales : sequence of int, default (1, 2, 4, 8, 16)
        The n1 values; those needing more neighbours than the cloud has are left out.
    drop_first, metric, drop_outliers
        The cloud, as in :func:`~tokendim_widgets.analysis.id_curve`.
    confidence, n_bootstrap, random_state
        The intervals resample whole prompts (group bootstrap), as the ID curve's do.
    graphs : GraphCache, optional
        Reuse the neighbour graphs of a session or of earlier calls.

    Returns
    -------
    pandas.DataFrame
        One row per scale: ``n1``, ``n2``, ``radius`` (mean distance to the n2-th
        neighbour), ``dimension``, ``lower``, ``upper``, ``interval_method``.

    Examples
    --------
    >>> from tokendim_widgets import HiddenStates
    >>> X = np.random.default_rng(0).normal(size=(1, 1200, 4)).astype("float32")
    >>> table = gride_scales(HiddenStates.from_arrays(X), 0, drop_first=False, device="cpu")
    >>> table["n1"].tolist()
    [1, 2, 4, 8, 16]
    """
    index = _layer_index(hidden_states, layer)
    cache = _cache(hidden_states, graphs, device)
    spec = CloudSpec("all", drop_first, metric, drop_outliers)
    wanted = sorted({check_int(s, "scale", 1) for s in scales})
    if not wanted:
        raise TokendimError("scales is empty: give at least one n1, e.g. (1, 2, 4, 8, 16).")
    graph = cache.graph(index, spec, k=2 * wanted[-1])
    usable = [s for s in wanted if 2 * s <= graph.k]
    if not usable:
        raise TokendimError(
            f"Layer {index} has {graph.n_unique} distinct points: too few for GRIDE at "
            f"n1 = {wanted[0]} (n2 = {2 * wanted[0]} neighbours)."
        )
    rows = cache.rows(index, spec)
    X = cache.points(index, rows, metric)
    labels = hidden_states.tokens["prompt"].to_numpy()[rows]
    out = []
    for n1 in usable:
        est = GRIDE(
            scale=n1,
            range_max=2 * n1,
            confidence=confidence,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
            device=device,
            metric=metric,
        ).fit(X, knn=graph, groups=labels)
        low, high = est.dimension_interval_
        out.append(
            {
                "n1": n1,
                "n2": 2 * n1,
                "radius": float(graph.distances[:, 2 * n1 - 1].mean()),
                "dimension": float(est.dimension_),
                "lower": float(low),
                "upper": float(high),
                "interval_method": str(est.interval_method_),
            }
        )
    table = pd.DataFrame(out)
    table.attrs.update(layer=index, n_points=int(graph.n_points), n_distinct=graph.n_unique)
    return table


@dataclass
class CorrelationCounts:
    """Per-point pair counts of one cloud on a grid of radii: C(r) and its slopes, refittable.

    Attributes
    ----------
    radii : numpy.ndarray of shape (R,)
        Ascending radii from below the smallest neighbour distance to the cloud's diameter,
        densest around the default window.
    counts : numpy.ndarray of shape (m, R)
        For each counted distinct point, how many other counted points lie closer than each
        radius.
    labels : numpy.ndarray of shape (m,)
        The prompt of each counted point (the unit the interval resamples).
    by_prompt : numpy.ndarray of shape (G, G, R)
        Ordered pairs closer than each radius, by the prompts of their two points (in the
        order of the sorted distinct ``labels``): what the interval's replicates are made of.
    default_window : tuple of float
        The window :class:`~tokendim_widgets.estimators.CorrelationDimension` would use: the
        medians of the 10th and 20th neighbour distances.
    n_points : int
        Rows of the cloud (before duplicates were merged and before any subsampling).
    """

    radii: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    by_prompt: np.ndarray
    default_window: tuple[float, float]
    n_points: int

    def __post_init__(self) -> None:
        self._replicates: dict[tuple[int, int | None], np.ndarray] = {}

    def _replicate_counts(self, n_bootstrap: int, random_state: int | None) -> np.ndarray:
        """Pair counts of each bootstrap replicate at every radius, shape (B, R), kept: a
        moved window then costs no product over the points. Made as the correlation
        dimension makes them (:func:`~tokendim_widgets.estimators.correlation.replicate_counts`,
        with the second-order term of the pair counts)."""
        key = (n_bootstrap, random_state)
        if key not in self._replicates:
            n_groups = self.by_prompt.shape[0]
            mult = group_multiplicities(n_groups, n_bootstrap, random_state)
            self._replicates[key] = replicate_counts(self.by_prompt, mult)
        return self._replicates[key]

    @property
    def n_counted(self) -> int:
        """Distinct points whose pairs were counted."""
        return int(self.counts.shape[0])

    @property
    def curve(self) -> np.ndarray:
        """C(r): the fraction of ordered pairs of counted points closer than each radius."""
        m = self.n_counted
        return self.counts.sum(axis=0, dtype=np.float64) / max(m * (m - 1), 1)

    @property
    def local_slope(self) -> np.ndarray:
        """d log C / d log r at each radius: a plateau is a scaling range, its height the ID."""
        return local_slope(self.radii, self.curve)

    def fit(
        self,
        r_min: float | None = None,
        r_max: float | None = None,
        *,
        confidence: float = 0.95,
        n_bootstrap: int = 200,
        random_state: int | None = 0,
    ) -> dict[str, Any]:
        """The correlation dimension in a window: least-squares slope of log C on log r.

        Uses the grid radii inside ``[r_min, r_max]`` (default: :attr:`default_window`), so a
        new window costs no new pair count. The interval resamples whole prompts: replicate
        ``b`` weighs each point's counts by its prompt's multiplicity.

        Returns
        -------
        dict
            ``dimension``, ``lower``, ``upper``, ``intercept`` (of ``log C = dimension * log r
            + intercept``), ``r_min``, ``r_max`` (as asked), ``n_radii`` (grid points used),
            ``interval_method``.
        """
        lo = float(self.default_window[0] if r_min is None else r_min)
        hi = float(self.default_window[1] if r_max is None else r_max)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise TokendimError(f"The window needs 0 < r_min < r_max, got [{lo:.4g}, {hi:.4g}].")
        curve = self.curve
        inside = (self.radii >= lo) & (self.radii <= hi) & (curve > 0)
        if np.count_nonzero(inside) < 3:
            raise TokendimError(
                f"The window [{lo:.4g}, {hi:.4g}] holds {np.count_nonzero(inside)} radii of the "
                "grid with pairs closer: widen it (at least three are needed for a slope)."
            )
        x = np.log(self.radii[inside])
        xc = x - x.mean()
        y = np.log(curve[inside])
        slope = float(xc @ (y - y.mean()) / (xc @ xc))
        intercept = float(y.mean() - slope * x.mean())
        with np.errstate(divide="ignore", invalid="ignore"):
            reps_y = np.log(self._replicate_counts(int(n_bootstrap), random_state)[:, inside])
        reps = (reps_y - reps_y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
        (low, high), _ = bootstrap_interval(slope, reps, float(confidence))
        return {
            "dimension": slope,
            "lower": float(low),
            "upper": float(high),
            "intercept": intercept,
            "r_min": lo,
            "r_max": hi,
            "n_radii": int(np.count_nonzero(inside)),
            "interval_method": "group bootstrap over prompts",
        }


def _pair_counts(
    X: np.ndarray, radii: np.ndarray, codes: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Counts (m, R) of the other rows of ``X`` closer than each radius (blocks of rows), and
    the same pairs by the groups ``codes`` (0 .. G-1) of their two rows, shape (G, G, R)."""
    m = X.shape[0]
    n_g = int(codes.max()) + 1 if codes.size else 0
    col_codes = torch.as_tensor(codes, dtype=torch.int64, device=device)
    x = torch.as_tensor(X, dtype=torch.float32, device=device)
    x = x - x.mean(dim=0, keepdim=True)
    sq = (x * x).sum(dim=1)
    edges = torch.as_tensor(radii, dtype=torch.float32, device=device) ** 2
    n_r = int(radii.size)
    out = np.empty((m, n_r), dtype=np.float32)
    by_group = torch.zeros(n_g * n_g * (n_r + 1), dtype=torch.int64, device=device)
    block = max(1, min(m, 2_000_000 // max(m, 1)))
    for start in range(0, m, block):
        stop = min(m, start + block)
        d2 = (sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)).clamp_min_(0.0)
        d2[torch.arange(stop - start), torch.arange(start, stop)] = float("inf")
        # bin b: edges[b-1] <= d2 < edges[b]; the point is closer than radius b when bin <= b.
        bins = torch.bucketize(d2, edges, right=True)
        key = bins + (n_r + 1) * torch.arange(stop - start, device=device)[:, None]
        hist = torch.bincount(key.ravel(), minlength=(stop - start) * (n_r + 1))
        cum = hist.view(stop - start, n_r + 1).cumsum(dim=1)[:, :n_r]
        out[start:stop] = cum.cpu().numpy()
        pair = col_codes[start:stop, None] * n_g + col_codes[None, :]
        by_group += torch.bincount((pair * (n_r + 1) + bins).ravel(), minlength=by_group.numel())
    grouped = by_group.view(n_g, n_g, n_r + 1).cumsum(dim=2)[:, :, :n_r]
    return out, grouped.cpu().numpy().astype(np.float64)


def correlation_counts(
    hidden_states: HiddenStates,
    layer: int,
    *,
    n_radii: int = 64,
    max_points: int = 6000,
    drop_first: bool = True,
    metric: str = "euclidean",
    drop_outliers: bool = False,
    random_state: int = 0,
    graphs: GraphCache | None = None,
    device: str = "auto",
) -> CorrelationCounts:
    """Count, once, each distinct point's partners closer than each radius of a log grid.

    Why: the correlation dimension is a slope inside a window the user should be able to move.
    With the counts kept per point, any window and its bootstrap over prompts are a few
    matrix products (:meth:`CorrelationCounts.fit`); only a new layer counts again.

    Parameters
    ----------
    n_radii : int, default 64
        Radii of each of two log-spaced grids: one from half the smallest neighbour distance
        to the cloud's diameter, one from the default window's ends / 1.25 to x 1.25.
    max_points : int, default 6000
        Above this many distinct points, a seeded random subset is counted (all its pairs:
        the cost is ``max_points**2`` distances).
    drop_first, metric, drop_outliers
        The cloud, as in :func:`~tokendim_widgets.analysis.id_curve`.

    Examples
    --------
    >>> from tokendim_widgets import HiddenStates
    >>> X = np.random.default_rng(0).random((1, 2000, 2)).astype("float32")
    >>> cc = correlation_counts(HiddenStates.from_arrays(X), 0, drop_first=False, device="cpu")
    >>> round(cc.fit()["dimension"])
    2
    """
    index = _layer_index(hidden_states, layer)
    n_radii = check_int(n_radii, "n_radii", 8)
    max_points = check_int(max_points, "max_points", 10)
    cache = _cache(hidden_states, graphs, device)
    spec = CloudSpec("all", drop_first, metric, drop_outliers)
    graph = cache.graph(index, spec, k=WINDOW_RANKS[1])
    if graph.k < WINDOW_RANKS[1]:
        raise TokendimError(
            f"Layer {index} has {graph.n_unique} distinct points: the correlation window needs "
            f"at least {WINDOW_RANKS[1] + 1}."
        )
    rows = cache.rows(index, spec)
    keep = graph.keep
    chosen = np.arange(keep.size)
    if keep.size > max_points:
        rng = np.random.default_rng([random_state, index])
        chosen = np.sort(rng.choice(keep.size, size=max_points, replace=False))
    X = cache.points(index, rows[keep[chosen]], metric)
    centred = X - X.mean(axis=0)
    diameter = 2.0 * float(np.sqrt((centred.astype(np.float64) ** 2).sum(axis=1).max()))
    smallest = float(graph.distances[:, 0][graph.distances[:, 0] > 0].min())
    window = (
        float(np.median(graph.distances[:, WINDOW_RANKS[0] - 1])),
        float(np.median(graph.distances[:, WINDOW_RANKS[1] - 1])),
    )
    # A coarse grid over every scale, and a fine one around the default window, where token
    # clouds' windows are narrow (the 10th and 20th neighbours are often only 5% apart).
    top = max(diameter, smallest * 4.0)
    around = np.geomspace(max(window[0] / 1.25, smallest / 2), min(window[1] * 1.25, top), n_radii)
    radii = np.unique(np.concatenate([np.geomspace(smallest / 2.0, top, n_radii), around]))
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu")
    if device not in ("auto", "cpu"):
        dev = torch.device(device)
    labels = hidden_states.tokens["prompt"].to_numpy()[rows[keep[chosen]]]
    _, codes = as_group_labels(labels, labels.size)
    counts, by_prompt = _pair_counts(X, radii, codes, dev)
    return CorrelationCounts(radii, counts, labels, by_prompt, window, int(rows.size))


def _small_graph(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of a few hundred rows, from their full distance matrix.

    A prompt's cloud is small: one matrix product avoids the per-call cost of the tiled search
    built for whole layers (SmolLM2-135M, 120 prompts, 2 busy CPU cores: 6 s instead of 20 s).
    """
    sq = (X * X).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    k = min(k, X.shape[0] - 1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(d2, idx, axis=1)), idx


def prompt_ids(
    hidden_states: HiddenStates,
    layer: int,
    *,
    min_tokens: int = MIN_PROMPT_TOKENS,
    drop_first: bool = True,
    metric: str = "euclidean",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One TwoNN estimate per prompt, from the distinct tokens of that prompt alone.

    Why: the pooled estimate mixes prompts; their spread shows whether one kind of text
    drives it. Each estimate is TwoNN's maximum-likelihood form (``method="mle"``), whose
    chi-squared interval treats a prompt's tokens as independent (so it is too narrow).

    Parameters
    ----------
    min_tokens : int, default 16
        Prompts with fewer distinct tokens (after ``drop_first``) are left out; their ids are
        in ``attrs["left_out"]``.

    Returns
    -------
    pandas.DataFrame
        One row per estimated prompt: ``prompt``, ``n_tokens``, ``dimension``, ``lower``,
        ``upper``; ``attrs``: ``left_out``, ``estimator``, ``min_tokens``.

    Examples
    --------
    >>> from tokendim_widgets import HiddenStates
    >>> X = np.random.default_rng(0).normal(size=(1, 400, 3)).astype("float32")
    >>> tokens = pd.DataFrame({"prompt": np.repeat(np.arange(4), 100),
    ...                        "position": np.tile(np.arange(100), 4)})
    >>> hs = HiddenStates.from_arrays(X, tokens)
    >>> prompt_ids(hs, 0)["prompt"].tolist()
    [0, 1, 2, 3]
    """
    index = _layer_index(hidden_states, layer)
    min_tokens = check_int(min_tokens, "min_tokens", 4)
    tokens = hidden_states.tokens
    states = np.asarray(hidden_states.layer(index), dtype=np.float32)
    prompts = tokens["prompt"].to_numpy()
    out, left_out = [], []
    for rows in CloudSpec("per_prompt", drop_first, metric).groups(tokens):
        prompt = int(prompts[rows[0]])
        X = states[rows].astype(np.float64)
        if metric == "cosine":
            X = unit_rows(X)
        try:
            if rows.size < min_tokens:
                raise TokendimError("too few tokens")
            graph = graph_from_arrays(*_small_graph(X, 8))
            if graph.n_unique < min_tokens:
                raise TokendimError("too few distinct tokens")
            est = TwoNN(method="mle", interval="analytic", confidence=confidence, device="cpu")
            est.fit(X, knn=graph)
        except TokendimError:
            left_out.append(prompt)
            continue
        low, high = est.dimension_interval_
        out.append(
            {
                "prompt": prompt,
                "n_tokens": int(rows.size),
                "dimension": float(est.dimension_),
                "lower": float(low),
                "upper": float(high),
            }
        )
    table = pd.DataFrame(out, columns=["prompt", "n_tokens", "dimension", "lower", "upper"])
    table.attrs.update(
        layer=index,
        left_out=left_out,
        min_tokens=min_tokens,
        estimator="TwoNN (maximum likelihood) on each prompt's tokens",
    )
    return table


def layer_convergence(
    hidden_states: HiddenStates,
    layer: int,
    estimator: Any = "twonn",
    *,
    levels: int = 4,
    min_points: int = 100,
    drop_first: bool = True,
    metric: str = "euclidean",
    **options: Any,
) -> pd.DataFrame:
    """The layer's estimate at N, N/2, N/4, ... distinct points, with intervals.

    :func:`~tokendim_widgets.analysis.convergence` restricted to one layer: a column that
    still rises as N doubles says more points would raise the estimate further.

    Returns
    -------
    pandas.DataFrame
        ``n``, ``dimension``, ``lower``, ``upper``, largest N first.
    """
    index = _layer_index(hidden_states, layer)
    table = convergence(
        hidden_states,
        estimator,
        layers=[index],
        levels=levels,
        min_points=min_points,
        cloud="all",
        drop_first=drop_first,
        metric=metric,
        **options,
    )
    return table[["n", "dimension", "lower", "upper"]].reset_index(drop=True)
