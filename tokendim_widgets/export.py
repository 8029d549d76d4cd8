"""Exports of a session: a standalone HTML file, data tables (Parquet / CSV), layer projections.

The page (:func:`export_html`) opens from disk with no network and no kernel; the data
(:func:`export_data`) are four tables. Their layout and sizes: docs/wire-protocol.md.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import importlib.util
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, wire
from . import projection as proj
from .errors import TokendimError
from .progress import Progress
from .session import Session

__all__ = [
    "EXPORT_FORMAT",
    "curves_table",
    "export_data",
    "export_html",
    "layer_projections",
    "local_id_table",
    "metrics_table",
    "projections_table",
    "write_image",
]

#: Data layout of the page's JSON; js/src/standalone.ts checks the same string.
EXPORT_FORMAT = "tokendim-static/1"

STATIC = Path(__file__).resolve().parent / "static"
RUNTIME = STATIC / "standalone.js"

ProgressLike = bool | Callable[[int, int], None]

_PARQUET_HINT = (
    'Parquet export needs pyarrow: pip install "tokendim-widgets[export]" (or pip install '
    'pyarrow), or export CSV with format="csv".'
)


# ---- sources ------------------------------------------------------------------------------
def _session_of(source: Any) -> tuple[Session, Any]:
    """The session behind ``source`` (a Session or a view / Explorer) and the view, if any."""
    if isinstance(source, Session):
        return source, None
    session = getattr(source, "session", None)
    if isinstance(session, Session):
        return session, source
    raise TokendimError(
        f"Cannot export a {type(source).__name__}: give a Session, an Explorer or another view."
    )


def _ready(session: Session) -> None:
    """Wait for the work in progress; fail clearly when there is nothing to export."""
    if session.busy:
        session.wait(raise_error=False)
    if session.hidden_states is None or session.curve is None:
        detail = f" The last run failed: {session.error}" if session.error else ""
        raise TokendimError(
            "Nothing to export yet: run the analysis first (session.run().wait(), or the "
            f"Explorer's Run button) and export once it is done.{detail}"
        )


# ---- projections of every layer ------------------------------------------------------------
def _projection_kind(session: Session) -> str:
    return "umap" if session.projection_method == "umap" and proj.umap_available() else "pca"


def _progress_callback(progress: ProgressLike, kind: str) -> Any:
    """A (callback(done, total), close) pair for a progress argument (a bar for ``True``).

    The bar starts with the first computed layer, once the number to compute is known.
    """
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    bars: list[Progress] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(Progress(True, total, f"{kind} projections", unit="layer", leave=False))
        bars[0].advance(1)

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def layer_projections(
    source: Any,
    *,
    compute_missing: bool = True,
    kind: str | None = None,
    progress: ProgressLike = False,
) -> list[tuple[str, np.ndarray] | None]:
    """The 2-D projection of every layer: the session's cached ones, the others computed.

    Missing layers are projected with :mod:`tokendim_widgets.projection`, nearest to an
    available layer first and aligned to it (PCA: :func:`~tokendim_widgets.projection.align_to`;
    UMAP: started from it), as the session does, so that scrubbing through the layers reads as
    motion. They are put into the session's projection cache, so the widgets show them at once
    and a later export does not compute them again.

    Parameters
    ----------
    source : Session or view
    compute_missing : bool, default True
        False: return only what the session has cached (None for the other layers).
    kind : {"pca", "umap"}, optional
        Default: "umap" when the session's ``projection_method`` is "umap" and umap-learn is
        installed, else "pca".
    progress : bool or callable(done, total), default False
        A progress bar (tqdm) or a callback, called once per computed layer.

    Returns
    -------
    list
        One entry per layer: ``(kind, array of shape (n_tokens, 2), float32)`` with NaN rows
        for tokens left out of the cloud, or None.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> rng = np.random.default_rng(0)
    >>> hs = HiddenStates.from_arrays(rng.normal(size=(3, 200, 8)).astype("float32"))
    >>> s = Session.from_hidden_states(hs, projection_method="pca", drop_first=False, k=10)
    >>> _ = s.run().wait()
    >>> [kind for kind, _ in layer_projections(s)]
    ['pca', 'pca', 'pca']
    >>> s.close()
    """
    session, _ = _session_of(source)
    states = session.hidden_states
    if states is None:
        raise TokendimError("Nothing to project yet: run the session first.")
    kind = kind or _projection_kind(session)
    if kind not in ("pca", "umap"):
        raise TokendimError(f"Unknown projection kind {kind!r}: choose 'pca' or 'umap'.")
    results = session.results
    drop_first = bool(session.drop_first)
    if compute_missing:
        start = int(session.layer) if 0 <= session.layer < states.n_layers else 0
        update, close = _progress_callback(progress, kind)
        try:
            layouts = results.fill_projections(
                states, kind, drop_first=drop_first, start=start, progress=update
            )
        finally:
            close()
    else:
        cached = results.projections(states, drop_first=drop_first)
        layouts = [cached.get((kind, layer)) for layer in range(states.n_layers)]
    return [None if xy is None else (kind, xy) for xy in layouts]


# ---- the standalone page -------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json_safe(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become None (numpy scalars become Python ones)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _script_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment inside it."""
    text = json.dumps(_json_safe(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _runtime() -> str:
    if not RUNTIME.exists():
        raise TokendimError(
            "The standalone runtime is not built: run `npm ci && npm run build` in js/ "
            "(or reinstall the package)."
        )
    code = RUNTIME.read_text(encoding="utf-8")
    # Inside <script>, "</script" would end the element and "<!--" changes how it is parsed.
    # esbuild output has neither in practice; "<\/" means the same as "</" in JS strings.
    code = code.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    if "<!--" in code:
        raise TokendimError("The standalone runtime contains '<!--' and cannot be inlined.")
    return code


def _payload(session: Session, view: Any, view_name: str, kind_layers: list[Any]) -> dict[str, Any]:
    state, buffers = wire.page_state(session, view_name, view)
    n_layers, n_tokens = int(state["n_layers"]), int(session.hidden_states.n_tokens)
    blocks = np.full((n_layers, n_tokens, 2), np.nan, dtype="<f4")
    kinds = []
    for layer_index, entry in enumerate(kind_layers):
        if entry is None:
            kinds.append("")
            continue
        kinds.append(entry[0])
        blocks[layer_index] = entry[1]
    return {
        "format": EXPORT_FORMAT,
        "state": state,
        "buffers": {name: _b64(value) for name, value in buffers.items()},
        "projections": {"kinds": kinds, "n_tokens": n_tokens, "data": _b64(blocks.tobytes())},
    }


_PAGE_CSS = """\
:root { color-scheme: light dark; }
body { margin: 0; padding: 16px 20px 24px; background: #ffffff; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
body.tdw-page-dark { background: #111418; color: #e6e9ee; }
@media (prefers-color-scheme: dark) {
  body.tdw-page-auto { background: #111418; color: #e6e9ee; }
}
.tdw-page-header h1 { font-size: 18px; font-weight: 600; margin: 0 0 4px; }
.tdw-page-header p { margin: 0 0 12px; font-size: 12px; opacity: 0.75; }
#tdw-app { max-width: 1600px; }
"""

# Everything from this page itself; nothing may be requested from anywhere (data: images are
# the PNG exports and the SVG rasterisation, blob: the downloads).
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; base-uri 'none'; form-action 'none'"
)


def _page(data: dict[str, Any], *, title: str, subtitle: str, theme: str) -> str:
    page_theme = theme if theme in ("light", "dark") else "auto"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f'<meta name="generator" content="tokendim-widgets {html.escape(__version__)}">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{_PAGE_CSS}</style>\n</head>\n"
        f'<body class="tdw-page-{page_theme}">\n'
        '<header class="tdw-page-header">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>\n"
        '<main id="tdw-app"></main>\n'
        "<noscript>This page needs JavaScript to show its views.</noscript>\n"
        f'<script type="application/json" id="tdw-data">{_script_json(data)}</script>\n'
        f'<script type="module">\n{_runtime()}\n</script>\n'
        "</body>\n</html>\n"
    )


def _subtitle(session: Session, data: dict[str, Any], kinds: list[str]) -> str:
    state = data["state"]
    used = sorted({k for k in kinds if k})
    parts = [
        "Static export",
        f"model {state['model_ref']}",
        f"prompts {state['prompt_set']}" + (" (shuffled)" if state["shuffled"] else ""),
        f"{state['n_tokens']:,} tokens",
        f"{state['n_layers']} layers",
        "estimator " + ", ".join(state["estimator_choices"]),
        f"k = {state['k']}",
        f"cloud {state['cloud']}" + ("" if session.drop_first else " (first position kept)"),
        "projections " + ("/".join(used) if used else "none"),
        f"tokendim-widgets {__version__}, {_dt.date.today().isoformat()}",
    ]
    return " · ".join(parts)


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file, so a failed export leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise TokendimError(
            f"Cannot write {path}: {exc.strerror or exc}. Choose a writable location."
        ) from None


def export_html(
    source: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    view: str | None = None,
    progress: ProgressLike = True,
) -> Path:
    """Write one standalone HTML file with the linked views, interactive and offline.

    Parameters
    ----------
    source : Session, Explorer or view
        What to export; a view also gives its theme, colouring and view name.
    path : str or path
        The ``.html`` file to write (its folder is created).
    title : str, optional
        Page title; default "Intrinsic dimension of <model>".
    view : {"explorer", "curve", "scatter", "heatmap", "metrics"}, optional
        The view to show; default the source view's, else the whole explorer.
    progress : bool or callable(done, total), default True
        A progress bar while missing layer projections are computed.

    Returns
    -------
    pathlib.Path
        The file written.

    Notes
    -----
    Layers without a cached projection are projected first (PCA, or UMAP when the session's
    ``projection_method`` is "umap" and umap-learn is installed; see
    :func:`layer_projections`). The file holds ``n_tokens * n_layers * 12`` bytes of arrays
    before base64 (4/3): about 3.75 MB for 7,000 tokens and 31 layers.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from tokendim_widgets import HiddenStates, Session
    >>> rng = np.random.default_rng(0)
    >>> hs = HiddenStates.from_arrays(rng.normal(size=(3, 200, 8)).astype("float32"))
    >>> s = Session.from_hidden_states(hs, projection_method="pca", drop_first=False, k=10)
    >>> _ = s.run().wait()
    >>> out = export_html(s, pathlib.Path(tempfile.mkdtemp()) / "report.html", progress=False)
    >>> "<script src" in out.read_text()
    False
    >>> s.close()
    """
    session, source_view = _session_of(source)
    _ready(session)
    view_name = view or (getattr(source_view, "_view", "explorer") if source_view else "explorer")
    if view_name not in ("explorer", "curve", "scatter", "heatmap", "metrics", "controls"):
        raise TokendimError(
            f"Unknown view {view_name!r}: choose explorer, curve, scatter, heatmap or metrics."
        )
    projections = layer_projections(session, progress=progress)
    data = _payload(session, source_view, view_name, projections)
    kinds = data["projections"]["kinds"]
    model = data["state"]["model_ref"] or "a model"
    page_title = title if title is not None else f"Intrinsic dimension of {model}"
    text = _page(
        data,
        title=page_title,
        subtitle=_subtitle(session, data, kinds),
        theme=str(data["state"]["theme"]),
    )
    out = Path(path).expanduser()
    _write_text(out, text)
    return out


# ---- images --------------------------------------------------------------------------------
_PNG_PREFIX = "data:image/png;base64,"


def write_image(path: str | os.PathLike[str], format: str, reply: Mapping[str, Any]) -> Path:
    """Write the browser's reply to an image export request (``export_result``) to ``path``.

    Parameters
    ----------
    path : str or path
    format : {"png", "svg"}
        What was asked for: PNG arrives as a ``data:image/png;base64,...`` URL, SVG as text.
    reply : mapping
        The ``export_result`` message: ``data`` (None when the view could not export, then
        ``error`` says why).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> svg = '<svg xmlns="http://www.w3.org/2000/svg"/>'
    >>> out = write_image(pathlib.Path(tempfile.mkdtemp()) / "c.svg", "svg", {"data": svg})
    >>> out.read_text() == svg
    True
    """
    data = reply.get("data")
    view = reply.get("view") or "chart"
    if data is None:
        error = reply.get("error") or "no reason given"
        raise TokendimError(f"The {view} view could not export an image: {error}.")
    if not isinstance(data, str):
        raise TokendimError(f"The {view} view sent an image of type {type(data).__name__}.")
    if format == "png":
        if not data.startswith(_PNG_PREFIX):
            raise TokendimError(f"The {view} view did not send a PNG data URL.")
        try:
            content = base64.b64decode(data[len(_PNG_PREFIX) :], validate=True)
        except ValueError:
            raise TokendimError(f"The {view} view sent a PNG that is not valid base64.") from None
    elif format == "svg":
        content = data.encode("utf-8")
    else:
        raise TokendimError(f"Unknown image format {format!r}: choose 'png' or 'svg'.")
    out = Path(path).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
    except OSError as exc:
        raise TokendimError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    return out


# ---- data tables ---------------------------------------------------------------------------
def curves_table(source: Any) -> pd.DataFrame:
    """Every curve of the session in long format (one row per curve and layer).

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets import HiddenStates, Session
    >>> X = np.random.default_rng(0).normal(size=(2, 200, 6)).astype("float32")
    >>> hs = HiddenStates.from_arrays(X)
    >>> s = Session.from_hidden_states(hs, projection_method="pca", drop_first=False, k=10)
    >>> _ = s.run().wait()
    >>> list(curves_table(s).columns[:5])
    ['curve', 'model', 'estimator', 'cloud', 'layer']
    >>> s.close()
    """
    session, _ = _session_of(source)
    frames = []
    for label, curve in session.curves.items():
        frame = curve.copy()
        frame.insert(0, "curve", str(label))
        frame.insert(1, "model", str(curve.attrs.get("model", "")))
        if "estimator" not in frame.columns:
            frame["estimator"] = str(curve.attrs.get("estimator", label))
        frame.insert(3, "cloud", str(curve.attrs.get("cloud", "")))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(
            columns=["curve", "model", "estimator", "cloud", "layer", "dimension", "lower", "upper"]
        )
    table = pd.concat(frames, ignore_index=True)
    first = ["curve", "model", "estimator", "cloud"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.attrs = {}
    return table


def metrics_table(source: Any) -> pd.DataFrame:
    """The metrics table with the curve label as a column."""
    session, _ = _session_of(source)
    if session.metrics is None:
        return pd.DataFrame(columns=["curve"])
    table = session.metrics.reset_index()
    table.attrs = {}
    return table


def local_id_table(source: Any) -> pd.DataFrame:
    """Token metadata (row, prompt, position, token_id, token) and one column per layer."""
    session, _ = _session_of(source)
    states = session.hidden_states
    if states is None:
        raise TokendimError("Nothing to export yet: run the session first.")
    tokens = states.tokens.reset_index(drop=True)
    table = pd.DataFrame({"row": np.arange(len(tokens), dtype=np.int64)})
    for column in ("prompt", "position", "token_id", "token"):
        table[column] = tokens[column].to_numpy()
    table["token"] = table["token"].astype(str)
    local = session.local_ids
    if local is not None:
        values = local.to_numpy(dtype=np.float32)
        layers = pd.DataFrame(
            values, columns=[f"layer_{int(c)}" for c in local.columns], index=table.index
        )
        table = pd.concat([table, layers], axis=1)
    return table


def projections_table(source: Any, *, all_layers: bool = False) -> pd.DataFrame:
    """Every cached projection in long format: row, layer, kind, x, y.

    With ``all_layers=True`` the layers without a cached projection are computed first
    (:func:`layer_projections`). Rows of tokens left out of the cloud are left out.
    """
    session, _ = _session_of(source)
    states = session.hidden_states
    if states is None:
        raise TokendimError("Nothing to export yet: run the session first.")
    entries: list[tuple[int, str, np.ndarray]] = []
    if all_layers:
        for layer, entry in enumerate(layer_projections(session)):
            if entry is not None:
                entries.append((layer, entry[0], entry[1]))
    seen = {(layer, kind) for layer, kind, _ in entries}
    cached = session.results.projections(states, drop_first=bool(session.drop_first))
    for (kind, layer), value in cached.items():
        if (layer, kind) not in seen:
            entries.append((int(layer), str(kind), np.asarray(value)))
            seen.add((layer, kind))
    entries.sort(key=lambda e: (e[1], e[0]))
    frames = []
    for layer, kind, xy in entries:
        rows = np.flatnonzero(np.isfinite(xy).all(axis=1))
        frames.append(
            pd.DataFrame(
                {
                    "row": rows.astype(np.int64),
                    "layer": np.full(rows.size, layer, dtype=np.int64),
                    "kind": kind,
                    "x": xy[rows, 0].astype(np.float32),
                    "y": xy[rows, 1].astype(np.float32),
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                "row": pd.Series(dtype=np.int64),
                "layer": pd.Series(dtype=np.int64),
                "kind": pd.Series(dtype=str),
                "x": pd.Series(dtype=np.float32),
                "y": pd.Series(dtype=np.float32),
            }
        )
    return pd.concat(frames, ignore_index=True)


def _check_format(format: str) -> str:
    fmt = str(format).lower()
    if fmt not in ("parquet", "csv"):
        raise TokendimError(f"Unknown data format {format!r}: choose 'parquet' or 'csv'.")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise TokendimError(_PARQUET_HINT)
    return fmt


def export_data(
    source: Any,
    folder: str | os.PathLike[str],
    *,
    format: str = "parquet",
    all_layers: bool = False,
) -> dict[str, Path]:
    """Write the curves, metrics, local-ID matrix and projections as Parquet or CSV files.

    Parameters
    ----------
    source : Session, Explorer or view
    folder : str or path
        Created if missing; ``curves``, ``metrics``, ``local_ids`` and ``projections``
        files are written into it (existing ones are replaced).
    format : {"parquet", "csv"}, default "parquet"
        Parquet needs pyarrow (``pip install "tokendim-widgets[export]"``).
    all_layers : bool, default False
        Also compute the projections of the layers the session has not projected yet.

    Returns
    -------
    dict
        Table name -> file written.

    Raises
    ------
    TokendimError
        Nothing computed yet, pyarrow missing for Parquet, or the folder not writable.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from tokendim_widgets import HiddenStates, Session
    >>> X = np.random.default_rng(0).normal(size=(2, 200, 6)).astype("float32")
    >>> hs = HiddenStates.from_arrays(X)
    >>> s = Session.from_hidden_states(hs, projection_method="pca", drop_first=False, k=10)
    >>> _ = s.run().wait()
    >>> sorted(export_data(s, tempfile.mkdtemp(), format="csv"))
    ['curves', 'local_ids', 'metrics', 'projections']
    >>> s.close()
    """
    fmt = _check_format(format)
    session, _ = _session_of(source)
    _ready(session)
    tables = {
        "curves": curves_table(session),
        "metrics": metrics_table(session),
        "local_ids": local_id_table(session),
        "projections": projections_table(session, all_layers=all_layers),
    }
    out = Path(folder).expanduser()
    written: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            path = out / f"{name}.{fmt}"
            tmp = out / f".{name}.{fmt}.tmp"
            if fmt == "parquet":
                table.to_parquet(tmp, index=False)
            else:
                table.to_csv(tmp, index=False)
            os.replace(tmp, path)
            written[name] = path
    except OSError as exc:
        raise TokendimError(
            f"Cannot write the data files to {out}: {exc.strerror or exc}. "
            "Choose a writable folder."
        ) from None
    return written
