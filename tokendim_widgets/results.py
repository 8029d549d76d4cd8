"""The results cache of a session: kNN graphs, curves, local IDs and layer projections.

Every entry is keyed by the content it was computed from (``HiddenStates.uid`` and the
parameters), so results of other states are never served. The session, the exports, the
command line and the widgets all go through this public API; see docs/session.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd

from . import projection as proj
from .analysis import concat_curves, estimator_label, id_curve, local_id, null_curves
from .clouds import CloudSpec
from .errors import TokendimError
from .graphs import GraphCache
from .hidden_states import HiddenStates

__all__ = ["PROJECTION_KINDS", "Results"]

#: The kinds of layer projection.
PROJECTION_KINDS = ("pca", "umap")


class LRU(OrderedDict[Any, Any]):
    """A least-recently-used dictionary: results of old parameters are kept a while."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: Hashable) -> Any:
        """The value of ``key`` (None if absent), marked as the most recently used."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value``, dropping the least recently used entries beyond ``size``."""
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class _Cloud:
    """The projections of one cloud (one HiddenStates, one ``drop_first``), chained."""

    def __init__(self, states: HiddenStates, drop_first: bool) -> None:
        self.spec = CloudSpec("all", drop_first)
        self.rows = self.spec.groups(states.tokens)[0]
        self.n_tokens = states.n_tokens
        self.projector = proj.LayerProjector()
        self.full: dict[tuple[str, int], np.ndarray] = {}
        self.compute_lock = threading.Lock()

    def project(self, kind: str, layer: int, graphs: GraphCache) -> np.ndarray:
        full = np.full((self.n_tokens, 2), np.nan, dtype=np.float32)
        if len(self.rows) > 0:
            X = graphs.points(layer, self.rows)
            if kind == "pca":
                Y = self.projector.pca(layer, X)
            else:
                graph = graphs.graph(layer, self.spec, 0, k=proj.UMAP_NEIGHBORS)
                Y = self.projector.umap(layer, X, knn=graph)
            full[self.rows] = Y
        return full


class Results:
    """What a session computed, cached by content and shared by everything that shows it.

    Parameters
    ----------
    device : str, default "auto"
        Where new kNN graphs search (the session keeps it equal to its ``device``).
    staged : bool, default True
        Build each layer's first graph with only the neighbours asked for first
        (:class:`~tokendim_widgets.graphs.GraphCache`).

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates
    >>> from tokendim_widgets.estimators import TwoNN
    >>> from tokendim_widgets.clouds import CloudSpec
    >>> rng = np.random.default_rng(0)
    >>> hs = HiddenStates.from_arrays(rng.normal(size=(3, 200, 8)).astype("float32"))
    >>> results = Results()
    >>> spec = CloudSpec("all", drop_first=False)
    >>> curve = results.curve(hs, TwoNN(), spec)
    >>> searches = results.searches()
    >>> again = results.curve(hs, TwoNN(), spec)  # from the cache: no new search
    >>> results.searches() == searches, again["dimension"].equals(curve["dimension"])
    (True, True)
    >>> layouts = results.fill_projections(hs, "pca", drop_first=False, start=1)
    >>> [layer for layer, xy in enumerate(layouts) if xy is not None]
    [0, 1, 2]
    """

    def __init__(self, *, device: str = "auto", staged: bool = True) -> None:
        self.device = device
        self.staged = staged
        self._lock = threading.RLock()
        self._states = LRU(2)
        self._graphs = LRU(2)
        self._rows = LRU(4096)
        self._locals = LRU(8)
        self._controls = LRU(16)
        self._clouds = LRU(4)

    # ---- hidden states and graphs ----------------------------------------------------------
    def cached_states(self, key: Hashable) -> HiddenStates | None:
        """The hidden states kept under ``key`` (the parameters that produced them), or None."""
        with self._lock:
            states: HiddenStates | None = self._states.get_fresh(key)
            return states

    def keep_states(self, key: Hashable, states: HiddenStates) -> None:
        """Keep ``states`` under ``key``; the two most recent are kept (they are large)."""
        with self._lock:
            self._states.put(key, states)

    def graphs_for(self, states: HiddenStates) -> GraphCache:
        """The kNN graph cache of ``states`` (created on first use, then reused)."""
        with self._lock:
            graphs = self._graphs.get_fresh(states.uid)
            if graphs is None or graphs.hidden_states is not states:
                graphs = GraphCache(states, device=self.device, staged=self.staged)
                self._graphs.put(states.uid, graphs)
            return graphs

    def searches(self) -> int:
        """How many kNN searches the cached graphs ran (a repeated request runs none)."""
        with self._lock:
            return sum(graphs.searches for graphs in self._graphs.values())

    # ---- curves and local IDs ----------------------------------------------------------------
    def curve(
        self,
        states: HiddenStates,
        estimator: Any,
        spec: CloudSpec,
        *,
        before: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """The ID curve of ``states``; each layer's row is computed once and then reused.

        Parameters
        ----------
        states : HiddenStates
        estimator : Estimator
        spec : CloudSpec
            Cloud, ``drop_first`` and metric.
        before : callable(layer), optional
            Called before a layer is computed (not for cached layers): the session stops
            stale work there, and counts progress.
        """
        key = (states.uid, estimator_label(estimator), spec)
        parts = []
        for layer in range(states.n_layers):
            with self._lock:
                row = self._rows.get_fresh((*key, layer))
            if row is None:
                if before is not None:
                    before(layer)
                row = id_curve(
                    states,
                    estimator,
                    cloud=spec.cloud,
                    drop_first=spec.drop_first,
                    metric=spec.metric,
                    layers=[layer],
                    warn=False,  # the curve's columns say it; no stray output in a notebook
                    graphs=self.graphs_for(states),
                )
                with self._lock:
                    self._rows.put((*key, layer), row)
            parts.append(row)
        return concat_curves(parts)

    def control_curve(
        self,
        states: HiddenStates,
        estimator: Any,
        spec: CloudSpec,
        control: str,
        *,
        model: Any = None,
        before: Callable[[], None] | None = None,
    ) -> pd.DataFrame:
        """The curve of one null control (:func:`~tokendim_widgets.null_curves`), cached.

        ``model`` is needed by the controls that run the model again; ``before`` is called
        before a computation (not for a cached curve).
        """
        key = (states.uid, control, estimator_label(estimator), spec)
        with self._lock:
            curve = self._controls.get_fresh(key)
        if curve is None:
            if before is not None:
                before()
            curve = null_curves(
                states,
                estimator,
                controls=[control],
                model=model,
                cloud=spec.cloud,
                drop_first=spec.drop_first,
                metric=spec.metric,
                warn=False,
            )[control]
            with self._lock:
                self._controls.put(key, curve)
        return curve

    def local_ids(
        self,
        states: HiddenStates,
        k: int,
        *,
        drop_first: bool,
        metric: str = "euclidean",
        before: Callable[[], None] | None = None,
    ) -> pd.DataFrame:
        """The tokens x layers local-ID matrix (:func:`~tokendim_widgets.local_id`), cached.

        ``before`` is called before a computation (not for a cached matrix).
        """
        with self._lock:
            frame = self._locals.get_fresh((states.uid, k, drop_first, metric))
        if frame is None:
            if before is not None:
                before()
            frame = local_id(
                states, k, drop_first=drop_first, metric=metric, graphs=self.graphs_for(states)
            )
            with self._lock:
                self._locals.put((states.uid, k, drop_first, metric), frame)
        return frame

    # ---- projections ---------------------------------------------------------------------------
    def _cloud(self, states: HiddenStates, drop_first: bool) -> _Cloud:
        with self._lock:
            cloud = self._clouds.get_fresh((states.uid, bool(drop_first)))
            if cloud is None:
                cloud = _Cloud(states, bool(drop_first))
                self._clouds.put((states.uid, bool(drop_first)), cloud)
            return cloud

    def cached_projection(
        self, states: HiddenStates, layer: int, kind: str, *, drop_first: bool
    ) -> np.ndarray | None:
        """The projection of ``layer`` if it is cached, else None (never computes)."""
        with self._lock:
            cloud = self._clouds.get((states.uid, bool(drop_first)))
            return None if cloud is None else cloud.full.get((kind, layer))

    def projection(
        self, states: HiddenStates, layer: int, kind: str, *, drop_first: bool
    ) -> np.ndarray:
        """The 2-D projection of one layer, ``(n_tokens, 2)`` float32, NaN outside the cloud.

        A new layout starts from (UMAP) or is aligned to (PCA) the nearest layer already
        projected (:class:`~tokendim_widgets.projection.LayerProjector`), so scrubbing through
        the layers reads as motion. Two threads asking for one layer compute it once.
        """
        if kind not in PROJECTION_KINDS:
            raise TokendimError(f"Unknown projection kind {kind!r}: choose 'pca' or 'umap'.")
        cloud = self._cloud(states, drop_first)
        with cloud.compute_lock:
            with self._lock:
                full = cloud.full.get((kind, layer))
            if full is None:
                full = cloud.project(kind, layer, self.graphs_for(states))
                with self._lock:
                    cloud.full[(kind, layer)] = full
        return full

    def projections(self, states: HiddenStates, *, drop_first: bool) -> dict[tuple[str, int], Any]:
        """A snapshot of the cached projections of ``states``: ``(kind, layer) -> array``."""
        with self._lock:
            cloud = self._clouds.get((states.uid, bool(drop_first)))
            return {} if cloud is None else dict(cloud.full)

    def fill_projections(
        self,
        states: HiddenStates,
        kind: str,
        *,
        drop_first: bool,
        start: int = 0,
        before: Callable[[], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[np.ndarray | None]:
        """Project every layer, nearest to ``start`` first; returns the layouts in layer order.

        Parameters
        ----------
        states : HiddenStates
        kind : {"pca", "umap"}
        drop_first : bool
        start : int, default 0
            The layer to start from (the selected one).
        before : callable(), optional
            Called before each layer; an exception it raises stops the filling (what is done
            stays cached).
        progress : callable(done, total), optional
            Called after each computed layer; ``total`` counts the layers not cached at first.
        """
        start = min(max(int(start), 0), states.n_layers - 1)
        order = proj.layer_order(states.n_layers, start)
        cached = self.projections(states, drop_first=drop_first)
        total = sum((kind, layer) not in cached for layer in order)
        done = 0
        for layer in order:
            if before is not None:
                before()
            if (kind, layer) in cached:
                continue
            self.projection(states, layer, kind, drop_first=drop_first)
            done += 1
            if progress is not None:
                progress(done, total)
        layouts = self.projections(states, drop_first=drop_first)
        return [layouts.get((kind, layer)) for layer in range(states.n_layers)]
