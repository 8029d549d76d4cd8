"""From hidden states to what the views show: ID curves, local-ID matrices and paper metrics.

Plain functions over :class:`~tokendim_widgets.hidden_states.HiddenStates`; they know nothing
of sessions or widgets. Each takes an optional :class:`~tokendim_widgets.graphs.GraphCache` so
that a caller computing several analyses of the same states searches neighbours only once.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from . import extraction
from .clouds import CloudSpec, unit_rows
from .errors import SupportWarning, TokendimError
from .estimators import ESTIMATORS, MLE, make_estimator
from .graphs import NEAR_COPY_RATIO, NEAR_COPY_WARN, GraphCache, build_capped, near_copy_fraction
from .hidden_states import HiddenStates
from .knn import KNNGraph, deduplicate
from .support import support_warning
from .validation import check_int

#: Default estimator of the curve: TwoNN needs only two neighbours, so it is the least
#: sensitive to the scale at which token clouds change character, and it has an analytic
#: error bar in its maximum-likelihood form.
DEFAULT_ESTIMATOR = "twonn"

CURVE_COLUMNS = (
    "layer",
    "depth",
    "dimension",
    "lower",
    "upper",
    "estimator",
    "n_tokens",
    "n_distinct",
    "n_outliers",
    "near_copy_fraction",
    "supported",
    "interval_method",
)

#: How id_curve groups tokens for its intervals by default: whole prompts are resampled,
#: since the tokens of one prompt are not independent.
DEFAULT_GROUPS = "prompt"


def as_estimator(estimator: Any) -> Any:
    """An unfitted estimator from a name, a ``(name, params)`` pair or an estimator."""
    if isinstance(estimator, str):
        return make_estimator(estimator)
    if isinstance(estimator, tuple) and len(estimator) == 2 and isinstance(estimator[0], str):
        return make_estimator(estimator[0], **dict(estimator[1]))
    if hasattr(estimator, "fit") and hasattr(estimator, "required_neighbors"):
        return copy.deepcopy(estimator)
    raise TokendimError(
        f"Not an estimator: {estimator!r}. Pass a name ({', '.join(ESTIMATORS)}), a "
        "(name, params) pair, or an estimator instance such as TwoNN()."
    )


def estimator_params(estimator: Any) -> dict[str, Any]:
    """The constructor parameters of an estimator, read back from its attributes."""
    params: dict[str, Any] = {}
    for name in inspect.signature(type(estimator).__init__).parameters:
        if name != "self" and hasattr(estimator, name):
            params[name] = getattr(estimator, name)
    return params


def estimator_label(estimator: Any) -> str:
    """A short label, e.g. ``"mle(k=20)"``: the registry name and its non-default parameters."""
    cls = type(estimator)
    name = next((n for n, c in ESTIMATORS.items() if c is cls), cls.__name__)
    defaults = {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    changed = [
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
        for key, value in estimator_params(estimator).items()
        if key in defaults and _differs(value, defaults[key])
    ]
    return f"{name}({', '.join(changed)})" if changed else name


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except (TypeError, ValueError):
        return True


def _layers(hidden_states: HiddenStates, layers: Iterable[int] | None) -> list[int]:
    n = hidden_states.n_layers
    if layers is None:
        return list(range(n))
    chosen = [int(layer) + n if int(layer) < 0 else int(layer) for layer in layers]
    bad = [layer for layer in chosen if not 0 <= layer < n]
    if bad:
        raise TokendimError(f"Layers {bad} are out of range: these states have {n} (0..{n - 1}).")
    return chosen


def _accepts_groups(estimator: Any) -> bool:
    return "groups" in inspect.signature(estimator.fit).parameters


@dataclass
class LayerFit:
    """One estimator fitted on one layer's cloud, with what the curve reports of it."""

    dimension: float
    lower: float
    upper: float
    n_tokens: int
    n_distinct: int
    near_copy_fraction: float
    interval_method: str
    replicates: np.ndarray | None


def _fit_rows(
    estimator: Any,
    X: np.ndarray,
    graph: KNNGraph | None,
    labels: np.ndarray | None,
) -> LayerFit:
    """Fit ``estimator`` on the rows ``X`` (with their graph and group labels when given)."""
    if graph is not None and graph.k < estimator.required_neighbors:
        raise TokendimError(
            f"{estimator_label(estimator)} needs {estimator.required_neighbors} neighbours per "
            f"point, so at least {estimator.required_neighbors + 1} distinct points, but this "
            f"cloud has only {graph.n_unique} distinct points ({graph.n_points} tokens). Use "
            "more prompts or longer ones, or a smaller k."
        )
    kwargs: dict[str, Any] = {"knn": graph}
    if labels is not None and _accepts_groups(estimator):
        kwargs["groups"] = labels
    fitted = estimator.fit(X, **kwargs)
    low, high = fitted.dimension_interval_
    reps = getattr(fitted, "bootstrap_dimensions_", None)
    n_rows = int(getattr(fitted, "n_points_", None) or X.shape[0])
    n_distinct = n_rows - int(getattr(fitted, "n_duplicates_", 0))
    return LayerFit(
        float(fitted.dimension_),
        float(low),
        float(high),
        n_rows,
        n_distinct,
        near_copy_fraction(graph) if graph is not None else 0.0,
        str(getattr(fitted, "interval_method_", "analytic")),
        None if reps is None else np.asarray(reps, dtype=np.float64),
    )


def _group_labels(hidden_states: HiddenStates, rows: np.ndarray, groups: Any) -> np.ndarray | None:
    if groups is None:
        return None
    if isinstance(groups, str):
        if groups != "prompt":
            raise TokendimError(
                f"groups must be 'prompt', None or one label per token, got {groups!r}."
            )
        return hidden_states.tokens["prompt"].to_numpy()[rows]
    labels = np.asarray(groups)
    if labels.shape != (hidden_states.n_tokens,):
        raise TokendimError(
            f"groups must hold one label per token ({hidden_states.n_tokens}), got shape "
            f"{labels.shape}."
        )
    return labels[rows]


def _subsample_distinct(
    X: np.ndarray, rows: np.ndarray, n: int, rtol: float, seed: int, layer: int, kind: str
) -> np.ndarray:
    """Positions in ``rows`` of a seeded sample holding exactly ``n`` distinct points.

    The embedding layer (a lookup table: repeated tokens coincide) keeps all its distinct
    points when it has fewer than ``n``; any other layer with fewer is an error.
    """
    keep, inverse = deduplicate(X, rtol=rtol)
    if n >= len(keep):
        if n == len(keep) or kind == "embedding":
            return np.arange(len(rows))
        raise TokendimError(
            f"n={n} distinct points were asked for, but layer {layer} has only {len(keep)} "
            f"({len(rows)} tokens). Use n <= {len(keep)}."
        )
    rng = np.random.default_rng([seed, layer])
    chosen = np.zeros(len(keep), dtype=bool)
    chosen[rng.choice(len(keep), size=n, replace=False)] = True
    return np.flatnonzero(chosen[inverse])


def _fit_layer(
    estimator: Any,
    graphs: GraphCache,
    layer: int,
    spec: CloudSpec,
    group: int,
    labels_of: Any,
    n: int | None,
    seed: int,
) -> LayerFit:
    rows = graphs.rows(layer, spec, group)
    if n is None:
        graph = graphs.graph(layer, spec, group, k=estimator.required_neighbors)
        X = graphs.points(layer, rows, spec.metric)
        return _fit_rows(estimator, X, graph, labels_of(rows))
    X = graphs.points(layer, rows, spec.metric)
    rtol = graphs.rtol_for(X)
    kind = graphs.hidden_states.layer_kinds[layer]
    picked = _subsample_distinct(X, rows, n, rtol, seed, layer, kind)
    sub = X[picked]
    graph = build_capped(sub, estimator.required_neighbors, device=graphs.device, rtol=rtol)
    return _fit_rows(estimator, sub, graph, labels_of(rows[picked]))


def id_curve(
    hidden_states: HiddenStates,
    estimator: Any = DEFAULT_ESTIMATOR,
    *,
    cloud: str = "all",
    drop_first: bool = True,
    layers: Iterable[int] | None = None,
    graphs: GraphCache | None = None,
    groups: Any = DEFAULT_GROUPS,
    n: int | None = None,
    metric: str = "euclidean",
    drop_outliers: bool = False,
    random_state: int = 0,
    warn: bool = True,
) -> pd.DataFrame:
    """The intrinsic dimension of each layer's token cloud, with its interval.

    Parameters
    ----------
    hidden_states : HiddenStates
        The output of :func:`~tokendim_widgets.extract` (or synthetic states).
    estimator : str, (str, dict) or estimator, default "twonn"
        Which estimator: a registry name (``"twonn"``, ``"mle"``, ``"gride"``,
        ``"correlation"``, ``"pca"``), a name with parameters, or an instance.
    cloud : {"all", "last", "per_prompt"}, default "all"
        How the cloud is built (see :mod:`tokendim_widgets.clouds`). ``"all"`` pools every
        token: the paper's cloud and the largest one. ``"per_prompt"`` estimates each prompt
        separately and reports the mean with a 95% interval of that mean.
    drop_first : bool, default True
        Leave out input position 0 (the attention sink of Llama-style models).
    layers : iterable of int, optional
        A subset of layers (negative indices count from the end).
    graphs : GraphCache, optional
        Reuse kNN graphs computed earlier for these states.
    groups : "prompt", None or array of one label per token, default "prompt"
        The resampling unit of the intervals: the estimator resamples whole groups (tokens of
        one prompt are not independent). ``None`` leaves the choice to the estimator.
    n : int, optional
        Estimate every layer on a seeded sample of exactly ``n`` distinct points, so that
        layers (and models) are compared at one sample size. The embedding layer keeps all
        its distinct points when it has fewer (repeated tokens coincide there).
    metric : {"euclidean", "cosine"}, default "euclidean"
        Geometry of the cloud; cosine normalises every row to unit length.
    drop_outliers : bool, default False
        Leave out massive-norm tokens (norm over 20 times the layer's median), layer by layer.
    random_state : int, default 0
        Seed of the ``n`` sample.
    warn : bool, default True
        Warn about layers on too few distinct points (:class:`SupportWarning`) or driven by
        near copies (:class:`NearCopyWarning`). The ``supported`` and ``near_copy_fraction``
        columns say the same either way.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer``, ``depth`` (layer / last layer), ``dimension``,
        ``lower``, ``upper``, ``estimator`` (label), ``n_tokens`` (rows of the cloud),
        ``n_distinct`` (points after merging copies: the effective sample size),
        ``n_outliers`` (massive-norm tokens at that layer), ``near_copy_fraction`` (points
        whose nearest neighbour is closer than a tenth of the median neighbour distance)
        and ``interval_method``. The frame's ``attrs`` hold the model, the prompt set, the
        cloud, the estimator's parameters, the layer kinds and the paired bootstrap
        replicates that :func:`summarize` turns into intervals of the metrics.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, id_curve
    >>> rng = np.random.default_rng(0)
    >>> planes = [rng.normal(size=(500, d)) @ rng.normal(size=(d, 32)) for d in (2, 6, 3)]
    >>> hs = HiddenStates.from_arrays(np.stack(planes).astype("float32"))
    >>> curve = id_curve(hs, "twonn", drop_first=False)
    >>> [round(x) for x in curve["dimension"]]
    [2, 6, 3]
    """
    template = as_estimator(estimator)
    spec = CloudSpec(cloud, drop_first, metric, drop_outliers)
    graphs = graphs if graphs is not None else GraphCache(hidden_states)
    if graphs.hidden_states is not hidden_states:
        raise TokendimError("The GraphCache given was built for other hidden states.")
    if n is not None:
        n = check_int(n, "n", 3)
        if spec.cloud == "per_prompt":
            raise TokendimError("n= subsamples a pooled cloud; use cloud='all' or 'last'.")
    chosen = _layers(hidden_states, layers)
    cloud_groups = graphs.groups(spec)
    if not cloud_groups or all(len(g) == 0 for g in cloud_groups):
        raise TokendimError(f"The {spec.label!r} cloud is empty: no tokens to estimate on.")
    label = estimator_label(template)
    last = max(hidden_states.n_layers - 1, 1)

    def labels_of(rows: np.ndarray) -> np.ndarray | None:
        return _group_labels(hidden_states, rows, groups)

    records, replicates = [], []
    for layer in chosen:
        outliers = (
            int(graphs.outliers(layer)[graphs.groups(spec)[0]].sum())
            if spec.cloud != "per_prompt"
            else 0
        )
        if spec.cloud != "per_prompt":
            fit = _fit_layer(
                copy.deepcopy(template), graphs, layer, spec, 0, labels_of, n, random_state
            )
        else:
            fit = _per_prompt(template, graphs, layer, spec, cloud_groups)
        supported = _supported(template, fit, layer, warn)
        if warn and fit.near_copy_fraction > NEAR_COPY_WARN:
            warnings.warn(
                f"Layer {layer}: {fit.near_copy_fraction:.0%} of the points have a neighbour "
                f"closer than {NEAR_COPY_RATIO:g} of the median neighbour distance: the "
                "estimate may be driven by near copies (states that differ only by rounding). "
                "Compare with a larger merge threshold (GraphCache(states, rtol=...)) or "
                "with MLE/GRIDE at larger scales.",
                NearCopyWarning,
                stacklevel=2,
            )
        records.append(
            (
                layer,
                layer / last,
                fit.dimension,
                fit.lower,
                fit.upper,
                label,
                fit.n_tokens,
                fit.n_distinct,
                outliers,
                fit.near_copy_fraction,
                supported,
                fit.interval_method,
            )
        )
        replicates.append(fit.replicates)
    curve = pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))
    kinds = dict(zip(hidden_states.layer_ids, hidden_states.layer_kinds, strict=True))
    positions = {i: hidden_states.layer_ids[i] for i in range(hidden_states.n_layers)}
    curve.attrs.update(
        model=hidden_states.model_id,
        prompt_set=_prompt_set_name(hidden_states),
        n_layers=hidden_states.n_layers,
        cloud=spec.cloud,
        drop_first=spec.drop_first,
        metric=spec.metric,
        estimator=label,
        params=estimator_params(template),
        layer_kinds=tuple(kinds[positions[layer]] for layer in chosen),
        compute_dtype=hidden_states.compute_dtype,
        n=n,
    )
    present = [r for r in replicates if r is not None and r.size]
    if len(present) == len(replicates) and len({r.size for r in present}) == 1:
        curve.attrs["replicates"] = tuple(tuple(float(v) for v in r) for r in present)
    return curve


def concat_curves(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One curve from curves of single layers (or layer ranges) of the same states and options.

    Rows are concatenated; the per-layer ``attrs`` (layer kinds, bootstrap replicates) are
    joined in the same order, so :func:`summarize` sees the whole curve.
    """
    if not parts:
        raise TokendimError("concat_curves() needs at least one curve.")
    curve = pd.concat(list(parts), ignore_index=True)
    attrs = dict(parts[0].attrs)
    attrs["layer_kinds"] = tuple(k for p in parts for k in p.attrs.get("layer_kinds", ()))
    reps = [p.attrs.get("replicates") for p in parts]
    present = [r for r in reps if r]
    if len(present) == len(reps) and len({len(r[0]) for r in present}) == 1:
        attrs["replicates"] = tuple(row for r in present for row in r)
    else:
        attrs.pop("replicates", None)
    curve.attrs = attrs
    return curve


def _supported(template: Any, fit: LayerFit, layer: int, warn: bool) -> bool:
    """Whether the layer's estimate rests on enough distinct points (warns when not)."""
    try:
        message = support_warning(
            template, fit.n_distinct, fit.dimension, n_points=fit.n_tokens, layer=layer
        )
    except TokendimError:
        return True  # an estimator of the user's own: no rule to apply
    if message is None:
        return True
    if warn:
        warnings.warn(message, SupportWarning, stacklevel=3)
    return False


class NearCopyWarning(UserWarning):
    """An estimate may be driven by near copies the duplicate threshold did not merge."""


def _per_prompt(
    template: Any, graphs: GraphCache, layer: int, spec: CloudSpec, groups: list[np.ndarray]
) -> LayerFit:
    needed = int(template.required_neighbors) + 2
    dims, tokens, distinct = [], 0, 0
    for group, rows in enumerate(groups):
        if len(rows) < needed:
            continue
        try:
            fit = _fit_layer(
                copy.deepcopy(template), graphs, layer, spec, group, lambda r: None, None, 0
            )
        except TokendimError:
            continue  # a prompt whose tokens collapse onto too few distinct points
        if np.isfinite(fit.dimension):
            dims.append(fit.dimension)
            tokens += fit.n_tokens
            distinct += fit.n_distinct
    if not dims:
        raise TokendimError(
            f"No prompt has the {needed} distinct tokens that a per-prompt estimate with "
            f"{estimator_label(template)} needs. Use longer prompts or cloud='all'."
        )
    values = np.asarray(dims)
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return LayerFit(mean, mean - half, mean + half, tokens, distinct, 0.0, "t over prompts", None)


def _prompt_set_name(hidden_states: HiddenStates) -> str:
    prompt_set = getattr(hidden_states, "prompt_set", None)
    if isinstance(prompt_set, Mapping):
        return str(prompt_set.get("name", ""))
    return str(getattr(prompt_set, "name", prompt_set or ""))


def local_id(
    hidden_states: HiddenStates,
    k: int = 20,
    *,
    drop_first: bool = True,
    layers: Iterable[int] | None = None,
    graphs: GraphCache | None = None,
    metric: str = "euclidean",
) -> pd.DataFrame:
    """The local dimension of every token at every layer (the heatmap).

    Each token's value is the Levina-Bickel maximum-likelihood estimate from its ``k`` nearest
    neighbours in the pooled cloud of its layer. Exact duplicates share their representative's
    value; tokens left out of the cloud (position 0 when ``drop_first``) are NaN.

    Parameters
    ----------
    hidden_states : HiddenStates
    k : int, default 20
        Neighbours per estimate: smaller is more local and noisier.
    drop_first : bool, default True
        Leave out input position 0 (the attention sink); its entries are NaN.
    layers : iterable of int, optional
    graphs : GraphCache, optional
    metric : {"euclidean", "cosine"}, default "euclidean"

    Returns
    -------
    pandas.DataFrame
        Tokens x layers (float32), with the same index as ``hidden_states.tokens`` and one
        column per layer.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, local_id
    >>> rng = np.random.default_rng(0)
    >>> hs = HiddenStates.from_arrays(rng.normal(size=(2, 400, 3)).astype("float32"))
    >>> matrix = local_id(hs, k=10, drop_first=False)
    >>> matrix.shape
    (400, 2)
    """
    spec = CloudSpec("all", drop_first, metric)
    graphs = graphs if graphs is not None else GraphCache(hidden_states)
    chosen = _layers(hidden_states, layers)
    k = check_int(k, "k", 2)
    rows = graphs.rows(chosen[0] if chosen else 0, spec, 0)
    out = np.full((hidden_states.n_tokens, len(chosen)), np.nan, dtype=np.float32)
    for j, layer in enumerate(chosen):
        graph = graphs.graph(layer, spec, 0, k=k)
        if graph.k < k:
            raise TokendimError(
                f"A local ID with k={k} needs {k + 1} distinct points, but layer {layer} has "
                f"only {graph.n_unique} ({graph.n_points} tokens). Use a smaller k or more "
                "prompts."
            )
        fitted = MLE(k=k, interval="analytic").fit(graphs.points(layer, rows, metric), knn=graph)
        out[rows, j] = np.asarray(fitted.local_dimensions_, dtype=np.float32)
    frame = pd.DataFrame(out, index=hidden_states.tokens.index, columns=chosen)
    frame.columns.name = "layer"
    frame.attrs.update(model=hidden_states.model_id, k=int(k), drop_first=drop_first, metric=metric)
    return frame


METRIC_COLUMNS = (
    "working_dimension",
    "working_dimension_lower",
    "working_dimension_upper",
    "working_layer",
    "working_layer_probability",
    "working_depth",
    "first_dimension",
    "final_dimension",
    "final_dimension_lower",
    "final_dimension_upper",
    "expansion_ratio",
    "expansion_ratio_lower",
    "expansion_ratio_upper",
    "contraction_ratio",
    "contraction_ratio_lower",
    "contraction_ratio_upper",
    "auc",
    "verdict",
    "unsupported_layers",
    "final_layer",
    "metrics_interval",
)

VERDICTS = ("expansion-contraction", "rising", "falling", "flat")

#: Draws of the normal approximation used when a curve carries no bootstrap replicates.
_NORMAL_DRAWS = 2000


def _curve_replicates(data: pd.DataFrame, curve: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(layers x replicates) estimates behind the metrics' intervals, and how they were made.

    Paired bootstrap replicates (one draw of prompts shared by every layer) when the curve
    carries them; otherwise independent normal draws matching each layer's interval.
    """
    reps = curve.attrs.get("replicates")
    if reps is not None and len(reps) == len(curve):
        matrix = np.asarray(reps, dtype=np.float64)
        order = np.argsort(curve["layer"].to_numpy(), kind="stable")
        method = (
            str(curve["interval_method"].iloc[0]) if "interval_method" in curve else "bootstrap"
        )
        return matrix[order], f"paired {method}"
    dims = data["dimension"].to_numpy(dtype=float)
    if "lower" in data and "upper" in data:
        z = float(NormalDist().inv_cdf(0.975))
        se = (data["upper"].to_numpy(dtype=float) - data["lower"].to_numpy(dtype=float)) / (2 * z)
        se = np.where(np.isfinite(se) & (se > 0), se, 0.0)
    else:
        se = np.zeros_like(dims)
    rng = np.random.default_rng(0)
    draws = dims[:, None] + se[:, None] * rng.standard_normal((dims.size, _NORMAL_DRAWS))
    label = "normal, layers independent" if se.any() else "none (no layer intervals)"
    return draws, label


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


def _metric_inputs(curve: pd.DataFrame, peak_from: int) -> dict[str, Any]:
    if len(curve) == 0:
        raise TokendimError("The curve is empty: nothing to summarise.")
    order = np.argsort(curve["layer"].to_numpy(), kind="stable")
    data = curve.iloc[order]
    dims = data["dimension"].to_numpy(dtype=float)
    layers = data["layer"].to_numpy()
    finite = np.isfinite(dims)
    if not finite.any():
        raise TokendimError("The curve has no finite dimension to summarise.")
    eligible = finite & (layers >= peak_from)
    if not eligible.any():
        eligible = finite
    return {"data": data, "dims": dims, "layers": layers, "finite": finite, "eligible": eligible}


def peak_probabilities(curve: pd.DataFrame, *, peak_from: int = 1) -> pd.Series:
    """The probability of the working-space peak at each layer, over the curve's replicates.

    Each replicate (one resampling of the prompts, shared by every layer) has its own
    arg-max; the share of replicates per layer is how sure the curve is of its peak.

    Examples
    --------
    >>> import pandas as pd
    >>> curve = pd.DataFrame({"layer": [0, 1, 2], "dimension": [4.0, 9.0, 5.0],
    ...                       "lower": [3.9, 8.9, 4.9], "upper": [4.1, 9.1, 5.1]})
    >>> peak_probabilities(curve).round(2).tolist()
    [0.0, 1.0, 0.0]
    """
    inputs = _metric_inputs(curve, peak_from)
    draws, _ = _curve_replicates(inputs["data"], curve)
    masked = np.where(inputs["eligible"][:, None] & np.isfinite(draws), draws, -np.inf)
    valid = np.isfinite(masked).any(axis=0)
    peaks = np.argmax(masked[:, valid], axis=0)
    counts = np.bincount(peaks, minlength=len(inputs["layers"]))
    total = max(int(valid.sum()), 1)
    return pd.Series(counts / total, index=pd.Index(inputs["layers"], name="layer"), name="p_peak")


def summarize(curve: pd.DataFrame, *, peak_from: int = 1, confidence: float = 0.95) -> pd.Series:
    """The paper's summary metrics of one ID curve, with intervals and a verdict on its shape.

    The working-space peak is searched from layer ``peak_from`` on (default 1): layer 0 holds
    the embeddings, a lookup table of distinct token vectors rather than a computed
    representation, and its estimate can exceed every later layer's. ``first_dimension`` is
    the curve at the first searched layer, so the expansion is measured from there.

    Intervals come from the curve's paired bootstrap replicates (the same resampling of the
    prompts at every layer, see :func:`id_curve`): each metric is computed per replicate and
    its ``confidence`` percentile interval reported. Curves without replicates use independent
    normal draws matching each layer's interval (``metrics_interval`` says which).

    ``working_dimension``, ``working_layer``, ``working_depth``
        The peak of the curve (the "working space"), its layer and relative depth.
        ``working_layer_probability`` is the share of replicates that peak at that layer.
    ``first_dimension``, ``final_dimension``
        The curve at the first searched layer and at the last layer (``final_layer`` is the
        last layer's kind: ``"pre_norm"`` is the residual stream before the final norm).
    ``expansion_ratio``, ``contraction_ratio``
        Peak over first, and peak over final.
    ``auc``
        The area under the curve against relative depth over the depth covered: a mean
        dimension that compares models of different depth.
    ``unsupported_layers``
        Layers whose estimate rests on too few distinct points
        (:func:`~tokendim_widgets.support.support_warning`): do not read their values.
    ``verdict``
        ``"expansion-contraction"`` only when both ratios' intervals exclude 1; otherwise
        ``"rising"`` or ``"falling"`` when the interval of final over first excludes 1, else
        ``"flat"``.

    Examples
    --------
    >>> import pandas as pd
    >>> curve = pd.DataFrame({"layer": [0, 1, 2, 3], "dimension": [4.0, 12.0, 9.0, 6.0]})
    >>> m = summarize(curve)
    >>> m[["working_dimension", "working_layer", "contraction_ratio"]].tolist()
    [12.0, 1, 2.0]
    """
    inputs = _metric_inputs(curve, peak_from)
    data, dims, layers = inputs["data"], inputs["dims"], inputs["layers"]
    finite, eligible = inputs["finite"], inputs["eligible"]
    peak = int(np.argmax(np.where(eligible, dims, -np.inf)))
    start = int(np.flatnonzero(eligible)[0])
    end = int(np.flatnonzero(finite)[-1])
    n_layers = int(curve.attrs.get("n_layers", int(layers.max()) + 1))
    last = max(n_layers - 1, 1)
    depth = layers / last
    first, final, top = float(dims[start]), float(dims[end]), float(dims[peak])
    auc = float(np.trapezoid(dims[finite], depth[finite])) if finite.sum() > 1 else top
    span = float(depth[finite].max() - depth[finite].min())

    draws, method = _curve_replicates(data, curve)
    masked = np.where(eligible[:, None], draws, -np.inf)
    masked = np.where(np.isfinite(masked), masked, -np.inf)
    rep_peak = np.argmax(masked, axis=0)
    rep_top = masked[rep_peak, np.arange(masked.shape[1])]
    rep_first, rep_final = draws[start], draws[end]
    expansion = _ratio(rep_top, rep_first)
    contraction = _ratio(rep_top, rep_final)
    rise = _ratio(rep_final, rep_first)
    exp_lo, exp_hi = _interval(expansion, confidence)
    con_lo, con_hi = _interval(contraction, confidence)
    rise_lo, rise_hi = _interval(rise, confidence)
    if exp_lo > 1 and con_lo > 1:
        verdict = "expansion-contraction"
    elif rise_lo > 1:
        verdict = "rising"
    elif rise_hi < 1:
        verdict = "falling"
    else:
        verdict = "flat"
    kinds = curve.attrs.get("layer_kinds")
    final_kind = (
        str(kinds[int(np.argsort(curve["layer"].to_numpy(), kind="stable")[end])]) if kinds else ""
    )
    work_lo, work_hi = _interval(rep_top, confidence)
    fin_lo, fin_hi = _interval(rep_final, confidence)
    return pd.Series(
        {
            "working_dimension": top,
            "working_dimension_lower": work_lo,
            "working_dimension_upper": work_hi,
            "working_layer": int(layers[peak]),
            "working_layer_probability": float(np.mean(rep_peak == peak)),
            "working_depth": float(layers[peak] / last),
            "first_dimension": first,
            "final_dimension": final,
            "final_dimension_lower": fin_lo,
            "final_dimension_upper": fin_hi,
            "expansion_ratio": top / first if first > 0 else np.nan,
            "expansion_ratio_lower": exp_lo,
            "expansion_ratio_upper": exp_hi,
            "contraction_ratio": top / final if final > 0 else np.nan,
            "contraction_ratio_lower": con_lo,
            "contraction_ratio_upper": con_hi,
            "auc": auc / span if span > 0 else top,
            "verdict": verdict,
            "unsupported_layers": (
                int((~data["supported"].astype(bool)).sum()) if "supported" in data else 0
            ),
            "final_layer": final_kind,
            "metrics_interval": method,
        },
        name=_curve_name(curve),
    )


def _curve_name(curve: pd.DataFrame) -> str:
    parts = [str(curve.attrs[key]) for key in ("model", "estimator") if curve.attrs.get(key)]
    return " / ".join(parts) if parts else "curve"


def compare(
    curves: Mapping[str, Any] | Sequence[Any] | pd.DataFrame,
    *,
    peak_from: int = 1,
    estimator: Any = DEFAULT_ESTIMATOR,
    match_n: int | str | None = None,
    confidence: float = 0.95,
    **curve_options: Any,
) -> pd.DataFrame:
    """One metrics table for several curves (models, estimators, clouds).

    Parameters
    ----------
    curves : mapping of label to curve or HiddenStates, sequence of them, or one curve
        Labels default to "model / estimator" from each curve's ``attrs``. Hidden states are
        turned into curves with ``estimator`` (and ``curve_options``, passed to
        :func:`id_curve`).
    match_n : int or "min", optional
        Estimate every layer of every model on the same number of distinct points (an int,
        or ``"min"``: the smallest number any layer but the embeddings has, over all models).
        Needs hidden states.
    confidence : float, default 0.95
        Level of the metrics' intervals.

    Returns
    -------
    pandas.DataFrame
        One row per curve, indexed by label, with the columns of :func:`summarize` plus
        ``model``, ``estimator``, ``cloud`` and ``n_distinct`` (the smallest over layers).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"layer": [0, 1, 2], "dimension": [3.0, 9.0, 5.0]})
    >>> b = pd.DataFrame({"layer": [0, 1, 2], "dimension": [3.0, 6.0, 5.0]})
    >>> compare({"big": a, "small": b})["working_dimension"].tolist()
    [9.0, 6.0]
    """
    if isinstance(curves, pd.DataFrame):
        items: list[tuple[str | None, Any]] = [(None, curves)]
    elif isinstance(curves, Mapping):
        items = [(str(label), curve) for label, curve in curves.items()]
    else:
        items = [(None, curve) for curve in curves]
    if not items:
        raise TokendimError("compare() needs at least one curve.")
    items = _as_curves(items, estimator, match_n, curve_options)
    rows = []
    for label, curve in items:
        row = summarize(curve, peak_from=peak_from, confidence=confidence).to_dict()
        row.update(
            model=curve.attrs.get("model", ""),
            estimator=curve.attrs.get("estimator", ""),
            cloud=curve.attrs.get("cloud", ""),
            n_distinct=int(curve["n_distinct"].min()) if "n_distinct" in curve else np.nan,
        )
        rows.append(pd.Series(row, name=label if label is not None else _curve_name(curve)))
    table = pd.DataFrame(rows)
    table.index.name = "curve"
    table["working_layer"] = table["working_layer"].astype(int)
    return table[["model", "estimator", "cloud", *METRIC_COLUMNS, "n_distinct"]]


def format_metrics(table: pd.DataFrame, confidence: float = 0.95) -> str:
    """The metrics table as text: each metric with its interval, the verdict first.

    Examples
    --------
    >>> import pandas as pd
    >>> curve = pd.DataFrame({"layer": [0, 1, 2], "dimension": [3.0, 9.0, 5.0]})
    >>> text = format_metrics(compare({"a": curve}))
    >>> text.split()[:3]
    ['verdict', 'working_dimension', 'working_layer']
    """

    def cell(row: pd.Series, key: str) -> str:
        value = row.get(key)
        if value is None or not np.isfinite(float(value)):
            return "--"
        low, high = row.get(f"{key}_lower"), row.get(f"{key}_upper")
        if low is None or high is None or not np.isfinite([float(low), float(high)]).all():
            return f"{float(value):.2f}"
        return f"{float(value):.2f} [{float(low):.2f}, {float(high):.2f}]"

    keys = ("working_dimension", "final_dimension", "expansion_ratio", "contraction_ratio")
    out = pd.DataFrame(index=table.index)
    out["verdict"] = [
        f"{row['verdict']} ({int(row['unsupported_layers'])} layers on too few points)"
        if row.get("unsupported_layers")
        else row["verdict"]
        for _, row in table.iterrows()
    ]
    for key in keys:
        out[key] = [cell(row, key) for _, row in table.iterrows()]
    out["working_layer"] = [
        f"{int(row['working_layer'])} ({float(row['working_layer_probability']):.2f})"
        for _, row in table.iterrows()
    ]
    out["auc"] = [f"{float(v):.2f}" for v in table["auc"]]
    n = table.get("n_distinct", pd.Series(np.nan, index=table.index))
    out["n_distinct"] = ["--" if not np.isfinite(float(v)) else str(int(v)) for v in n]
    order = ["verdict", "working_dimension", "working_layer", "final_dimension"]
    order += ["expansion_ratio", "contraction_ratio", "auc", "n_distinct"]
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        text = out[order].to_string()
    note = (
        f"{confidence:.0%} intervals from {table['metrics_interval'].iloc[0]}; the peak is "
        "searched from layer 1, (p) is the share of replicates peaking there"
    )
    return text + "\n" + note


def _as_curves(
    items: list[tuple[str | None, Any]],
    estimator: Any,
    match_n: int | str | None,
    options: Mapping[str, Any],
) -> list[tuple[str | None, pd.DataFrame]]:

    states = [(label, x) for label, x in items if isinstance(x, HiddenStates)]
    if match_n is not None and len(states) != len(items):
        raise TokendimError(
            "match_n= re-estimates every curve on the same number of points: pass hidden "
            "states (from extract), not finished curves."
        )
    if not states:
        return items
    n: int | None = None
    if match_n == "min":
        spec = CloudSpec(
            options.get("cloud", "all"),
            options.get("drop_first", True),
            options.get("metric", "euclidean"),
            options.get("drop_outliers", False),
        )
        n = min(_min_distinct(hs, spec) for _, hs in states)
    elif match_n is not None:
        n = check_int(match_n, "match_n", 3)
    out = []
    for label, x in items:
        if isinstance(x, HiddenStates):
            x = id_curve(x, estimator, n=n, **options)
            label = label if label is not None else f"{x.attrs['model']} / {x.attrs['estimator']}"
        out.append((label, x))
    return out


def _min_distinct(hidden_states: HiddenStates, spec: CloudSpec) -> int:
    """Fewest distinct points of any layer but the embeddings (see :func:`id_curve`'s ``n``)."""
    graphs = GraphCache(hidden_states)
    layers = [
        layer
        for layer in range(hidden_states.n_layers)
        if hidden_states.layer_kinds[layer] != "embedding"
    ] or list(range(hidden_states.n_layers))
    smallest = None
    for layer in layers:
        rows = graphs.rows(layer, spec, 0)
        X = graphs.points(layer, rows, spec.metric)
        keep, _ = deduplicate(X, rtol=graphs.rtol_for(X))
        smallest = len(keep) if smallest is None else min(smallest, len(keep))
    return int(smallest or 0)


def convergence(
    hidden_states: HiddenStates,
    estimator: Any = DEFAULT_ESTIMATOR,
    *,
    layers: Iterable[int] | None = None,
    levels: int = 4,
    min_points: int = 100,
    **curve_options: Any,
) -> pd.DataFrame:
    """Each layer's estimate at N, N/2, N/4, ... distinct points (decimation).

    A curve has converged where the estimate no longer moves as N doubles; ID estimators are
    biased low at small N, so a rising column says more points would still raise it.

    Parameters
    ----------
    levels : int, default 4
        How many halvings, from the smallest layer's number of distinct points down.
    min_points : int, default 100
        Smallest sample kept.

    Returns
    -------
    pandas.DataFrame
        One row per layer and sample size: ``layer``, ``n``, ``dimension``, ``lower``,
        ``upper``.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates
    >>> X = np.random.default_rng(0).normal(size=(1, 800, 3)).astype("float32")
    >>> conv = convergence(HiddenStates.from_arrays(X), drop_first=False, levels=3)
    >>> conv["n"].tolist()
    [800, 400, 200]
    """
    levels = check_int(levels, "levels", 1)
    min_points = check_int(min_points, "min_points", 3)
    spec = CloudSpec(
        curve_options.get("cloud", "all"),
        curve_options.get("drop_first", True),
        curve_options.get("metric", "euclidean"),
        curve_options.get("drop_outliers", False),
    )
    top = _min_distinct(hidden_states, spec)
    sizes = [top >> i for i in range(levels) if (top >> i) >= min_points]
    if not sizes:
        raise TokendimError(
            f"The cloud has {top} distinct points, fewer than min_points={min_points}."
        )
    frames = []
    for n in sizes:
        curve = id_curve(hidden_states, estimator, layers=layers, n=n, **curve_options)
        frames.append(curve[["layer", "dimension", "lower", "upper"]].assign(n=n))
    out = pd.concat(frames, ignore_index=True)
    return out[["layer", "n", "dimension", "lower", "upper"]].sort_values(
        ["layer", "n"], ascending=[True, False], ignore_index=True
    )


def gaussian_control(
    hidden_states: HiddenStates, *, seed: int = 0, **curve_options: Any
) -> HiddenStates:
    """Per layer, a Gaussian cloud with the layer's number of tokens and covariance.

    The null a reviewer asks for: a cloud with the same second moments and no manifold. Its
    ID curve (with the same estimator and options) shows what covariance alone explains.
    Tokens, prompts and positions are those of the states, so the same clouds are built.
    """

    rng = np.random.default_rng(seed)
    layers = []
    for layer in range(hidden_states.n_layers):
        X = np.asarray(hidden_states.layer(layer), dtype=np.float64)
        if curve_options.get("metric", "euclidean") == "cosine":
            X = unit_rows(X).astype(np.float64)
        mean = X.mean(axis=0)
        Xc = X - mean
        n, dim = Xc.shape
        if n <= dim:
            # Cov = Xc^T Xc / (n - 1): a Gaussian combination of the centred rows has it.
            Y = rng.standard_normal((n, n)) @ Xc / math.sqrt(max(n - 1, 1))
        else:
            values, vectors = np.linalg.eigh(Xc.T @ Xc / (n - 1))
            scale = np.sqrt(np.clip(values, 0.0, None))
            Y = (rng.standard_normal((n, dim)) * scale) @ vectors.T
        layers.append((Y + mean).astype(np.float32))
    return HiddenStates(
        layers,
        hidden_states.tokens,
        layer_ids=hidden_states.layer_ids,
        layer_kinds=hidden_states.layer_kinds,
        model_id=f"{hidden_states.model_id} (Gaussian control, seed {seed})",
        prompt_set=hidden_states.prompt_set,
        prompts=hidden_states.prompts,
        options=hidden_states.options,
    )


#: The null controls :func:`null_curves` computes.
NULL_CONTROLS = ("gaussian", "random_init")


def null_curves(
    hidden_states: HiddenStates,
    estimator: Any = DEFAULT_ESTIMATOR,
    *,
    controls: Sequence[str] = ("gaussian",),
    model: Any = None,
    seed: int = 0,
    **curve_options: Any,
) -> dict[str, pd.DataFrame]:
    """ID curves of null controls, computed exactly as :func:`id_curve` computes the real one.

    Parameters
    ----------
    controls : sequence of {"gaussian", "random_init"}, default ("gaussian",)
        ``"gaussian"``: per layer a Gaussian cloud matched in size and covariance
        (:func:`gaussian_control`). ``"random_init"``: the same architecture with seeded
        re-initialised weights, run on the same prompts
        (:func:`~tokendim_widgets.random_init_states`); needs ``model`` (the reference the
        states were extracted from) unless the states' ``model_id`` is one.
    seed : int, default 0

    Returns
    -------
    dict of str to pandas.DataFrame
        One curve per control, labelled in its ``attrs["model"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates
    >>> rng = np.random.default_rng(0)
    >>> planes = [rng.normal(size=(400, d)) @ rng.normal(size=(d, 16)) for d in (2, 5)]
    >>> hs = HiddenStates.from_arrays(np.stack(planes).astype("float32"))
    >>> null = null_curves(hs, "twonn", drop_first=False)["gaussian"]
    >>> [round(x) for x in null["dimension"]]  # a Gaussian of the same covariance
    [2, 5]
    """
    out: dict[str, pd.DataFrame] = {}
    for control in controls:
        if control == "gaussian":
            null = gaussian_control(hidden_states, seed=seed, **curve_options)
        elif control == "random_init":
            ref = model if model is not None else hidden_states.model_id
            options = {
                key: hidden_states.options[key]
                for key in ("max_length", "max_tokens", "drop_special", "final_norm")
                if hidden_states.options.get(key) is not None
            }
            # The extraction's own sample seed, so that the control sees the same tokens.
            options["sample_seed"] = int(hidden_states.options.get("seed") or 0)
            null = extraction.random_init_states(
                ref, list(hidden_states.prompts), seed=seed, progress=False, **options
            )
        else:
            raise TokendimError(f"Unknown control {control!r}: choose 'gaussian' or 'random_init'.")
        curve = id_curve(null, estimator, **curve_options)
        curve.attrs["control"] = control
        out[control] = curve
    return out
