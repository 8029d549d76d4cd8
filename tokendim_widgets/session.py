"""The reactive session: parameters in, results out, on a background thread, never stale.

A :class:`Session` holds every parameter a user can change as traits and publishes results as
traits; it knows no widget. Its computed results live in a :class:`~tokendim_widgets.results.
Results` cache (:attr:`Session.results`). How passes, staleness and publishing work:
docs/session.md.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import traitlets as t

from . import projection as proj
from .analysis import NULL_CONTROLS, compare, estimator_label, summarize
from .clouds import CLOUDS, METRICS, CloudSpec
from .devices import free_memory
from .errors import Cancelled, TokendimError
from .estimators import ESTIMATORS, make_estimator
from .extraction import extract
from .hidden_states import HiddenStates
from .models import load_model
from .progress import throttled
from .prompts import as_prompt_set
from .quality import model_quality
from .results import Results
from .validation import check_choice, check_int, check_optional_int

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
        # An allowed None never gets here (traitlets passes it by); the message names it.
        check = check_optional_int if self.allow_none else check_int
        try:
            return check(value, str(self.name), self.minimum)
        except TokendimError as exc:
            raise OptionError(str(exc)) from None


class _ChoiceOption(t.Unicode):
    """A text parameter taking one of a few values; others raise TokendimError."""

    def __init__(self, default: str, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        self.choices = choices

    def validate(self, obj: Any, value: Any) -> Any:
        try:
            return check_choice(value, str(self.name), self.choices)
        except TokendimError as exc:
            raise OptionError(str(exc)) from None


class _Restart(Exception):
    """A change is waiting: end this pass early and start a new one (caches are kept)."""


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
        self._results = Results(device=self.device, staged=STAGED_GRAPHS)
        self._pinned: dict[str, pd.DataFrame] = {}
        self._overlays: dict[str, pd.DataFrame] = {}
        self._controls: dict[str, pd.DataFrame] = {}
        self._controls_for: Any = None
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

    @property
    def results(self) -> Results:
        """The cache of everything this session computed (graphs, curves, projections)."""
        return self._results

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
        prompts = as_prompt_set(self.prompts)
        model = self._loaded[1] if self._loaded and self._loaded[0][0] == self.model else self.model
        return model_quality(model, prompts, device=self.device, dtype=self.dtype)

    # ---- parameter changes -------------------------------------------------------------
    def _on_param(self, change: dict[str, Any]) -> None:
        name = change["name"]
        if name == "device":
            self._results.device = change["new"]
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
        graphs = self._results.graphs_for(states)
        self._publish(snap, STATE_KEYS, hidden_states=states)
        layer = self._resolve_layer(snap, states)

        if not self._show_cached_projection():
            preview = self._results.projection(states, layer, "pca", drop_first=snap["drop_first"])
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
        curve, overlays = self._curves(snap, states)
        self._publish_curves(curve, overlays, snap)
        if self._layer_auto and self.layer < 0:
            peak = int(summarize(curve)["working_layer"])
            self._set_layer_quietly(peak)
            snap = self._params()
            layer = peak

        local = self._local(snap, states)
        self._publish(snap, LOCAL_KEYS, local_ids=local)

        if snap["projection_method"] == "umap":
            self._set(status="projecting")
            full = self._results.projection(states, layer, "umap", drop_first=snap["drop_first"])
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
        self._fill_projections(snap, states, layer)

    # ---- stages --------------------------------------------------------------------------
    def _states_for(self, snap: dict[str, Any]) -> HiddenStates:
        if self._fixed_states is not None:
            return self._fixed_states
        key = tuple(_hashable(snap[name]) for name in STATE_KEYS)
        states = self._results.cached_states(key)
        if states is not None:
            return states
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
        self._results.keep_states(key, states)
        return states

    @staticmethod
    def _load_key(snap: dict[str, Any]) -> tuple[str, str, str]:
        return (snap["model"], snap["device"], snap["dtype"])

    def _load(self, snap: dict[str, Any]) -> Any:
        key = self._load_key(snap)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the old model before loading the next one
            self._loaded = (key, load_model(key[0], device=key[1], dtype=key[2]))
        return self._loaded[1]

    def _estimator(self, name: str, snap: dict[str, Any]) -> Any:
        if name not in ESTIMATORS:
            raise TokendimError(
                f"Unknown estimator {name!r}: choose one of {', '.join(ESTIMATORS)}."
            )
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
        self, snap: dict[str, Any], states: HiddenStates
    ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        with self._lock:
            if self._controls_for != self._controls_identity(snap, states):
                self._controls, self._controls_for = {}, None
        names = list(dict.fromkeys([snap["estimator"], *snap["overlay"]]))
        spec = CloudSpec(snap["cloud"], snap["drop_first"], snap["metric"])
        total = len(names) * states.n_layers
        built: dict[str, pd.DataFrame] = {}
        for index, name in enumerate(names):
            estimator = self._estimator(name, snap)

            def before(layer: int, index: int = index) -> None:
                self._checkpoint(snap, CURVE_KEYS)
                done = index * states.n_layers + layer
                self._publish(snap, CURVE_KEYS, status="estimating", progress=done / max(total, 1))

            built[estimator_label(estimator)] = self._results.curve(
                states, estimator, spec, before=before
            )
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
        spec = CloudSpec(snap["cloud"], snap["drop_first"], snap["metric"])
        built: dict[str, pd.DataFrame] = {}
        for control in snap["controls"]:

            def before(control: str = control) -> None:
                self._checkpoint(snap, CURVE_KEYS)
                self._publish(snap, CURVE_KEYS, status=f"{control} control")

            built[f"{label} · {control} control"] = self._results.control_curve(
                states,
                estimator,
                spec,
                control,
                model=snap["model"] if self._fixed_states is None else None,
                before=before,
            )
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

    def _local(self, snap: dict[str, Any], states: HiddenStates) -> pd.DataFrame:
        def before() -> None:
            self._checkpoint(snap, LOCAL_KEYS)
            self._publish(snap, LOCAL_KEYS, status="local dimensions")

        return self._results.local_ids(
            states, snap["k"], drop_first=snap["drop_first"], metric=snap["metric"], before=before
        )

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

    def _show_cached_projection(self) -> bool:
        """Publish the selected layer's projection at once if it is cached."""
        with self._lock:
            states = self.hidden_states
            if states is None or self.layer < 0:
                return False
            for kind in ("umap", "pca") if self.projection_method == "umap" else ("pca",):
                cached = self._results.cached_projection(
                    states, self.layer, kind, drop_first=self.drop_first
                )
                if cached is not None:
                    self._set(projection=cached, projection_kind=kind, projection_layer=self.layer)
                    return kind == "umap" or self.projection_method == "pca"
        return False

    def _fill_projections(self, snap: dict[str, Any], states: HiddenStates, start: int) -> None:
        """Project the other layers in the background, nearest to the selected one first."""
        kinds = ["pca", "umap"] if snap["projection_method"] == "umap" else ["pca"]
        for kind in kinds:
            self._results.fill_projections(
                states,
                kind,
                drop_first=snap["drop_first"],
                start=start,
                before=lambda: self._checkpoint(snap, FILL_KEYS),
            )


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
