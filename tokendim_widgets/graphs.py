"""One exact kNN graph per layer and cloud, computed once and shared by every estimator.

Changing the estimator or its ``k`` must never search for neighbours again, so each graph is
built at a generous neighbour capacity (``capacity``, default 64) and only rebuilt if a later
request needs more. Graphs are kept in memory for the lifetime of the cache object. Copies are
merged at a threshold that follows the precision the states were computed in
(:func:`layer_rtol`): a GPU's bfloat16 leaves "equal" states ~1e-3 of their norm apart.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .clouds import CloudSpec, massive_norm_rows, unit_rows
from .errors import TokendimError
from .knn import DEFAULT_RTOL, KNNGraph, build_graph, deduplicate
from .validation import check_int

if TYPE_CHECKING:
    from .hidden_states import HiddenStates

DEFAULT_CAPACITY = 64
#: Fewest rows of a cloud whose first graph a staged cache searches shallow (see GraphCache):
#: on the README example's 7,078 rows the shallow first pass gives the curve ~30% sooner; on
#: the quickstart's 1,001 rows it saves ~25 ms a layer and a later deepening costs ~70 ms.
STAGE_MIN_ROWS = 4096

#: Duplicate-merge threshold relative to the states' RMS norm, per compute precision. Two
#: computations of one state in bfloat16 differ by ~1e-3 of its norm (batch composition,
#: kernel order); the threshold leaves a margin of five over that. float32 and float64 keep
#: the search's own threshold (:data:`~tokendim_widgets.knn.DEFAULT_RTOL` of the RMS radius).
MERGE_RTOL = {"float16": 1e-3, "bfloat16": 5e-3}

#: A point is a near copy when its nearest distinct neighbour is closer than this fraction of
#: the median nearest-neighbour distance; a d-dimensional cloud has about 0.1**d x 0.7 such
#: points by chance (7% for d = 1, under 1% from d = 2). Curves warn above NEAR_COPY_WARN.
NEAR_COPY_RATIO = 0.1
NEAR_COPY_WARN = 0.1


def merge_rtol(dtype: Any) -> float | None:
    """Merge threshold relative to the RMS norm for states computed in ``dtype``.

    None for float32 and float64: their copies are merged at the kNN search's own threshold.

    Examples
    --------
    >>> merge_rtol("float32") is None, merge_rtol("bfloat16")
    (True, 0.005)
    """
    name = str(dtype).replace("torch.", "")
    return MERGE_RTOL.get(name)


def layer_rtol(X: np.ndarray, dtype: Any) -> float:
    """The :func:`~tokendim_widgets.knn.deduplicate` threshold (relative to the RMS radius)
    that merges the rounding copies of states computed in ``dtype``."""
    rel = merge_rtol(dtype)
    if rel is None or X.shape[0] < 2:
        return DEFAULT_RTOL
    x = np.asarray(X, dtype=np.float64)
    rms_norm = float(np.sqrt(np.mean(np.einsum("ij,ij->i", x, x))))
    centred = x - x.mean(axis=0)
    rms_radius = float(np.sqrt(np.mean(np.einsum("ij,ij->i", centred, centred))))
    if rms_radius <= 0:
        return DEFAULT_RTOL
    return max(DEFAULT_RTOL, rel * rms_norm / rms_radius)


def near_copy_fraction(graph: KNNGraph, ratio: float = NEAR_COPY_RATIO) -> float:
    """Fraction of distinct points whose nearest neighbour is closer than ``ratio`` times the
    median nearest-neighbour distance: near copies that drive TwoNN and MLE down."""
    if graph.n_unique == 0 or graph.k == 0:
        return 0.0
    r1 = graph.distances[:, 0]
    return float(np.mean(r1 < ratio * float(np.median(r1))))


class GraphCache:
    """kNN graphs of one :class:`HiddenStates`, keyed by layer, cloud and group.

    Parameters
    ----------
    hidden_states : HiddenStates
        The extracted hidden states.
    device : str, default "auto"
        Where the kNN search runs (CUDA when present).
    capacity : int, default 64
        Neighbours kept per point; requests for fewer reuse the graph.
    rtol : float, optional
        Duplicate-merge threshold relative to each cloud's RMS radius. Default: from the
        precision the states were computed in (:func:`layer_rtol`).
    staged : bool, default False
        Build a layer's first graph with only the neighbours asked for (at least
        ``first_k``), and search again at ``capacity`` on the first request for more. The
        neighbours and curves are the same either way; only when they are ready changes. The
        session uses it so that its first pass searches only what it shows.
    stage_min_rows : int, default :data:`STAGE_MIN_ROWS`
        Clouds of fewer rows are searched at ``capacity`` at once even when ``staged``: there
        the deeper search costs a few milliseconds more, and a later deepening a whole search.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates
    >>> rng = np.random.default_rng(0)
    >>> hs = HiddenStates.from_arrays(rng.normal(size=(2, 300, 8)).astype("float32"))
    >>> cache = GraphCache(hs)
    >>> graph = cache.graph(1, CloudSpec("all", drop_first=False), k=10)
    >>> graph.k >= 10
    True
    """

    def __init__(
        self,
        hidden_states: HiddenStates,
        *,
        device: str = "auto",
        capacity: int = DEFAULT_CAPACITY,
        rtol: float | None = None,
        staged: bool = False,
        stage_min_rows: int = STAGE_MIN_ROWS,
    ) -> None:
        self.hidden_states = hidden_states
        self.staged = bool(staged)
        self.stage_min_rows = check_int(stage_min_rows, "stage_min_rows", 0)
        #: With ``staged``: the fewest neighbours a layer's first graph holds (the session sets
        #: what its first pass needs: the curve, the local IDs and UMAP).
        self.first_k = 1
        self.device = device
        self.capacity = int(capacity)
        self.rtol = None if rtol is None else float(rtol)
        self._graphs: dict[tuple[int, CloudSpec, int], KNNGraph] = {}
        self._groups: dict[CloudSpec, list[np.ndarray]] = {}
        self._outliers: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.searches = 0  # how many kNN searches ran: the tests hold the cache to its promise

    def groups(self, spec: CloudSpec) -> list[np.ndarray]:
        """Row indices of each cloud that ``spec`` makes of the tokens (before outliers)."""
        with self._lock:
            if spec not in self._groups:
                self._groups[spec] = spec.groups(self.hidden_states.tokens)
            return self._groups[spec]

    def outliers(self, layer: int) -> np.ndarray:
        """Boolean mask over all rows: massive-norm tokens of ``layer``."""
        with self._lock:
            mask = self._outliers.get(layer)
        if mask is None:
            mask = massive_norm_rows(self.hidden_states.layer(layer))
            with self._lock:
                self._outliers[layer] = mask
        return mask

    def rows(self, layer: int, spec: CloudSpec, group: int = 0) -> np.ndarray:
        """Rows of one cloud at ``layer``: its group, less the outliers when ``spec`` drops them."""
        rows = self.groups(spec)[group]
        if spec.drop_outliers:
            rows = rows[~self.outliers(layer)[rows]]
        return rows

    def points(self, layer: int, rows: np.ndarray, metric: str = "euclidean") -> np.ndarray:
        """The hidden states of ``rows`` at ``layer`` (float32 copy; unit rows for cosine)."""
        X = np.asarray(self.hidden_states.layer(layer)[rows], dtype=np.float32)
        return unit_rows(X) if metric == "cosine" else X

    def rtol_for(self, X: np.ndarray) -> float:
        """The merge threshold used for the cloud ``X`` (see ``rtol``)."""
        if self.rtol is not None:
            return self.rtol
        return layer_rtol(X, self.hidden_states.compute_dtype)

    def cached(self, layer: int, spec: CloudSpec, group: int = 0, k: int = 1) -> KNNGraph | None:
        """The graph if it is already computed with at least ``k`` neighbours, else None."""
        with self._lock:
            graph = self._graphs.get((layer, spec, group))
        return graph if graph is not None and graph.k >= k else None

    def graph(self, layer: int, spec: CloudSpec, group: int = 0, *, k: int) -> KNNGraph:
        """The kNN graph of one cloud, computed on first use with at least ``k`` neighbours.

        With few distinct points the graph may hold fewer than ``k`` neighbours (as many as
        the points allow); estimators that need more say so.
        """
        graph = self.cached(layer, spec, group, k)
        if graph is not None:
            return graph
        with self._lock:
            first = (layer, spec, group) not in self._graphs
        rows = self.rows(layer, spec, group)
        if len(rows) < 3:
            raise TokendimError(
                f"The {spec.label!r} cloud of layer {layer} has {len(rows)} tokens; at least 3 "
                "are needed. Use more or longer prompts, or another cloud."
            )
        want = max(int(k), min(self.capacity, len(rows) - 1))
        if self.staged and first and len(rows) >= self.stage_min_rows:
            want = max(1, min(max(int(k), self.first_k), len(rows) - 1))
        X = self.points(layer, rows, spec.metric)
        graph = build_capped(X, want, device=self.device, rtol=self.rtol_for(X))
        with self._lock:
            self.searches += 1
            old = self._graphs.get((layer, spec, group))
            if old is None or old.k < graph.k:
                self._graphs[(layer, spec, group)] = graph
        return graph

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()
            self._groups.clear()
            self._outliers.clear()


def build_capped(
    X: np.ndarray, k: int, *, device: Any = "auto", rtol: float = DEFAULT_RTOL
) -> KNNGraph:
    """A graph with ``k`` neighbours, or as many as the distinct points of ``X`` allow.

    Many exact duplicates (repeated tokens at the embedding layer) can leave fewer distinct
    points than ``k + 1``; the graph then holds ``n_distinct - 1`` neighbours.
    """
    try:
        return build_graph(X, k, device=device, rtol=rtol)
    except TokendimError:
        keep, _ = deduplicate(X, rtol=rtol)
        if len(keep) - 1 >= k or len(keep) < 3:
            raise
        return build_graph(X, len(keep) - 1, device=device, rtol=rtol)
