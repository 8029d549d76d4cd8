"""The reactive session: parameters in, results out, on a background thread, never stale.

A :class:`Session` holds every parameter a user can change (model, prompts, estimator, k, cloud,
selected layer and tokens) as traits, and publishes results as traits (the curve, the local-ID
matrix, the projection of the selected layer, the metrics, status and progress). It knows no
widget: the widgets set its parameters and observe its results.

How it stays fast and correct
-----------------------------
* One worker thread runs *passes*. A pass walks the stages (hidden states -> PCA preview of the
  selected layer -> ID curve -> local-ID matrix -> UMAP of the selected layer -> UMAP of the other
  layers) and every stage is cached by exactly the parameters it depends on, so a pass after a
  change of ``k`` finds the hidden states and the kNN graphs in cache and only redoes arithmetic.
* Every parameter change wakes the worker. Long loops check, at each layer, whether the
  parameters their stage depends on changed (then that stage's work is stale and dropped) or
  whether any change is waiting (then the pass restarts, keeping what it cached).
* Results are published under a lock, and only if the parameters they were computed from are
  still the current ones: what is published always matches the latest parameters.
* A change of the selected layer whose projection is cached is published at once, in the
  caller's thread, without waking the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import traitlets as t

from . import projection as proj
from ._device import free_memory
from .analysis import (
    NULL_CONTROLS,
    compare,
    concat_curves,
    estimator_label,
    id_curve,
    local_id,
    null_curves,
    summarize,
)
from .clouds import CLOUDS, METRICS, CloudSpec
from .errors import Cancelled, TokendimError
from .estimators import ESTIMATORS, make_estimator
from .graphs import GraphCache
from .hidden_states import HiddenStates
from .progress import throttled

log = logging.getLogger(__name__)

# Which parameters each stage's result depends on. A result is published only if these are
# unchanged since its computation started.
STATE_KEYS = ("model", "prompts", "shuffled", "max_tokens", "max_length", "device", "dtype")
CURVE_KEYS = (
    *STATE_KEYS,
    "estimator",
    "k",
    "scale",
    "cloud",
    "drop_first",
    "metric",
    "overlay",
    "controls",
)
LOCAL_KEYS = (*STATE_KEYS, "k", "drop_first", "metric")
PROJECTION_KEYS = (*STATE_KEYS, "layer", "projection_method", "drop_first")
FILL_KEYS = (*STATE_KEYS, "projection_method", "drop_first")
PARAMS = tuple(dict.fromkeys((*CURVE_KEYS, *PROJECTION_KEYS)))

#: Build each layer's first graph with only the neighbours the curve needs (see GraphCache).
STAGED_GRAPHS = True

#: Estimators take the session's ``k`` and ``scale`` through these constructor parameters.
K_PARAMS = ("k", "n_neighbors")
SCALE_PARAMS = ("scale",)


#: The values of ``projection_method``.
PROJECTION_METHODS = ("umap", "pca")


class OptionError(TokendimError, t.TraitError):
    """A bad value for a session parameter: a TokendimError that traitlets also recognises.

    Being a ``TraitError`` too keeps code that catches traitlets' errors (linked widgets)
    working.
    """


class _IntOption(t.Int):
    """An int parameter whose bad values raise TokendimError, not traitlets' TraitError."""

    def __init__(self, default: int | None, minimum: int, **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        self.minimum = minimum

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise OptionError(
                f"{self.name} must be an integer >= {self.minimum}"
                f"{' or None' if self.allow_none else ''}, got {value!r}."
            )
        if value < self.minimum:
            raise OptionError(f"{self.name} must be >= {self.minimum}, got {value!r}.")
        return int(value)


class _ChoiceOption(t.Unicode):
    """A text parameter taking one of a few values; others raise TokendimError."""

    def __init__(self, default: str, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        self.choices = choices

    def validate(self, obj: Any, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise OptionError(
                f"{self.name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}."
            )
        return value


class _Restart(Exception):
    """A change is waiting: end this pass early and start a new one (caches are kept)."""


class _LRU(OrderedDict[Any, Any]):
    """A tiny least-recently-used dictionary: results of old parameters are kept a while."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Session(t.HasTraits):
    """Reactive orchestration of extraction, estimation and projection.

    Parameters are traits; set them (or pass them to the constructor) and call :meth:`run`.
    After the first run, every change recomputes what depends on it, in the background.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> rng = np.random.default_rng(0)
    >>> planes = [rng.normal(size=(400, d)) @ rng.normal(size=(d, 16)) for d in (2, 5, 3)]
    >>> s = Session.from_hidden_states(
    ...     HiddenStates.from_arrays(np.stack(planes).astype("float32")),
    ...     projection_method="pca", drop_first=False)
    >>> _ = s.run().wait()
    >>> [round(x) for x in s.curve["dimension"]]
    [2, 5, 3]
    >>> s.k = 10
    >>> _ = s.wait()
    >>> s.local_ids.attrs["k"]
    10
    >>> s.close()
    """

    # ---- parameters --------------------------------------------------------------------
    model = t.Unicode("smollm2-135m", help="Model reference: alias, hub id, folder or .gguf")
    prompts = t.Any("mixed", help="Prompt set: built-in name, list of str, path or PromptSet")
    shuffled = t.Bool(False, help="Use the shuffled-token control of the prompt set")
    max_tokens = _IntOption(None, 1, allow_none=True, help="Subsample to at most this many tokens")
    max_length = _IntOption(None, 1, allow_none=True, help="Truncate prompts to this many tokens")
    device = t.Unicode("auto")
    dtype = t.Unicode("auto")
    estimator = t.Unicode("twonn", help="Estimator of the curve (registry name)")
    k = _IntOption(20, 1, help="Neighbours of the local-ID estimates (and of k-based estimators)")
    scale = _IntOption(None, 1, allow_none=True, help="Scale of multiscale estimators (GRIDE n1)")
    cloud = t.Unicode("all", help="Cloud: " + ", ".join(CLOUDS))
    drop_first = t.Bool(True, help="Leave out input position 0 (attention sinks)")
    metric = t.Unicode("euclidean", help="Geometry of curves and local IDs: " + ", ".join(METRICS))
    overlay = t.List(t.Unicode(), help="More estimators drawn beside the main one")
    controls = t.List(
        t.Unicode(), help="Null controls of the main curve: " + ", ".join(NULL_CONTROLS)
    )
    layer = _IntOption(-1, -1, help="Selected layer; -1 until chosen (then the curve's peak)")
    selected_tokens = t.Any(help="Selected token rows (int array)")
    projection_method = _ChoiceOption(
        "umap", PROJECTION_METHODS, help="'umap' (PCA first as preview) or 'pca'"
    )

    # ---- results -----------------------------------------------------------------------
    hidden_states = t.Any(None, read_only=True)
    curve = t.Any(None, read_only=True, help="ID curve of the main estimator (DataFrame)")
    curves = t.Dict(read_only=True, help="label -> curve: main, overlays and pinned curves")
    local_ids = t.Any(None, read_only=True, help="Tokens x layers local ID (DataFrame)")
    projection = t.Any(None, read_only=True, help="(n_tokens, 2) float32; NaN rows left out")
    projection_kind = t.Unicode("", read_only=True)
    projection_layer = t.Int(-1, read_only=True)
    metrics = t.Any(None, read_only=True, help="Metrics table of every curve (DataFrame)")
    status = t.Unicode("idle", read_only=True)
    progress = t.Float(0.0, read_only=True)
    tokens_per_second = t.Float(0.0, read_only=True)
    eta_seconds = t.Float(-1.0, read_only=True)
    error = t.Unicode("", read_only=True)
    busy = t.Bool(False, read_only=True)

    def __init__(self, *, autorun: bool = False, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMS) - {"selected_tokens"})
        if unknown:
            raise TokendimError(
                f"Unknown session parameter(s) {unknown}; known: {', '.join(PARAMS)}."
            )
        super().__init__(**params)
        if self.selected_tokens is None:
            self.selected_tokens = np.empty(0, dtype=np.int64)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._closed = False
        self._started = False
        self._idle = threading.Event()
        self._idle.set()
        self._layer_auto = self.layer < 0
        self._layer_of_old_states = False
        self._fixed_states: HiddenStates | None = None
        self._states: _LRU = _LRU(2)
        self._graphs: _LRU = _LRU(2)
        self._curve_rows: _LRU = _LRU(4096)
        self._locals: _LRU = _LRU(8)
        self._projections: _LRU = _LRU(512)
        self._pinned: dict[str, pd.DataFrame] = {}
        self._overlays: dict[str, pd.DataFrame] = {}
        self._controls: dict[str, pd.DataFrame] = {}
        self._controls_for: Any = None
        self._control_curves: _LRU = _LRU(16)
        self._loaded: tuple[tuple[str, str, str], Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="tokendim-session", daemon=True)
        self._thread.start()
        self.observe(self._on_param, names=list(PARAMS))
        if autorun:
            self.run()

    @classmethod
    def from_hidden_states(cls, hidden_states: HiddenStates, **params: Any) -> Session:
        """A session over states already in memory (synthetic, or extracted by hand)."""
        session = cls(**params)
        session._fixed_states = hidden_states
        return session

    # ---- public control ------------------------------------------------------------------
    def run(self) -> Session:
        """Start (or restart after a cancel or an error) the computation."""
        if (
            self._fixed_states is None
            and self.projection_method == "umap"
            and proj.umap_available()
        ):
            proj.warm_up(background=True)  # hide UMAP's compile time behind the extraction
        with self._lock:
            self._started = True
            self._cancel.clear()
            self._idle.clear()
            self._wake.set()
        return self

    def cancel(self) -> None:
        """Stop the current work; results computed so far stay. :meth:`run` resumes."""
        self._cancel.set()
        self._wake.set()

    def wait(self, timeout: float | None = None, *, raise_error: bool = True) -> Session:
        """Block until the foreground work for the current parameters is done.

        Raises :class:`TokendimError` with the session's error message if the work failed
        (unless ``raise_error`` is False), and :class:`TimeoutError` after ``timeout`` seconds.
        An interrupt (Ctrl-C, the notebook's stop button) cancels the work, then propagates.
        """
        try:
            idle = self._idle.wait(timeout)
        except KeyboardInterrupt:
            self.cancel()
            raise
        if not idle:
            raise TimeoutError(f"The session is still working after {timeout} s ({self.status}).")
        if raise_error and self.error:
            raise TokendimError(self.error)
        return self

    def close(self, timeout: float | None = 0.0) -> None:
        """Stop the worker thread; wait up to ``timeout`` seconds (None: until it ends).

        Work stops at its next check (between batches and layers); an extraction in progress
        leaves no cache entry.
        """
        self._closed = True
        self._cancel.set()
        self._wake.set()
        self._loaded = None  # the model's memory goes back once the worker lets it go
        if timeout is None or timeout > 0:
            self._thread.join(timeout)

    def pin(self, label: str | None = None) -> str:
        """Keep the current curve in :attr:`curves` (to compare models or prompt sets)."""
        if self.curve is None:
            raise TokendimError("There is no curve to pin yet: run the session first.")
        label = label or f"{self.curve.attrs.get('model', '')} · {self.curve.attrs['estimator']}"
        with self._lock:
            self._pinned[label] = self.curve
            self._publish_curves(self.curve, self._current_overlays())
        return label

    def unpin(self, label: str | None = None) -> None:
        """Forget one pinned curve, or all of them."""
        with self._lock:
            if label is None:
                self._pinned.clear()
            else:
                self._pinned.pop(label, None)
            if self.curve is not None:
                self._publish_curves(self.curve, self._current_overlays())

    def quality(self) -> dict[str, float]:
        """Mean next-token loss and perplexity of a causal LM on the session's prompts."""
        from .prompts import as_prompt_set
        from .quality import model_quality

        prompts = as_prompt_set(self.prompts)
        model = self._loaded[1] if self._loaded and self._loaded[0][0] == self.model else self.model
        return model_quality(model, prompts, device=self.device, dtype=self.dtype)

    # ---- parameter changes -------------------------------------------------------------
    def _on_param(self, change: dict[str, Any]) -> None:
        name = change["name"]
        if name == "layer":
            self._layer_auto = False
            self._layer_of_old_states = False
            if self._show_cached_projection() and not self.error:
                return  # already on screen: no pass needed (after an error, a pass clears it)
        elif name in STATE_KEYS:
            # New states: a peak chosen for the old ones is chosen again; a layer the user
            # picked is kept if the new states have it.
            if self._layer_auto and self.layer >= 0:
                self._set_layer_quietly(-1)
            self._layer_of_old_states = True
        with self._lock:
            if not self._started:
                return
            self._cancel.clear()
            self._idle.clear()
            self._wake.set()

    def _params(self) -> dict[str, Any]:
        with self._lock:
            values = {name: getattr(self, name) for name in PARAMS}
        values["overlay"] = tuple(values["overlay"])
        values["controls"] = tuple(values["controls"])
        if isinstance(values["prompts"], list):
            values["prompts"] = tuple(values["prompts"])
        return values

    def _changed(self, snap: dict[str, Any], keys: Iterable[str]) -> bool:
        now = self._params()
        return any(not _same(snap[key], now[key]) for key in keys)

    def _checkpoint(self, snap: dict[str, Any], keys: Iterable[str]) -> None:
        """Between units of work: stop if cancelled, stale, or if a new pass is waiting."""
        if self._closed or self._cancel.is_set():
            raise Cancelled("Cancelled.")
        if self._changed(snap, keys) or self._wake.is_set():
            raise _Restart

    # ---- the worker --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            if not self._started:
                continue
            snap = self._params()
            try:
                self._pass(snap)
            except _Restart:
                continue
            except Cancelled:
                if self._cancel.is_set():
                    self._set(status="cancelled", busy=False)
            except TokendimError as exc:
                self._fail(snap, str(exc))
            except MemoryError:
                self._fail(snap, "Out of memory: use fewer tokens (max_tokens) or a smaller model.")
            except Exception as exc:  # the worker must survive anything a user can trigger
                log.exception("session pass failed")
                self._fail(snap, f"{type(exc).__name__}: {exc}")
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        # Under the lock: a parameter change clears `_idle` and sets `_wake` together, so
        # idle is never announced while a change is waiting.
        with self._lock:
            if not self._wake.is_set():
                self._idle.set()

    def _fail(self, snap: dict[str, Any], message: str) -> None:
        with self._lock:
            if not self._changed(snap, PARAMS):
                self._set(error=message, status="error", busy=False)

    def _set(self, **values: Any) -> None:
        """Set read-only result traits (under the lock, notifications held together)."""
        with self._lock, self.hold_trait_notifications():
            for name, value in values.items():
                self.set_trait(name, value)

    def _publish(self, snap: dict[str, Any], keys: Iterable[str], **values: Any) -> bool:
        with self._lock:
            if self._changed(snap, keys):
                return False
            self._set(**values)
            return True

    def _pass(self, snap: dict[str, Any]) -> None:
        self._set(busy=True, error="")
        states = self._states_for(snap)
        graphs = self._graph_cache(states)
        self._publish(snap, STATE_KEYS, hidden_states=states)
        layer = self._resolve_layer(snap, states)

        if not self._show_cached_projection():
            preview = self._projection(snap, states, graphs, layer, "pca")
            self._publish(
                snap,
                PROJECTION_KEYS,
                projection=preview,
                projection_kind="pca",
                projection_layer=layer,
            )

        # The first pass's graphs hold what it shows (the curve, the local IDs, UMAP); a later
        # request for more neighbours (a larger k) deepens them to the full capacity once.
        graphs.first_k = max(int(snap["k"]), proj.UMAP_NEIGHBORS)
        curve, overlays = self._curves(snap, states, graphs)
        self._publish_curves(curve, overlays, snap)
        if self._layer_auto and self.layer < 0:
            peak = int(summarize(curve)["working_layer"])
            self._set_layer_quietly(peak)
            snap = self._params()
            layer = peak

        local = self._local(snap, states, graphs)
        self._publish(snap, LOCAL_KEYS, local_ids=local)

        if snap["projection_method"] == "umap":
            self._set(status="projecting")
            full = self._projection(snap, states, graphs, layer, "umap")
            self._publish(
                snap,
                PROJECTION_KEYS,
                projection=full,
                projection_kind="umap",
                projection_layer=layer,
            )
        if snap["controls"]:
            self._publish_controls(snap, states, curve, overlays)
        self._publish(snap, PARAMS, status="done", busy=False, progress=1.0)
        self._maybe_idle()
        self._fill_projections(snap, states, graphs, layer)

    # ---- stages --------------------------------------------------------------------------
    def _states_for(self, snap: dict[str, Any]) -> HiddenStates:
        if self._fixed_states is not None:
            return self._fixed_states
        key = tuple(_hashable(snap[name]) for name in STATE_KEYS)
        states = self._states.get_fresh(key)
        if states is not None:
            return states
        from .extraction import extract
        from .prompts import as_prompt_set

        prompts = as_prompt_set(snap["prompts"])
        self._set(status="loading model", progress=0.0, eta_seconds=-1.0, tokens_per_second=0.0)
        model: Any = snap["model"]
        input_ids = None
        if snap["shuffled"]:
            # The exact control: the same token ids, permuted within each prompt (decoding and
            # re-tokenising shuffled text would merge or split a few tokens).
            model = self._load(snap)
            input_ids = prompts.shuffled_token_ids(model[1])
        elif self._loaded is not None and self._loaded[0] == self._load_key(snap):
            model = self._loaded[1]  # already in memory: no second load for new prompts
        elif self._loaded is not None:
            self._loaded = None  # another model: free this one before the next loads
            free_memory()
        started = time.perf_counter()

        @throttled(0.1)  # ~10 updates a second are plenty for a progress bar
        def progress(done: int, total: int, rate: float) -> None:
            eta = (total - done) / rate if rate > 0 else -1.0
            self._publish(
                snap,
                STATE_KEYS,
                status="extracting",
                progress=done / max(total, 1),
                tokens_per_second=float(rate),
                eta_seconds=float(eta),
            )

        states = extract(
            model,
            prompts,
            max_length=snap["max_length"],
            max_tokens=snap["max_tokens"],
            device=snap["device"],
            dtype=snap["dtype"],
            input_ids=input_ids,
            progress=progress,
            cancel=lambda: self._closed or self._cancel.is_set() or self._changed(snap, STATE_KEYS),
            # Keep a model extract loads, so a new prompt set does not load it again.
            on_load=lambda pair: setattr(self, "_loaded", (self._load_key(snap), pair)),
        )
        log.info("hidden states ready in %.1f s", time.perf_counter() - started)
        self._checkpoint(snap, STATE_KEYS)
        self._states.put(key, states)
        return states

    @staticmethod
    def _load_key(snap: dict[str, Any]) -> tuple[str, str, str]:
        return (snap["model"], snap["device"], snap["dtype"])

    def _load(self, snap: dict[str, Any]) -> Any:
        from .models import load_model

        key = self._load_key(snap)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the old model before loading the next one
            self._loaded = (key, load_model(key[0], device=key[1], dtype=key[2]))
        return self._loaded[1]

    def _graph_cache(self, states: HiddenStates) -> GraphCache:
        graphs = self._graphs.get_fresh(states.uid)
        if graphs is None or graphs.hidden_states is not states:
            graphs = GraphCache(states, device=self.device, staged=STAGED_GRAPHS)
            self._graphs.put(states.uid, graphs)
        return graphs

    def _estimator(self, name: str, snap: dict[str, Any]) -> Any:
        if name not in ESTIMATORS:
            raise TokendimError(
                f"Unknown estimator {name!r}: choose one of {', '.join(ESTIMATORS)}."
            )
        import inspect

        accepted = inspect.signature(ESTIMATORS[name].__init__).parameters
        params: dict[str, Any] = {}
        for key in K_PARAMS:
            if key in accepted:
                params[key] = snap["k"]
        for key in SCALE_PARAMS:
            if key in accepted and snap["scale"] is not None:
                params[key] = snap["scale"]
        return make_estimator(name, **params)

    def _curves(
        self, snap: dict[str, Any], states: HiddenStates, graphs: GraphCache
    ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        with self._lock:
            if self._controls_for != self._controls_identity(snap, states):
                self._controls, self._controls_for = {}, None
        names = list(dict.fromkeys([snap["estimator"], *snap["overlay"]]))
        spec = CloudSpec(snap["cloud"], snap["drop_first"], snap["metric"])
        built: dict[str, pd.DataFrame] = {}
        total = len(names) * states.n_layers
        done = 0
        for name in names:
            estimator = self._estimator(name, snap)
            label = estimator_label(estimator)
            parts = []
            for layer in range(states.n_layers):
                key = (states.uid, label, spec, layer)
                row = self._curve_rows.get_fresh(key)
                if row is None:
                    self._checkpoint(snap, CURVE_KEYS)
                    self._publish(
                        snap, CURVE_KEYS, status="estimating", progress=done / max(total, 1)
                    )
                    row = id_curve(
                        states,
                        estimator,
                        cloud=spec.cloud,
                        drop_first=spec.drop_first,
                        metric=spec.metric,
                        layers=[layer],
                        warn=False,  # the curve's columns say it; no stray output in a notebook
                        graphs=graphs,
                    )
                    self._curve_rows.put(key, row)
                parts.append(row)
                done += 1
            built[label] = concat_curves(parts)
        main = built.pop(next(iter(built)))
        return main, built

    def _current_overlays(self) -> dict[str, pd.DataFrame]:
        return dict(self._overlays)

    def _controls_identity(self, snap: dict[str, Any], states: HiddenStates) -> Any:
        label = estimator_label(self._estimator(snap["estimator"], snap))
        return (states.uid, label, snap["cloud"], snap["drop_first"], snap["metric"])

    def _publish_controls(
        self,
        snap: dict[str, Any],
        states: HiddenStates,
        curve: pd.DataFrame,
        overlays: dict[str, pd.DataFrame],
    ) -> None:
        """Null-control curves of the main estimator, drawn beside the curve."""
        estimator = self._estimator(snap["estimator"], snap)
        label = estimator_label(estimator)
        built: dict[str, pd.DataFrame] = {}
        for control in snap["controls"]:
            key = (states.uid, control, label, snap["cloud"], snap["drop_first"], snap["metric"])
            null = self._control_curves.get_fresh(key)
            if null is None:
                self._checkpoint(snap, CURVE_KEYS)
                self._publish(snap, CURVE_KEYS, status=f"{control} control")
                null = null_curves(
                    states,
                    estimator,
                    controls=[control],
                    model=snap["model"] if self._fixed_states is None else None,
                    cloud=snap["cloud"],
                    drop_first=snap["drop_first"],
                    metric=snap["metric"],
                    warn=False,
                )[control]
                self._control_curves.put(key, null)
            built[f"{label} · {control} control"] = null
        with self._lock:
            self._controls = built
            self._controls_for = self._controls_identity(snap, states)
        self._publish_curves(curve, overlays, snap)

    def _publish_curves(
        self,
        curve: pd.DataFrame,
        overlays: dict[str, pd.DataFrame],
        snap: dict[str, Any] | None = None,
    ) -> None:
        controls = self._controls if snap is None or snap.get("controls") else {}
        everything = {curve.attrs["estimator"]: curve, **overlays, **controls, **self._pinned}
        table = compare(everything)
        values = {"curve": curve, "curves": everything, "metrics": table}
        if snap is None:
            self._set(**values)
        elif self._publish(snap, CURVE_KEYS, **values):
            self._overlays = dict(overlays)

    def _local(self, snap: dict[str, Any], states: HiddenStates, graphs: GraphCache) -> Any:
        key = (states.uid, snap["k"], snap["drop_first"], snap["metric"])
        frame = self._locals.get_fresh(key)
        if frame is None:
            self._checkpoint(snap, LOCAL_KEYS)
            self._publish(snap, LOCAL_KEYS, status="local dimensions")
            frame = local_id(
                states,
                snap["k"],
                drop_first=snap["drop_first"],
                metric=snap["metric"],
                graphs=graphs,
            )
            self._locals.put(key, frame)
        return frame

    def _resolve_layer(self, snap: dict[str, Any], states: HiddenStates) -> int:
        layer = snap["layer"]
        if layer >= states.n_layers and self._layer_of_old_states:
            self._set_layer_quietly(-1)  # the other model's layer: take this one's peak
            layer = -1
        if layer < 0:
            return states.n_layers // 2  # shown until the curve's peak is known
        if layer >= states.n_layers:
            raise TokendimError(
                f"Layer {layer} does not exist: the states have {states.n_layers} layers "
                f"(0..{states.n_layers - 1})."
            )
        return int(layer)

    def _set_layer_quietly(self, layer: int) -> None:
        """Select the curve's peak without counting it as the user's choice."""
        with self._lock:
            self.layer = layer
            self._layer_auto = True

    def _projection(
        self,
        snap: dict[str, Any],
        states: HiddenStates,
        graphs: GraphCache,
        layer: int,
        kind: str,
    ) -> np.ndarray:
        key = (states.uid, layer, kind, snap["drop_first"])
        cached = self._projections.get_fresh(key)
        if cached is not None:
            return np.asarray(cached)
        spec = CloudSpec("all", snap["drop_first"])
        rows = graphs.groups(spec)[0]
        X = graphs.points(layer, rows)
        if kind == "pca":
            reference = self._neighbour_layout(states, layer, "pca", snap["drop_first"], rows)
            Y = proj.pca_2d(X)
            if reference is not None:
                Y = proj.align_to(Y, reference)
        else:
            graph = graphs.graph(layer, spec, 0, k=proj.UMAP_NEIGHBORS)
            init = self._neighbour_layout(states, layer, "umap", snap["drop_first"], rows)
            if init is None:
                # Start from the PCA preview on screen, so the preview morphs into the UMAP
                # layout in the same frame instead of jumping.
                preview = self._projections.get_fresh(
                    (states.uid, layer, "pca", snap["drop_first"])
                )
                init = None if preview is None else np.asarray(preview)[rows]
            Y = proj.umap_2d(X, knn=graph, init="pca" if init is None else init)
        full = np.full((states.n_tokens, 2), np.nan, dtype=np.float32)
        full[rows] = Y
        self._projections.put(key, full)
        return full

    def _neighbour_layout(
        self, states: HiddenStates, layer: int, kind: str, drop_first: bool, rows: np.ndarray
    ) -> np.ndarray | None:
        """The cached layout of the nearest layer, on the same rows: the next layout starts
        from it, so scrubbing through layers reads as motion rather than as re-layouts."""
        for offset in range(1, states.n_layers):
            for other in (layer - offset, layer + offset):
                cached = self._projections.get_fresh((states.uid, other, kind, drop_first))
                if cached is not None:
                    return np.asarray(cached)[rows]
        return None

    def _show_cached_projection(self) -> bool:
        """Publish the selected layer's projection at once if it is cached."""
        with self._lock:
            states = self.hidden_states
            if states is None or self.layer < 0:
                return False
            for kind in ("umap", "pca") if self.projection_method == "umap" else ("pca",):
                cached = self._projections.get_fresh(
                    (states.uid, self.layer, kind, self.drop_first)
                )
                if cached is not None:
                    self._set(projection=cached, projection_kind=kind, projection_layer=self.layer)
                    return kind == "umap" or self.projection_method == "pca"
        return False

    def _fill_projections(
        self, snap: dict[str, Any], states: HiddenStates, graphs: GraphCache, start: int
    ) -> None:
        """Project the other layers in the background, nearest to the selected one first."""
        kinds = ["pca", "umap"] if snap["projection_method"] == "umap" else ["pca"]
        order = sorted(range(states.n_layers), key=lambda layer: (abs(layer - start), layer))
        for kind in kinds:
            for layer in order:
                self._checkpoint(snap, FILL_KEYS)
                self._projection(snap, states, graphs, layer, kind)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    try:
        hash(value)
    except TypeError:
        return id(value)
    return value


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
