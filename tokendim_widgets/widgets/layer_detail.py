"""One layer in detail: GRIDE's scale curve, the correlation integral's local slope with a
movable window, the estimate against N, and the per-prompt estimates.

:class:`LayerDetail` observes a :class:`~tokendim_widgets.Session` (its hidden states, its
``layer``, its cloud options and ``selected_tokens``) and computes the panels in a background
thread, fastest first, each sent as soon as it is ready. Moving the correlation window refits
from the counts already made (milliseconds); clicking a prompt sets the session's
``selected_tokens`` to that prompt's tokens, so every linked view shows them.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets as t

from ..errors import TokendimError
from ..graphs import GraphCache
from ..layer_detail import (
    CorrelationCounts,
    correlation_counts,
    gride_scales,
    layer_convergence,
    prompt_ids,
)
from ..session import Session

#: Panels in the order they are computed (cheapest first).
PANELS = ("scale", "prompts", "correlation", "convergence")
#: Characters of a prompt's text shown in its tooltip.
PROMPT_PREVIEW = 80


def _bundle() -> Path:
    path = Path(__file__).resolve().parent.parent / "static" / "widget.js"
    if not path.exists():
        raise TokendimError(
            "The front end is not built: run `npm ci && npm run build` in js/ "
            "(or reinstall the package)."
        )
    return path


def _num(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    out = []
    for record in frame[columns].to_dict("records"):
        out.append(
            {
                str(k): (_num(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in record.items()
            }
        )
    return out


def _floats(values: Any) -> list[float | None]:
    return [_num(v) for v in np.asarray(values, dtype=np.float64)]


class _Stale(Exception):
    """The layer (or the states) changed while a panel was computed."""


class LayerDetail(anywidget.AnyWidget):
    """Scale and sample views of the session's selected layer.

    Four panels: GRIDE's ID at n1 = 1, 2, 4, 8, 16 (n2 = 2 n1); the local slope
    d log C / d log r of the correlation integral with its fitting window (drag its edges or
    type them: the estimate is refitted for that window); the ID at N, N/2, N/4, ... points;
    and one TwoNN estimate per prompt, where a click selects that prompt's tokens.

    Parameters
    ----------
    session : Session
        The session whose layer is shown; it is observed, never run or closed.
    scales : sequence of int, default (1, 2, 4, 8, 16)
        GRIDE's n1 values.
    min_prompt_tokens : int, default 16
        Prompts with fewer tokens get no estimate of their own (listed in a note).
    device : str, default "auto"
    graphs : GraphCache, optional
        A cache of neighbour graphs to share (e.g. the session's): used while its hidden
        states are the session's, so the layer's graph is not searched twice.

    Examples
    --------
    >>> detail = LayerDetail(session)  # doctest: +SKIP
    >>> detail.window = [80.0, 140.0]  # doctest: +SKIP
    >>> detail.window_fit["dimension"]  # doctest: +SKIP
    >>> detail.select_prompt(3)  # session.selected_tokens: prompt 3's  # doctest: +SKIP
    """

    _esm = _bundle()
    _view = t.Unicode("layer_detail").tag(sync=True)
    theme = t.Unicode("auto").tag(sync=True)
    layer = t.Int(-1).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    panel_status = t.Dict().tag(sync=True)
    scale_curve: t.List[Any] = t.List().tag(sync=True)
    correlation = t.Dict().tag(sync=True)
    window: t.List[Any] = t.List().tag(sync=True)
    window_fit = t.Dict().tag(sync=True)
    convergence: t.List[Any] = t.List().tag(sync=True)
    prompts: t.List[Any] = t.List().tag(sync=True)
    prompt_note = t.Unicode("").tag(sync=True)
    selected_prompts: t.List[Any] = t.List().tag(sync=True)

    _OBSERVED = ("hidden_states", "layer", "drop_first", "metric", "estimator")

    def __init__(
        self,
        session: Session,
        *,
        scales: tuple[int, ...] = (1, 2, 4, 8, 16),
        min_prompt_tokens: int = 16,
        device: str = "auto",
        graphs: GraphCache | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.scales = tuple(scales)
        self.min_prompt_tokens = int(min_prompt_tokens)
        self.device = device
        self._counts: CorrelationCounts | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._generation = 0
        self._graphs: GraphCache | None = graphs
        self._prompt_rows: dict[int, np.ndarray] = {}
        self._rows_of: Any = None
        session.observe(self._on_session, names=list(self._OBSERVED))
        session.observe(self._on_selection, names="selected_tokens")
        self.observe(self._on_window, names="window")
        self.on_msg(self._on_message)
        self._thread = threading.Thread(
            target=self._loop, name="tokendim-layer-detail", daemon=True
        )
        self._thread.start()
        self._on_session()

    # ---- session -> view ---------------------------------------------------------------
    def _target(self) -> tuple[Any, int] | None:
        states = self.session.hidden_states
        if states is None:
            return None
        layer = int(self.session.layer)
        # Until the session picks its layer (the curve's peak), it shows the middle one.
        if layer < 0 or layer >= states.n_layers:
            layer = states.n_layers // 2
        return states, layer

    def _on_session(self, change: Any = None) -> None:
        with self._lock:
            self._generation += 1
            self._idle.clear()
        self._wake.set()

    def _on_selection(self, change: Any = None) -> None:
        selected = np.asarray(self.session.selected_tokens, dtype=np.int64).ravel()
        chosen = []
        if selected.size:
            chosen_set = set(selected.tolist())
            for prompt, rows in self._prompt_rows.items():
                if rows.size and all(int(r) in chosen_set for r in rows):
                    chosen.append(prompt)
        self.selected_prompts = sorted(chosen)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                return
            self._wake.clear()
            with self._lock:
                generation = self._generation
            try:
                self._compute(generation)
            except _Stale:
                continue
            with self._lock:
                if generation == self._generation and not self._wake.is_set():
                    self._idle.set()

    def _check(self, generation: int) -> None:
        if self._closed or generation != self._generation:
            raise _Stale

    def _status(self, panel: str, value: str) -> None:
        self.panel_status = {**self.panel_status, panel: value}

    def _compute(self, generation: int) -> None:
        target = self._target()
        if target is None:
            self.panel_status = {p: "waiting for the session's hidden states" for p in PANELS}
            return
        states, layer = target
        s = self.session
        if self._graphs is None or self._graphs.hidden_states is not states:
            # The session's own graphs: the neighbour search of this layer is already done.
            self._graphs = s.results.graphs_for(states)
        if not self._prompt_rows or self._rows_of is not states:
            self._rows_of = states
            prompts = states.tokens["prompt"].to_numpy()
            self._prompt_rows = {
                int(p): np.flatnonzero(prompts == p) for p in np.unique(prompts).tolist()
            }
        cloud = {"drop_first": bool(s.drop_first), "metric": str(s.metric)}
        with self.hold_sync():
            self.layer = layer
            self.n_layers = states.n_layers
            self.panel_status = {p: "computing" for p in PANELS}
            self._counts = None
        self._on_selection()
        steps = (
            ("scale", lambda: self._fill_scale(states, layer, cloud)),
            ("prompts", lambda: self._fill_prompts(states, layer, cloud)),
            ("correlation", lambda: self._fill_correlation(states, layer, cloud, generation)),
            ("convergence", lambda: self._fill_convergence(states, layer, cloud)),
        )
        for panel, step in steps:
            self._check(generation)
            try:
                publish = step()
            except TokendimError as exc:
                self._check(generation)
                self._status(panel, f"error: {exc}")
                continue
            self._check(generation)
            with self.hold_sync():
                publish()
                self._status(panel, "ready")

    def _fill_scale(self, states: Any, layer: int, cloud: dict[str, Any]) -> Any:
        table = gride_scales(
            states, layer, scales=self.scales, graphs=self._graphs, device=self.device, **cloud
        )
        rows = _rows(table, ["n1", "n2", "radius", "dimension", "lower", "upper"])
        method = str(table["interval_method"].iloc[0])

        def publish() -> None:
            self.scale_curve = [dict(r, interval_method=method) for r in rows]

        return publish

    def _fill_prompts(self, states: Any, layer: int, cloud: dict[str, Any]) -> Any:
        table = prompt_ids(states, layer, min_tokens=self.min_prompt_tokens, **cloud)
        texts = self._prompt_texts(states)
        rows = _rows(table, ["prompt", "n_tokens", "dimension", "lower", "upper"])
        for row in rows:
            row["prompt"] = int(row["prompt"])
            row["n_tokens"] = int(row["n_tokens"])
            row["text"] = texts.get(row["prompt"], "")
        left_out = table.attrs["left_out"]
        note = f"{table.attrs['estimator']}; intervals: chi-square (tokens taken as independent)."
        if left_out:
            note += (
                f" {len(left_out)} prompt(s) with fewer than {table.attrs['min_tokens']} "
                "distinct tokens left out."
            )

        def publish() -> None:
            self.prompts = rows
            self.prompt_note = note

        return publish

    @staticmethod
    def _prompt_texts(states: Any) -> dict[int, str]:
        tokens = states.tokens
        out: dict[int, str] = {}
        for prompt, group in tokens.groupby("prompt", sort=True):
            text = "".join(str(x) for x in group.sort_values("position")["token"])
            out[int(prompt)] = text[:PROMPT_PREVIEW] + ("…" if len(text) > PROMPT_PREVIEW else "")
        return out

    def _fill_correlation(
        self, states: Any, layer: int, cloud: dict[str, Any], generation: int
    ) -> Any:
        counts = correlation_counts(states, layer, graphs=self._graphs, device=self.device, **cloud)
        payload = {
            "radii": _floats(counts.radii),
            "curve": _floats(counts.curve),
            "slope": _floats(counts.local_slope),
            "default_window": list(counts.default_window),
            "n_counted": counts.n_counted,
            "n_points": counts.n_points,
        }

        def publish() -> None:
            self._counts = counts
            self.correlation = payload
            window = list(counts.default_window)
            if self.window == window:
                self._on_window()
            else:
                self.window = window

        return publish

    def _fill_convergence(self, states: Any, layer: int, cloud: dict[str, Any]) -> Any:
        estimator = self.session.estimator or "twonn"
        table = layer_convergence(states, layer, estimator, **cloud)
        rows = _rows(table, ["n", "dimension", "lower", "upper"])
        for row in rows:
            row["n"] = int(row["n"])
            row["estimator"] = estimator

        def publish() -> None:
            self.convergence = rows

        return publish

    # ---- view -> session ---------------------------------------------------------------
    def _on_window(self, change: Any = None) -> None:
        counts = self._counts
        if counts is None or len(self.window) != 2:
            return
        try:
            lo, hi = (float(v) for v in self.window)
            fit = counts.fit(lo, hi)
        except (TokendimError, TypeError, ValueError) as exc:
            self.window_fit = {"error": str(exc)}
            return
        self.window_fit = {k: (_num(v) if isinstance(v, float) else v) for k, v in fit.items()}

    def select_prompt(self, prompt: int | None) -> None:
        """Select the tokens of ``prompt`` in the session (None clears the selection)."""
        if prompt is None:
            self.session.selected_tokens = np.empty(0, dtype=np.int64)
            return
        rows = self._prompt_rows.get(int(prompt))
        if rows is None:
            raise TokendimError(f"No prompt {prompt} in these hidden states.")
        self.session.selected_tokens = rows.copy()

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "select_prompt":
            return
        prompt = content.get("prompt")
        try:
            self.select_prompt(None if prompt is None else int(prompt))
        except (TokendimError, TypeError, ValueError) as exc:
            self._status("prompts", f"error: {exc}")

    # ---- lifecycle ---------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> LayerDetail:
        """Block until every panel of the current layer is computed (or ``timeout`` s)."""
        if not self._idle.wait(timeout):
            raise TokendimError(f"The layer detail was not ready within {timeout} s.")
        return self

    def close(self) -> None:
        """Stop observing the session and end the worker thread."""
        if not self._closed:
            self._closed = True
            self.session.unobserve(self._on_session, names=list(self._OBSERVED))
            self.session.unobserve(self._on_selection, names="selected_tokens")
            self._wake.set()
        super().close()
