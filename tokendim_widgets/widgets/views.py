"""The anywidget views: thin Python classes over one bundled front-end module.

Every view observes a :class:`~tokendim_widgets.session.Session`, sets its parameters and
computes nothing; views that share a session are linked through it. Each view declares the
traits of its groups in :mod:`tokendim_widgets.wire` (the protocol: docs/wire-protocol.md).
"""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from .. import export, wire
from ..errors import TokendimError
from ..prompts import parse_prompts
from ..session import Session
from ..validation import check_float

STATIC = Path(__file__).resolve().parent.parent / "static"


def _bundle() -> Path:
    path = STATIC / "widget.js"
    if not path.exists():
        raise TokendimError(
            "The front end is not built: run `npm ci && npm run build` in js/ "
            "(or reinstall the package)."
        )
    return path


def _to_json_indices(value: Any, widget: Any) -> bytes:
    return wire.int32_bytes(wire.int_array(value))


def _from_json_indices(value: Any, widget: Any) -> np.ndarray:
    return wire.int_array(value)


def _from_json_bytes(value: Any, widget: Any) -> bytes:
    return bytes(value) if value is not None else b""


def _trait(name: str) -> Any:
    """The synced trait ``name`` with its default from :data:`tokendim_widgets.wire.GROUPS`."""
    value = wire.default(name)
    if isinstance(value, np.ndarray):  # token rows: int32 bytes on the wire, an array here
        return t.Any(value).tag(sync=True, to_json=_to_json_indices, from_json=_from_json_indices)
    if isinstance(value, bytes):  # arrives from the front end as a memoryview: keep bytes
        return t.Bytes(value).tag(sync=True, from_json=_from_json_bytes)
    if isinstance(value, bool):
        return t.Bool(value).tag(sync=True)
    if isinstance(value, int):
        return t.Int(value).tag(sync=True)
    if isinstance(value, float):
        return t.Float(value).tag(sync=True)
    if isinstance(value, str):
        return t.Unicode(value).tag(sync=True)
    return t.List(value).tag(sync=True)


class _Tokens(t.HasTraits):
    n_tokens = _trait("n_tokens")
    token_text = _trait("token_text")
    token_offsets = _trait("token_offsets")
    token_prompt = _trait("token_prompt")
    token_position = _trait("token_position")


class _Curve(t.HasTraits):
    curves = _trait("curves")
    curve_ylabel = _trait("curve_ylabel")


class _Projection(t.HasTraits):
    projection = _trait("projection")
    projection_kind = _trait("projection_kind")
    projection_layer = _trait("projection_layer")
    color_by = _trait("color_by")


class _Local(t.HasTraits):
    local_id = _trait("local_id")
    local_id_range = _trait("local_id_range")
    # "robust" (local_id_range, 2nd-98th percentile), "p5" (5th-95th) or "full" (min-max)
    local_id_range_mode = _trait("local_id_range_mode")


class _Metrics(t.HasTraits):
    metrics = _trait("metrics")
    metrics_columns = _trait("metrics_columns")


class _Controls(t.HasTraits):
    model_ref = _trait("model_ref")
    model_choices = _trait("model_choices")
    prompt_set = _trait("prompt_set")
    prompt_choices = _trait("prompt_choices")
    shuffled = _trait("shuffled")
    controls = _trait("controls")
    estimator = _trait("estimator")
    estimator_choices = _trait("estimator_choices")
    k = _trait("k")
    scale = _trait("scale")
    cloud = _trait("cloud")
    cloud_choices = _trait("cloud_choices")
    progress = _trait("progress")
    tokens_per_second = _trait("tokens_per_second")
    eta_seconds = _trait("eta_seconds")
    busy = _trait("busy")


class SessionView(anywidget.AnyWidget):
    """Base class of the views: the shared traits, bound to a session.

    Subclasses pick the front-end view (``_view``) and add the trait groups they show, so a
    standalone curve neither has nor receives a 100,000-token projection. :meth:`close`
    stops observing the session.
    """

    _esm = _bundle()
    _view = t.Unicode("explorer").tag(sync=True)

    layer = _trait("layer")
    n_layers = _trait("n_layers")
    selected_tokens = _trait("selected_tokens")
    hovered_token = _trait("hovered_token")
    theme = _trait("theme")
    status = _trait("status")
    error = _trait("error")

    def __init__(self, session: Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self._syncing = threading.local()
        self._observers: list[tuple[Any, list[str]]] = []
        self.groups = tuple(
            group
            for group, traits in wire.GROUPS.items()
            if all(self.has_trait(name) for name in traits)
        )
        self._bind()

    # ---- session -> view ---------------------------------------------------------------
    def _observe_session(self, handler: Any, names: list[str]) -> None:
        self.session.observe(handler, names=names)
        self._observers.append((handler, names))

    def _bind(self) -> None:
        self._mirror("layer", "layer", to_view=lambda v: max(int(v), 0))
        self._mirror("selected_tokens", "selected_tokens")
        if "controls" in self.groups:
            self._mirror("estimator", "estimator")
            self._mirror("k", "k")
            self._mirror("scale", "scale", to_view=lambda v: v or 0, to_session=lambda v: v or None)
            self._mirror("cloud", "cloud")
            self._mirror("shuffled", "shuffled")
            self._mirror("controls", "controls", to_view=list, to_session=list)
            self._mirror("model", "model_ref")
            self._mirror(
                "prompts",
                "prompt_set",
                to_view=lambda v: v if isinstance(v, str) else getattr(v, "name", "custom"),
                to_session=lambda v: v,
            )
            for name, value in wire.choices().items():
                setattr(self, name, value)
        status = [name for name, group in wire.STATUS.items() if group in self.groups]
        self._observe_session(self._relay, status)
        for name in status:
            self._relay({"name": name, "new": getattr(self.session, name)})
        results = [
            name for name, groups in wire.RESULT_GROUPS.items() if set(groups) & set(self.groups)
        ]
        self._observe_session(self._on_result, results)
        self._refresh(self.groups)
        self.on_msg(self._on_message)

    def _mirror(
        self,
        session_name: str,
        view_name: str,
        *,
        to_view: Any = None,
        to_session: Any = None,
    ) -> None:
        """Keep ``session.<session_name>`` and ``view.<view_name>`` equal, both ways."""
        to_view = to_view or (lambda v: v)
        to_session = to_session or (lambda v: v)

        def push(change: dict[str, Any]) -> None:
            if getattr(self._syncing, "active", False):
                return
            self._syncing.active = True
            try:
                setattr(self, view_name, to_view(change["new"]))
            finally:
                self._syncing.active = False

        def pull(change: dict[str, Any]) -> None:
            if getattr(self._syncing, "active", False):
                return
            self._syncing.active = True
            try:
                setattr(self.session, session_name, to_session(change["new"]))
            except t.TraitError as exc:
                self.error = f"Invalid {view_name}: {exc}"
            finally:
                self._syncing.active = False

        self._observe_session(push, [session_name])
        self.observe(pull, names=view_name)
        push({"new": getattr(self.session, session_name)})

    def _relay(self, change: dict[str, Any]) -> None:
        setattr(self, change["name"], change["new"])

    def _on_result(self, change: dict[str, Any]) -> None:
        self._refresh(wire.RESULT_GROUPS[change["name"]])

    def _refresh(self, groups: Any) -> None:
        """Set the traits of ``groups`` (those this view has) from the session's results."""
        values = wire.session_state(self.session, set(groups) & set(self.groups))
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def close(self) -> None:
        """Stop observing the session and close the widget (the session stays open)."""
        observers, self._observers = self._observers, []
        for handler, names in observers:
            with contextlib.suppress(ValueError):
                self.session.unobserve(handler, names=names)
        super().close()

    # ---- view -> session ---------------------------------------------------------------
    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "run":
                self.session.run()
            elif kind == "cancel":
                self.session.cancel()
            elif kind == "prompts_text":
                self.session.prompts = _prompts_from_text(str(content.get("text", "")))
                self.session.run()
            elif kind == "prompts_file":
                self.session.prompts = _prompts_from_file(
                    str(content.get("name", "prompts.txt")), str(content.get("text", ""))
                )
                self.session.run()
        except TokendimError as exc:
            self.error = str(exc)

    # ---- Python API --------------------------------------------------------------------
    def run(self) -> SessionView:
        """Start the computation (as the Run button does)."""
        self.session.run()
        return self

    def cancel(self) -> None:
        """Stop the current work (as the Cancel button does)."""
        self.session.cancel()

    def wait(self, timeout: float | None = None) -> SessionView:
        """Block until the results for the current parameters are published."""
        self.session.wait(timeout)
        return self

    # ---- exports -----------------------------------------------------------------------
    def to_html(
        self, path: str | Path, *, title: str | None = None, view: str | None = None
    ) -> Path:
        """Write this view as one standalone HTML file (offline, still interactive).

        The page holds every layer's projection, so layer clicks, the slider and box / lasso
        selection keep working without Python; see :func:`tokendim_widgets.export.export_html`.

        Parameters
        ----------
        path : str or path
            The ``.html`` file to write.
        title : str, optional
            Page title (default "Intrinsic dimension of <model>").
        view : str, optional
            Another view to show ("explorer", "curve", "scatter", "heatmap", "metrics");
            default this widget's.

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> explorer.to_html("explorer.html")  # doctest: +SKIP
        PosixPath('explorer.html')
        """
        return export.export_html(self, path, title=title, view=view)

    def export_data(
        self, folder: str | Path, *, format: str = "parquet", all_layers: bool = False
    ) -> dict[str, Path]:
        """Write the curves, metrics, local-ID matrix and projections to ``folder``.

        ``format`` is "parquet" (needs pyarrow: ``pip install "tokendim-widgets[export]"``) or
        "csv"; see :func:`tokendim_widgets.export.export_data`. Returns table name -> file.

        Examples
        --------
        >>> explorer.export_data("results", format="csv")  # doctest: +SKIP
        """
        return export.export_data(self, folder, format=format, all_layers=all_layers)

    def to_parquet(self, folder: str | Path, *, all_layers: bool = False) -> dict[str, Path]:
        """:meth:`export_data` as Parquet files."""
        return self.export_data(folder, format="parquet", all_layers=all_layers)

    def to_csv(self, folder: str | Path, *, all_layers: bool = False) -> dict[str, Path]:
        """:meth:`export_data` as CSV files."""
        return self.export_data(folder, format="csv", all_layers=all_layers)

    def export_image(
        self,
        view: str,
        format: str = "png",
        path: str | Path | None = None,
        *,
        timeout: float = 30.0,
    ) -> Future[Path]:
        """Ask the displayed widget for a PNG or SVG of one chart and write it to ``path``.

        The image is drawn in the browser, so the widget must be displayed in a running
        notebook. The request goes out at once, but the browser's reply is only processed
        once the cell that asked has **finished** (a cell cannot wait for a comm message):
        the file appears after the cell, and the returned future resolves then. Check it in a
        later cell (``future.result()``), or just look for the file.

        Parameters
        ----------
        view : {"curve", "scatter", "heatmap"}
            The chart; "" means the only chart of a standalone view.
        format : {"png", "svg"}, default "png"
            PNG at twice the CSS size for the curve; the curve's SVG is real SVG, the scatter's
            and heatmap's embed their PNG.
        path : str or path, optional
            Default ``<view>.<format>`` in the working directory.
        timeout : float, default 30
            Seconds to wait for the reply, counted from this call. Then the future fails with
            a :class:`~tokendim_widgets.TokendimError` saying the widget is not displayed.

        Returns
        -------
        concurrent.futures.Future
            Resolves to the :class:`~pathlib.Path` written, or fails with TokendimError.

        Examples
        --------
        >>> explorer  # doctest: +SKIP
        >>> done = explorer.export_image("curve", "svg", "curve.svg")  # doctest: +SKIP
        >>> done.result()  # in a later cell  # doctest: +SKIP
        PosixPath('curve.svg')
        """
        fmt = str(format).lower()
        if fmt not in ("png", "svg"):
            raise TokendimError(f"Unknown image format {format!r}: choose 'png' or 'svg'.")
        if view not in ("curve", "scatter", "heatmap", ""):
            raise TokendimError(
                f"Unknown chart {view!r}: choose 'curve', 'scatter' or 'heatmap' "
                "('' for the only chart of a standalone view)."
            )
        check_float(timeout, "timeout (seconds)", 0.0, math.inf, low_open=True, high_open=True)
        target = Path(path if path is not None else f"{view or self._view}.{fmt}").expanduser()
        if not hasattr(self, "_image_requests"):
            # One handler for every request (added once), so replies never change the list of
            # message callbacks while ipywidgets iterates over it.
            self._image_requests: dict[str, tuple[Future[Path], Path, str, Any]] = {}
            self.on_msg(self._on_image_reply)
        request_id = uuid.uuid4().hex
        future: Future[Path] = Future()
        timer = threading.Timer(timeout, self._image_timed_out, args=(request_id, timeout))
        timer.daemon = True
        self._image_requests[request_id] = (future, target, fmt, timer)
        timer.start()
        self.send({"type": "export", "view": view, "format": fmt, "request_id": request_id})
        return future

    def _on_image_reply(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "export_result":
            return
        request_id = str(content.get("request_id"))
        # The first reply wins (a widget displayed twice answers twice); pop is atomic.
        entry = self._image_requests.pop(request_id, None)
        if entry is None:
            return
        future, target, fmt, timer = entry
        timer.cancel()
        try:
            future.set_result(export.write_image(target, fmt, content))
        except TokendimError as exc:
            future.set_exception(exc)

    def _image_timed_out(self, request_id: str, timeout: float) -> None:
        entry = self._image_requests.pop(request_id, None)
        if entry is None:
            return
        future, target, fmt, _ = entry
        future.set_exception(
            TokendimError(
                f"No {fmt.upper()} came back for {target.name} within {timeout:g} s: the widget "
                "must be displayed in a running notebook. Show it first (end a cell with it), "
                "then call export_image at the end of a cell: the browser answers once that "
                "cell has finished."
            )
        )


def _prompts_from_text(text: str) -> Any:
    return parse_prompts(text, "txt", name="pasted")


def _prompts_from_file(name: str, text: str) -> Any:
    suffix = Path(name).suffix.lower().lstrip(".") or "txt"
    if suffix not in {"txt", "jsonl", "csv"}:
        raise TokendimError(f"Cannot read {name!r}: upload a .txt, .jsonl or .csv file.")
    return parse_prompts(text, suffix, name=Path(name).stem, origin=f"Prompt file {name!r}")


class Explorer(SessionView, _Tokens, _Curve, _Projection, _Local, _Metrics, _Controls):
    """The whole dashboard: controls, ID curve, metrics, projection scatter and token heatmap.

    Parameters
    ----------
    model : str, default "smollm2-135m"
        A built-in alias, Hugging Face hub id, local folder or ``.gguf`` file.
    prompts : str, list of str, path or PromptSet, default "mixed"
    session : Session, optional
        Share an existing session (and its caches) instead of creating one.
    run : bool, default True
        Start extracting and estimating at once.
    **params
        Any other session parameter (``estimator``, ``k``, ``cloud``, ``max_tokens`` ...).

    Examples
    --------
    >>> explorer = Explorer(model="smollm2-135m", prompts="mixed")  # doctest: +SKIP
    >>> explorer.layer = 12  # doctest: +SKIP
    >>> explorer.selected_tokens  # doctest: +SKIP
    """

    _view = t.Unicode("explorer").tag(sync=True)

    def __init__(
        self,
        model: str = "smollm2-135m",
        prompts: Any = "mixed",
        *,
        session: Session | None = None,
        run: bool = True,
        **params: Any,
    ) -> None:
        self._owns_session = session is None
        if session is None:
            session = Session(model=model, prompts=prompts, **params)
        super().__init__(session)
        if run:
            self.session.run()

    def close(self) -> None:
        """Close the widget, and the session too if this Explorer created it."""
        super().close()
        if self._owns_session:
            with contextlib.suppress(Exception):
                self.session.close()


class IDCurveView(SessionView, _Curve):
    """The layer-wise ID curve with its error band; click a layer to select it.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 200, 6)))
    >>> session = Session.from_hidden_states(states, projection_method="pca")
    >>> view = IDCurveView(session)  # the last line of a cell displays it
    >>> _ = session.run().wait()
    >>> view.n_layers, [curve["label"] for curve in view.curves]
    (2, ['twonn'])
    >>> view.layer = 0  # what a click on layer 0 does
    >>> session.layer
    0
    >>> session.close()
    """

    _view = t.Unicode("curve").tag(sync=True)


class ProjectionView(SessionView, _Tokens, _Projection, _Local):
    """The selected layer's 2-D projection (PCA preview, then UMAP), with box/lasso select.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 200, 6)))
    >>> session = Session.from_hidden_states(states, projection_method="pca")
    >>> view = ProjectionView(session)
    >>> _ = session.run().wait()
    >>> view.projection_kind, len(view.projection) // 8  # float32 (x, y) per token
    ('pca', 200)
    >>> view.selected_tokens = [3, 4]  # what a box selection of two points does
    >>> [int(row) for row in session.selected_tokens]
    [3, 4]
    >>> session.close()
    """

    _view = t.Unicode("scatter").tag(sync=True)


class TokenHeatmapView(SessionView, _Tokens, _Local):
    """Tokens x layers, coloured by local ID; click a cell to select its token and layer.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 200, 6)))
    >>> session = Session.from_hidden_states(states, projection_method="pca")
    >>> view = TokenHeatmapView(session)
    >>> _ = session.run().wait()
    >>> view.n_tokens, view.n_layers, len(view.local_id) // 4  # float32 tokens x layers
    (200, 2, 400)
    >>> session.close()
    """

    _view = t.Unicode("heatmap").tag(sync=True)


class MetricsView(SessionView, _Metrics):
    """The paper's metrics for every curve of the session.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 200, 6)))
    >>> session = Session.from_hidden_states(states, projection_method="pca")
    >>> view = MetricsView(session)
    >>> _ = session.run().wait()
    >>> [row["curve"] for row in view.metrics]
    ['twonn']
    >>> session.close()
    """

    _view = t.Unicode("metrics").tag(sync=True)


class ControlsView(SessionView, _Controls):
    """Model and prompt pickers, estimator parameters, Run / Cancel and progress.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> states = HiddenStates.from_arrays(np.random.default_rng(0).normal(size=(2, 200, 6)))
    >>> session = Session.from_hidden_states(states, projection_method="pca")
    >>> view = ControlsView(session)
    >>> view.estimator = "mle"  # what choosing MLE in the menu does
    >>> session.estimator
    'mle'
    >>> session.close()
    """

    _view = t.Unicode("controls").tag(sync=True)
