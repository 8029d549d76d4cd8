"""From hidden states to what the views show: ID curves, local-ID matrices and paper metrics.

Plain functions over :class:`~tokendim_widgets.hidden_states.HiddenStates`; they know nothing
of sessions or widgets. Each takes an optional :class:`~tokendim_widgets.graphs.GraphCache` so
that a caller computing several analyses of the same states searches neighbours only once.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .clouds import CloudSpec
from .errors import TokendimError
from .estimators import ESTIMATORS, MLE, make_estimator
from .graphs import GraphCache

if TYPE_CHECKING:
    from .hidden_states import HiddenStates

#: Default estimator of the curve: TwoNN needs only two neighbours, so it is the least
#: sensitive to the scale at which token clouds change character, and it has an analytic
#: error bar in its maximum-likelihood form.
DEFAULT_ESTIMATOR = "twonn"

CURVE_COLUMNS = ("layer", "depth", "dimension", "lower", "upper", "estimator", "n_points")


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


def _fit_cloud(
    estimator: Any, graphs: GraphCache, layer: int, spec: CloudSpec, group: int
) -> tuple[float, float, float, int]:
    graph = graphs.graph(layer, spec, group, k=estimator.required_neighbors)
    X = graphs.points(layer, graphs.groups(spec)[group])
    fitted = estimator.fit(X, knn=graph)
    low, high = fitted.dimension_interval_
    return float(fitted.dimension_), float(low), float(high), int(graph.n_points)


def id_curve(
    hidden_states: HiddenStates,
    estimator: Any = DEFAULT_ESTIMATOR,
    *,
    cloud: str = "all",
    drop_first: bool = True,
    layers: Iterable[int] | None = None,
    graphs: GraphCache | None = None,
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

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer``, ``depth`` (layer / last layer), ``dimension``, ``lower``,
        ``upper``, ``estimator`` (label), ``n_points`` (distinct points estimated on). The
        frame's ``attrs`` hold the model, the prompt set, the cloud and the estimator's
        parameters.

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
    spec = CloudSpec(cloud, drop_first)
    graphs = graphs if graphs is not None else GraphCache(hidden_states)
    if graphs.hidden_states is not hidden_states:
        raise TokendimError("The GraphCache given was built for other hidden states.")
    chosen = _layers(hidden_states, layers)
    groups = graphs.groups(spec)
    if not groups or all(len(g) == 0 for g in groups):
        raise TokendimError(f"The {spec.label!r} cloud is empty: no tokens to estimate on.")
    label = estimator_label(template)
    last = max(hidden_states.n_layers - 1, 1)
    records = []
    for layer in chosen:
        if spec.cloud != "per_prompt":
            dim, low, high, n = _fit_cloud(copy.deepcopy(template), graphs, layer, spec, 0)
        else:
            dim, low, high, n = _per_prompt(template, graphs, layer, spec, groups)
        records.append((layer, layer / last, dim, low, high, label, n))
    curve = pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))
    curve.attrs.update(
        model=hidden_states.model_id,
        prompt_set=_prompt_set_name(hidden_states),
        n_layers=hidden_states.n_layers,
        cloud=spec.cloud,
        drop_first=spec.drop_first,
        estimator=label,
        params=estimator_params(template),
    )
    return curve


def _per_prompt(
    template: Any, graphs: GraphCache, layer: int, spec: CloudSpec, groups: list[np.ndarray]
) -> tuple[float, float, float, int]:
    needed = int(template.required_neighbors) + 2
    dims, total = [], 0
    for group, rows in enumerate(groups):
        if len(rows) < needed:
            continue
        try:
            dim, _, _, n = _fit_cloud(copy.deepcopy(template), graphs, layer, spec, group)
        except TokendimError:
            continue  # a prompt whose tokens collapse onto too few distinct points
        if np.isfinite(dim):
            dims.append(dim)
            total += n
    if not dims:
        raise TokendimError(
            f"No prompt has the {needed} distinct tokens that a per-prompt estimate with "
            f"{estimator_label(template)} needs. Use longer prompts or cloud='all'."
        )
    values = np.asarray(dims)
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half, total


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
    spec = CloudSpec("all", drop_first)
    graphs = graphs if graphs is not None else GraphCache(hidden_states)
    chosen = _layers(hidden_states, layers)
    rows = graphs.groups(spec)[0]
    out = np.full((hidden_states.n_tokens, len(chosen)), np.nan, dtype=np.float32)
    for j, layer in enumerate(chosen):
        graph = graphs.graph(layer, spec, 0, k=k)
        fitted = MLE(k=k).fit(graphs.points(layer, rows), knn=graph)
        out[rows, j] = np.asarray(fitted.local_dimensions_, dtype=np.float32)
    frame = pd.DataFrame(out, index=hidden_states.tokens.index, columns=chosen)
    frame.columns.name = "layer"
    frame.attrs.update(model=hidden_states.model_id, k=int(k), drop_first=drop_first)
    return frame


METRIC_COLUMNS = (
    "working_dimension",
    "working_layer",
    "working_depth",
    "first_dimension",
    "final_dimension",
    "expansion_ratio",
    "contraction_ratio",
    "auc",
)


def summarize(curve: pd.DataFrame, *, peak_from: int = 1) -> pd.Series:
    """The paper's summary metrics of one ID curve.

    The working-space peak is searched from layer ``peak_from`` on (default 1): layer 0 holds
    the embeddings, a lookup table of distinct token vectors rather than a computed
    representation, and its estimate can exceed every later layer's. Pass ``peak_from=0`` to
    let it compete. ``first_dimension`` is always the curve at its first layer.

    ``working_dimension``
        The peak of the curve (the "working space"), at ``working_layer`` and
        ``working_depth`` (the layer over the last layer, 0 = embeddings, 1 = output).
    ``first_dimension``, ``final_dimension``
        The curve at its first and last layer.
    ``expansion_ratio``, ``contraction_ratio``
        Peak over first, and peak over final: how much the cloud expands, then contracts.
    ``auc``
        The area under the curve against relative depth (trapezoid rule over 0..1), a mean
        dimension that compares models of different depth.

    Examples
    --------
    >>> import pandas as pd
    >>> curve = pd.DataFrame({"layer": [0, 1, 2, 3], "dimension": [4.0, 12.0, 9.0, 6.0]})
    >>> m = summarize(curve)
    >>> m[["working_dimension", "working_layer", "contraction_ratio"]].tolist()
    [12.0, 1.0, 2.0]
    """
    if len(curve) == 0:
        raise TokendimError("The curve is empty: nothing to summarise.")
    data = curve.sort_values("layer")
    dims = data["dimension"].to_numpy(dtype=float)
    layers = data["layer"].to_numpy()
    finite = np.isfinite(dims)
    if not finite.any():
        raise TokendimError("The curve has no finite dimension to summarise.")
    eligible = finite & (layers >= peak_from)
    if not eligible.any():
        eligible = finite
    peak = int(np.nanargmax(np.where(eligible, dims, -np.inf)))
    n_layers = int(curve.attrs.get("n_layers", int(layers.max()) + 1))
    last = max(n_layers - 1, 1)
    depth = layers / last
    first, final, top = float(dims[0]), float(dims[-1]), float(dims[peak])
    auc = float(np.trapezoid(dims[finite], depth[finite])) if finite.sum() > 1 else top
    # Normalise by the depth actually covered, so a curve over a subset of layers still reads
    # as a mean dimension.
    span = float(depth[finite].max() - depth[finite].min())
    return pd.Series(
        {
            "working_dimension": top,
            "working_layer": int(layers[peak]),
            "working_depth": float(layers[peak] / last),
            "first_dimension": first,
            "final_dimension": final,
            "expansion_ratio": top / first if first > 0 else np.nan,
            "contraction_ratio": top / final if final > 0 else np.nan,
            "auc": auc / span if span > 0 else top,
        },
        name=_curve_name(curve),
    )


def _curve_name(curve: pd.DataFrame) -> str:
    parts = [str(curve.attrs[key]) for key in ("model", "estimator") if curve.attrs.get(key)]
    return " / ".join(parts) if parts else "curve"


def compare(
    curves: Mapping[str, pd.DataFrame] | Sequence[pd.DataFrame] | pd.DataFrame,
    *,
    peak_from: int = 1,
) -> pd.DataFrame:
    """One metrics table for several curves (models, estimators, clouds).

    Parameters
    ----------
    curves : mapping of label to curve, sequence of curves, or one curve
        Labels default to "model / estimator" from each curve's ``attrs``.

    Returns
    -------
    pandas.DataFrame
        One row per curve, indexed by label, with the columns of :func:`summarize` plus
        ``model``, ``estimator`` and ``cloud``.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"layer": [0, 1, 2], "dimension": [3.0, 9.0, 5.0]})
    >>> b = pd.DataFrame({"layer": [0, 1, 2], "dimension": [3.0, 6.0, 5.0]})
    >>> compare({"big": a, "small": b})["working_dimension"].tolist()
    [9.0, 6.0]
    """
    if isinstance(curves, pd.DataFrame):
        items: list[tuple[str, pd.DataFrame]] = [(_curve_name(curves), curves)]
    elif isinstance(curves, Mapping):
        items = [(str(label), curve) for label, curve in curves.items()]
    else:
        items = [(_curve_name(curve), curve) for curve in curves]
    if not items:
        raise TokendimError("compare() needs at least one curve.")
    rows = []
    for label, curve in items:
        row = summarize(curve, peak_from=peak_from).to_dict()
        row.update(
            model=curve.attrs.get("model", ""),
            estimator=curve.attrs.get("estimator", ""),
            cloud=curve.attrs.get("cloud", ""),
        )
        rows.append(pd.Series(row, name=label))
    table = pd.DataFrame(rows)
    table.index.name = "curve"
    table["working_layer"] = table["working_layer"].astype(int)
    return table[["model", "estimator", "cloud", *METRIC_COLUMNS]]
