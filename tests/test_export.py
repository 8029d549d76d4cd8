"""Exports: the standalone HTML page, the data files, per-layer projections and image replies."""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frontend import send_from_browser
from planted import planted_layers

from tokendim_widgets import HiddenStates, Session, TokendimError
from tokendim_widgets import projection as proj
from tokendim_widgets.export import (
    EXPORT_FORMAT,
    export_data,
    export_html,
    layer_projections,
    write_image,
)

# Token texts that must survive every format untouched and never become markup.
HOSTILE = [
    "</script><script>window.__pwned = 1</script>",
    "<!-- <script>",
    '<img src=x onerror="alert(1)">',
    "NA",
    "",
    'a,b "quoted"\nnext line',
    " https://example.com/x.js",
    "漢字 🙂",
]
# The only URLs allowed in the page's scripts: the SVG and XLink XML namespace names, which the
# DOM needs as identifiers (createElementNS, serialised SVG files) and never requests.
XML_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def _states(n_prompts: int = 8, tokens_per_prompt: int = 30) -> HiddenStates:
    base = planted_layers((2, 4, 3), n_prompts=n_prompts, tokens_per_prompt=tokens_per_prompt)
    tokens = base.tokens.copy()
    texts = tokens["token"].tolist()
    for i, text in enumerate(HOSTILE):
        texts[1 + i] = text  # prompt 0, after position 0
    tokens["token"] = texts
    layers = [base.layer(i) for i in range(base.n_layers)]
    return HiddenStates.from_arrays(
        layers, tokens, model_id="planted <b>model</b>", prompt_set={"name": "hostile", "hash": ""}
    )


def _settle(session: Session, timeout: float = 60.0) -> None:
    """Wait until the background fill has projected every layer (it is fast on tiny data)."""
    states = session.hidden_states
    deadline = time.monotonic() + timeout
    keys = {("pca", layer) for layer in range(states.n_layers)}
    while not keys <= set(session.results.projections(states, drop_first=session.drop_first)):
        assert time.monotonic() < deadline, "the session never projected every layer"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def session():
    s = Session.from_hidden_states(_states(), projection_method="pca", k=8, overlay=["mle"])
    s.run().wait(120)
    _settle(s)
    yield s
    s.close()


class _Page(HTMLParser):
    """Every tag with its attributes, and the code of each script element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self._chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._chunks = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._chunks.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._chunks)))
            self._script = None


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _data(text: str) -> dict[str, Any]:
    page = _parse(text)
    (code,) = [code for attrs, code in page.scripts if attrs.get("id") == "tdw-data"]
    return json.loads(code)


def _f32(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def _i32(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<i4")


# ---- the standalone page -------------------------------------------------------------------
def test_page_loads_nothing_from_the_network(session, tmp_path):
    text = export_html(session, tmp_path / "report.html").read_text(encoding="utf-8")
    page = _parse(text)
    # Exactly two scripts, both inline: the data and the runtime module.
    assert [(a.get("type"), a.get("src")) for a, _ in page.scripts] == [
        ("application/json", None),
        ("module", None),
    ]
    assert not [t for t, _ in page.tags if t in ("link", "iframe", "object", "embed", "img")]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "data", "poster", "srcset"):
                pytest.fail(f"<{tag} {name}={value!r}> would load something")
    for attrs, code in page.scripts:
        urls = set(re.findall(r"https?://[^\s\"'`)<>]*", code))
        assert urls <= XML_NAMESPACES, f"{attrs}: {sorted(urls - XML_NAMESPACES)}"
        assert not re.search(r"\bfetch\s*\(|XMLHttpRequest|\bimport\s*\(|new\s+WebSocket", code)
    # A policy that forbids any request the page could still attempt.
    (csp,) = [
        a["content"] for _, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp and "connect-src" not in csp


def test_untrusted_text_stays_inside_the_data(session, tmp_path):
    text = export_html(session, tmp_path / "report.html", title="<i>t</i> & co").read_text()
    # The only script ends are the two real ones; token text travels as base64.
    assert text.lower().count("</script") == 2
    assert "__pwned" not in text and "alert(1)" not in text
    assert "<title>&lt;i&gt;t&lt;/i&gt; &amp; co</title>" in text
    assert "planted &lt;b&gt;model&lt;/b&gt;" in text  # the model name in the header, escaped
    data = _data(text)
    offsets = _i32(data["buffers"]["token_offsets"])
    blob = base64.b64decode(data["buffers"]["token_text"])
    tokens = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    assert tokens == session.hidden_states.tokens["token"].tolist()


def test_page_data_matches_the_session(session, tmp_path):
    data = _data(export_html(session, tmp_path / "report.html").read_text())
    states = session.hidden_states
    assert data["format"] == EXPORT_FORMAT
    state = data["state"]
    assert state["_view"] == "explorer"
    assert (state["n_tokens"], state["n_layers"]) == (states.n_tokens, states.n_layers)
    assert state["layer"] == session.layer
    assert [c["label"] for c in state["curves"]] == list(session.curves)
    assert state["status"] == "done" and state["busy"] is False
    local = _f32(data["buffers"]["local_id"]).reshape(states.n_tokens, states.n_layers)
    np.testing.assert_array_equal(local, session.local_ids.to_numpy(dtype=np.float32))
    assert _i32(data["buffers"]["token_prompt"]).tolist() == states.tokens["prompt"].tolist()
    # Every layer's projection is in the page: the layer can change without Python.
    projections = data["projections"]
    assert projections["kinds"] == ["pca"] * states.n_layers
    blocks = _f32(projections["data"]).reshape(states.n_layers, states.n_tokens, 2)
    for layer, (kind, xy) in enumerate(layer_projections(session)):
        assert kind == "pca"
        np.testing.assert_array_equal(blocks[layer], xy)
    first = states.tokens["position"].to_numpy() == 0
    assert np.isnan(blocks[:, first]).all() and np.isfinite(blocks[:, ~first]).all()


def test_a_view_exports_itself_and_keeps_its_settings(session, tmp_path):
    from tokendim_widgets.widgets import IDCurveView

    view = IDCurveView(session, theme="dark")
    try:
        session.selected_tokens = np.array([5, 3, 3, 9])
        data = _data(view.to_html(tmp_path / "curve.html").read_text())
        assert data["state"]["_view"] == "curve" and data["state"]["theme"] == "dark"
        assert _i32(data["buffers"]["selected_tokens"]).tolist() == [3, 5, 9]
        assert 'class="tdw-page-dark"' in (tmp_path / "curve.html").read_text()
        data = _data(view.to_html(tmp_path / "all.html", view="explorer").read_text())
        assert data["state"]["_view"] == "explorer"
        with pytest.raises(TokendimError, match="Unknown view"):
            view.to_html(tmp_path / "x.html", view="nonsense")
    finally:
        session.selected_tokens = np.empty(0, dtype=np.int64)
        view.close()


def test_missing_layer_projections_are_computed_aligned_and_cached(tmp_path):
    states = _states()
    s = Session.from_hidden_states(states, projection_method="pca", k=8, layer=1)
    try:
        # Only layer 1 projected (the session never ran): the export must do the rest itself.
        s.set_trait("hidden_states", states)
        s.results.projection(states, 1, "pca", drop_first=True)
        cached = layer_projections(s, compute_missing=False)
        assert cached[0] is None and cached[2] is None and cached[1] is not None
        calls: list[tuple[int, int]] = []
        result = layer_projections(s, progress=lambda done, total: calls.append((done, total)))
        assert calls == [(1, 2), (2, 2)]
        rows = states.tokens["position"].to_numpy() != 0
        for layer in (0, 2):
            kind, xy = result[layer]
            assert kind == "pca"
            assert s.results.cached_projection(states, layer, "pca", drop_first=True) is xy
            # The layout is the layer's PCA moved by a similarity (aligned to layer 1's picture).
            own = proj.pca_2d(states.layer(layer)[rows])
            np.testing.assert_allclose(proj.align_to(xy[rows], own), own, atol=1e-3)
            moved = proj.align_to(own, result[1][1][rows])
            np.testing.assert_allclose(xy[rows], moved, atol=1e-4)
    finally:
        s.close()


def test_projection_kind_follows_the_session_and_umap_availability(monkeypatch):
    states = _states()
    s = Session.from_hidden_states(states, projection_method="umap")
    try:
        # Only a PCA layout of layer 1 is cached: the cached layouts of the export's default
        # kind show which kind that is (a UMAP export finds none).
        s.set_trait("hidden_states", states)
        s.results.projection(states, 1, "pca", drop_first=True)

        def default_kind() -> str | None:
            found = layer_projections(s, compute_missing=False)[1]
            return None if found is None else found[0]

        monkeypatch.setattr(proj, "umap_available", lambda: False)
        assert default_kind() == "pca"
        monkeypatch.setattr(proj, "umap_available", lambda: True)
        assert default_kind() is None  # UMAP, none cached
        s.projection_method = "pca"
        assert default_kind() == "pca"
    finally:
        s.close()


@pytest.mark.slow
def test_umap_sessions_export_umap_layouts(tmp_path):
    pytest.importorskip("umap")
    states = planted_layers((2, 3), n_prompts=6, tokens_per_prompt=40, width=8)
    s = Session.from_hidden_states(states, projection_method="umap", k=8)
    try:
        s.run().wait(600)
        s.cancel()
        data = _data(export_html(s, tmp_path / "u.html", progress=False).read_text())
        assert data["projections"]["kinds"] == ["umap", "umap"]
    finally:
        s.close()


def test_page_size_for_7000_tokens_and_31_layers(tmp_path):
    """The size documented in export.py: arrays dominate, ~3.75 MB for 7,000 x 31."""
    from tokendim_widgets.analysis import compare

    n, n_layers = 7000, 31
    rng = np.random.default_rng(0)
    tokens = pd.DataFrame(
        {
            "prompt": np.repeat(np.arange(n // 70), 70),
            "position": np.tile(np.arange(70), n // 70),
            "token_id": rng.integers(0, 50_000, n),
            "token": [f" word{i % 900}" for i in range(n)],
        }
    )
    states = HiddenStates.from_arrays(rng.normal(size=(n_layers, n, 2)).astype(np.float32), tokens)
    s = Session.from_hidden_states(states, projection_method="pca")
    try:
        # Results set directly (the projections are computed: PCA of two columns is quick);
        # the page's size depends only on their shapes.
        curve = pd.DataFrame(
            {
                "layer": range(n_layers),
                "depth": np.linspace(0, 1, n_layers),
                "dimension": rng.uniform(2, 12, n_layers),
                "lower": 1.0,
                "upper": 13.0,
                "estimator": "twonn",
                "n_points": n,
            }
        )
        curve.attrs.update(estimator="twonn", model="synthetic", n_layers=n_layers)
        local = pd.DataFrame(rng.uniform(1, 20, (n, n_layers)).astype(np.float32))
        s.set_trait("hidden_states", states)
        s.set_trait("curve", curve)
        s.set_trait("curves", {"twonn": curve})
        s.set_trait("metrics", compare({"twonn": curve}))
        s.set_trait("local_ids", local)
        s.layer = 10
        size = export_html(s, tmp_path / "big.html", progress=False).stat().st_size
    finally:
        s.close()
    arrays = n * n_layers * (8 + 4)  # float32 x, y and the local ID
    assert arrays * 4 / 3 < size < arrays * 4 / 3 + 400_000
    print(f"standalone page for {n} tokens x {n_layers} layers: {size / 1e6:.2f} MB")


def test_nothing_to_export_before_a_run(tmp_path):
    s = Session.from_hidden_states(_states(), projection_method="pca")
    try:
        with pytest.raises(TokendimError, match="run the analysis first"):
            export_html(s, tmp_path / "r.html")
        with pytest.raises(TokendimError, match="run the analysis first"):
            export_data(s, tmp_path, format="csv")
    finally:
        s.close()
    with pytest.raises(TokendimError, match="give a Session"):
        export_html(object(), tmp_path / "r.html")


def test_unwritable_destinations_raise_our_error(session, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(TokendimError, match="Cannot write"):
        export_html(session, blocker / "report.html")
    with pytest.raises(TokendimError, match="Cannot write the data files"):
        export_data(session, blocker / "data", format="csv")
    assert blocker.read_text() == "not a folder"


# ---- data files ----------------------------------------------------------------------------
def _check_tables(session: Session, tables: dict[str, pd.DataFrame]) -> None:
    states = session.hidden_states
    curves = tables["curves"]
    assert len(curves) == sum(len(c) for c in session.curves.values())
    for label, curve in session.curves.items():
        part = curves[curves["curve"] == label]
        assert part["layer"].tolist() == curve["layer"].tolist()
        np.testing.assert_allclose(part["dimension"], curve["dimension"])
        np.testing.assert_allclose(part["lower"], curve["lower"])
        np.testing.assert_allclose(part["upper"], curve["upper"])
        assert set(part["model"]) == {states.model_id}

    metrics = tables["metrics"].set_index("curve")
    assert metrics.index.tolist() == session.metrics.index.tolist()
    np.testing.assert_allclose(
        metrics["working_dimension"], session.metrics["working_dimension"].astype(float)
    )

    local = tables["local_ids"]
    assert len(local) == states.n_tokens
    assert local["row"].tolist() == list(range(states.n_tokens))
    for column in ("prompt", "position", "token_id", "token"):
        assert local[column].tolist() == states.tokens[column].tolist(), column
    layer_columns = [f"layer_{i}" for i in range(states.n_layers)]
    np.testing.assert_allclose(
        local[layer_columns].to_numpy(dtype=np.float32),
        session.local_ids.to_numpy(dtype=np.float32),
    )

    projections = tables["projections"]
    assert set(projections["kind"]) == {"pca"}
    for layer in range(states.n_layers):
        xy = session.results.cached_projection(states, layer, "pca", drop_first=True)
        rows = np.flatnonzero(np.isfinite(xy).all(axis=1))
        part = projections[projections["layer"] == layer]
        assert part["row"].tolist() == rows.tolist()
        np.testing.assert_array_equal(part[["x", "y"]].to_numpy(dtype=np.float32), xy[rows])


def test_parquet_files_round_trip(session, tmp_path):
    pytest.importorskip("pyarrow")
    files = export_data(session, tmp_path / "data")
    assert {name: path.name for name, path in files.items()} == {
        "curves": "curves.parquet",
        "metrics": "metrics.parquet",
        "local_ids": "local_ids.parquet",
        "projections": "projections.parquet",
    }
    _check_tables(session, {name: pd.read_parquet(path) for name, path in files.items()})
    assert not list((tmp_path / "data").glob(".*.tmp"))


def test_csv_files_round_trip(session, tmp_path):
    files = export_data(session, tmp_path / "data", format="csv")
    layer_columns = [f"layer_{i}" for i in range(session.hidden_states.n_layers)]
    tables = {
        name: pd.read_csv(
            path,
            # Token texts such as "NA" or "" are text, not missing values.
            keep_default_na=False,
            na_values={c: [""] for c in [*layer_columns, "lower", "upper", "dimension"]},
        )
        for name, path in files.items()
    }
    _check_tables(session, tables)


def test_parquet_without_pyarrow_says_how_to_install_it(session, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    with pytest.raises(TokendimError, match=r'pip install "tokendim-widgets\[export\]"'):
        export_data(session, tmp_path, format="parquet")
    with pytest.raises(TokendimError, match="'parquet' or 'csv'"):
        export_data(session, tmp_path, format="xlsx")
    assert not list(tmp_path.iterdir())


def test_explorer_methods_write_the_same_exports(session, tmp_path):
    from tokendim_widgets.widgets import Explorer

    explorer = Explorer(session=session, run=False)
    try:
        page = explorer.to_html(tmp_path / "explorer.html", title="Demo")
        assert "<title>Demo</title>" in page.read_text()
        assert _data(page.read_text())["state"]["_view"] == "explorer"
        assert sorted(p.name for p in explorer.to_csv(tmp_path / "csv").values()) == [
            "curves.csv",
            "local_ids.csv",
            "metrics.csv",
            "projections.csv",
        ]
        pytest.importorskip("pyarrow")
        assert len(explorer.to_parquet(tmp_path / "pq")) == 4
    finally:
        # Not explorer.close(): that would close the shared session of the other tests.
        anywidget_close = super(Explorer, explorer).close
        anywidget_close()


# ---- images --------------------------------------------------------------------------------
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _view_with_outbox(session: Session) -> tuple[Any, list[dict[str, Any]]]:
    from tokendim_widgets.widgets import IDCurveView

    view = IDCurveView(session)
    sent: list[dict[str, Any]] = []
    view.send = lambda content, buffers=None: sent.append(content)
    return view, sent


def _reply(view: Any, request: dict[str, Any], **fields: Any) -> None:
    """What the front end sends back, delivered the way ipywidgets delivers it."""
    content = {
        "type": "export_result",
        "request_id": request["request_id"],
        "view": request["view"],
        "format": request["format"],
        **fields,
    }
    send_from_browser(view, content)


def test_export_image_writes_the_reply(session, tmp_path):
    view, sent = _view_with_outbox(session)
    try:
        svg_done = view.export_image("curve", "svg", tmp_path / "curve.svg", timeout=30)
        png_done = view.export_image("curve", "png", tmp_path / "img" / "curve.png", timeout=30)
        assert [m["type"] for m in sent] == ["export", "export"]
        assert sent[0]["view"] == "curve" and sent[0]["format"] == "svg"
        assert sent[0]["request_id"] != sent[1]["request_id"]
        assert not svg_done.done()
        # Replies may come in any order; each resolves its own request.
        _reply(view, sent[1], data="data:image/png;base64," + base64.b64encode(PNG).decode())
        _reply(view, sent[0], data='<svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>')
        assert svg_done.result(timeout=5) == tmp_path / "curve.svg"
        assert (tmp_path / "curve.svg").read_text().endswith("<text>x</text></svg>")
        assert png_done.result(timeout=5) == tmp_path / "img" / "curve.png"
        assert (tmp_path / "img" / "curve.png").read_bytes() == PNG
        # A second reply (the widget displayed twice) changes nothing.
        _reply(view, sent[0], data="<svg/>")
        assert (tmp_path / "curve.svg").read_text().endswith("<text>x</text></svg>")
    finally:
        view.close()


def test_export_image_reports_a_view_that_cannot_export(session, tmp_path):
    view, sent = _view_with_outbox(session)
    try:
        done = view.export_image("heatmap", "png", tmp_path / "h.png")
        _reply(view, sent[0], data=None, error='view "heatmap" cannot export here')
        with pytest.raises(TokendimError, match="cannot export here"):
            done.result(timeout=5)
        assert not (tmp_path / "h.png").exists()
    finally:
        view.close()


def test_export_image_times_out_when_the_widget_is_not_displayed(session, tmp_path):
    view, sent = _view_with_outbox(session)
    try:
        done = view.export_image("scatter", "png", tmp_path / "s.png", timeout=0.2)
        error = done.exception(timeout=10)
        assert isinstance(error, TokendimError)
        assert "must be displayed" in str(error) and "0.2 s" in str(error)
        _reply(view, sent[0], data="data:image/png;base64," + base64.b64encode(PNG).decode())
        assert not (tmp_path / "s.png").exists()  # too late: nobody is waiting any more
    finally:
        view.close()


def test_export_image_checks_its_arguments(session, tmp_path):
    view, sent = _view_with_outbox(session)
    try:
        with pytest.raises(TokendimError, match="'png' or 'svg'"):
            view.export_image("curve", "jpeg", tmp_path / "c.jpg")
        with pytest.raises(TokendimError, match="Unknown chart"):
            view.export_image("metrics", "png", tmp_path / "m.png")
        with pytest.raises(TokendimError, match=r"timeout \(seconds\) must be a finite number > 0"):
            view.export_image("curve", "png", tmp_path / "c.png", timeout=0)
        assert sent == []
    finally:
        view.close()


def test_write_image_refuses_malformed_replies(tmp_path):
    with pytest.raises(TokendimError, match="not send a PNG"):
        write_image(tmp_path / "a.png", "png", {"data": "<svg/>", "view": "curve"})
    with pytest.raises(TokendimError, match="not valid base64"):
        write_image(tmp_path / "a.png", "png", {"data": "data:image/png;base64,@@@"})
    with pytest.raises(TokendimError, match="no reason given"):
        write_image(tmp_path / "a.png", "png", {"data": None})
    assert not (tmp_path / "a.png").exists()
