"""One exact kNN graph per layer and cloud, computed once and shared by every estimator.

Changing the estimator or its ``k`` must never search for neighbours again, so each graph is
built at a generous neighbour capacity (``capacity``, default 64) and only rebuilt if a later
request needs more. Graphs are kept in memory for the lifetime of the cache object; the kNN
search is the only expensive step (RESEARCH.md: ~98% of a reference estimator's time).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .clouds import CloudSpec
from .errors import TokendimError
from .knn import KNNGraph, build_graph

if TYPE_CHECKING:
    from .hidden_states import HiddenStates

DEFAULT_CAPACITY = 64


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
    ) -> None:
        self.hidden_states = hidden_states
        self.device = device
        self.capacity = int(capacity)
        self._graphs: dict[tuple[int, CloudSpec, int], KNNGraph] = {}
        self._groups: dict[CloudSpec, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.searches = 0  # how many kNN searches ran: the tests hold the cache to its promise

    def groups(self, spec: CloudSpec) -> list[np.ndarray]:
        """Row indices of each cloud that ``spec`` makes of the tokens."""
        with self._lock:
            if spec not in self._groups:
                self._groups[spec] = spec.groups(self.hidden_states.tokens)
            return self._groups[spec]

    def points(self, layer: int, rows: np.ndarray) -> np.ndarray:
        """The hidden states of ``rows`` at ``layer`` (float32 copy)."""
        return np.asarray(self.hidden_states.layer(layer)[rows], dtype=np.float32)

    def cached(self, layer: int, spec: CloudSpec, group: int = 0, k: int = 1) -> KNNGraph | None:
        """The graph if it is already computed with at least ``k`` neighbours, else None."""
        with self._lock:
            graph = self._graphs.get((layer, spec, group))
        return graph if graph is not None and graph.k >= k else None

    def graph(self, layer: int, spec: CloudSpec, group: int = 0, *, k: int) -> KNNGraph:
        """The kNN graph of one cloud, computed on first use with at least ``k`` neighbours."""
        graph = self.cached(layer, spec, group, k)
        if graph is not None:
            return graph
        rows = self.groups(spec)[group]
        if len(rows) < 3:
            raise TokendimError(
                f"The {spec.label!r} cloud of layer {layer} has {len(rows)} tokens; at least 3 "
                "are needed. Use more or longer prompts, or another cloud."
            )
        want = max(int(k), min(self.capacity, len(rows) - 1))
        X = self.points(layer, rows)
        graph = _build(X, want, self.device)
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


def _build(X: np.ndarray, k: int, device: Any) -> KNNGraph:
    """Build a graph with ``k`` neighbours, or as many as the distinct points allow."""
    try:
        return build_graph(X, k, device=device)
    except TokendimError:
        # Many exact duplicates (repeated tokens at the embedding layer) can leave fewer
        # distinct points than k + 1; fall back to the most neighbours they allow, and let
        # an estimator that needs more say so.
        from .knn import deduplicate

        keep, _ = deduplicate(X)
        if len(keep) - 1 >= k or len(keep) < 3:
            raise
        return build_graph(X, len(keep) - 1, device=device)
