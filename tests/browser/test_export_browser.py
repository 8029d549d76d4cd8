"""The standalone HTML export in headless Chromium, opened from disk with the network disabled.

No Jupyter here: the page must render and stay interactive on its own. Every request that is
not for the file itself is aborted and recorded; the test ends by asserting there was none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_helpers import box_select_scatter, non_blank
from planted import planted_layers

from tokendim_widgets import HiddenStates, Session
from tokendim_widgets.export import export_html

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# As in conftest.py here (not imported: two conftest modules share that name).
CHROMIUM = os.environ.get("TOKENDIM_CHROMIUM", "/usr/bin/chromium")

XSS = '<img src=x onerror="window.__tdw_xss = 1">'
ROOT = "document.querySelector('.tdw-root[data-view=\"explorer\"]')"


def _states() -> HiddenStates:
    base = planted_layers((2, 5, 8, 3), n_prompts=12, tokens_per_prompt=40, width=24)
    tokens = base.tokens.copy()
    texts = tokens["token"].tolist()
    texts[1], texts[2] = XSS, "</script><script>window.__tdw_xss = 2</script>"
    tokens["token"] = texts
    return HiddenStates.from_arrays(
        [base.layer(i) for i in range(base.n_layers)], tokens, model_id="planted"
    )


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    session = Session.from_hidden_states(_states(), projection_method="pca", k=10, layer=1)
    try:
        session.run().wait(300)
        return export_html(session, tmp_path_factory.mktemp("export") / "report.html")
    finally:
        session.close()


def _offline_page(browser: Any) -> tuple[Any, Any, list[str], list[str]]:
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1100})
    requests: list[str] = []
    problems: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on(
        "request",
        lambda r: (
            requests.append(r.url) if not r.url.startswith(("file://", "data:", "blob:")) else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # CSP violations and failed loads are reported as console errors.
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return context, page, requests, problems


def test_export_renders_offline_and_stays_interactive(browser, page_file, artifacts):
    context, page, requests, problems = _offline_page(browser)
    try:
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-tdw-ready='1']", timeout=30_000)
        page.wait_for_selector(".tdw-view[data-view='heatmap'][data-tokens]")
        page.wait_for_timeout(400)
        page.screenshot(path=str(artifacts / "export-page.png"), full_page=True)

        views = {}
        for name in ("curve", "scatter", "heatmap", "metrics", "controls"):
            views[name] = page.locator(
                f".tdw-root[data-view='explorer'] .tdw-view[data-view='{name}']"
            )
            views[name].screenshot(path=str(artifacts / f"export-view-{name}.png"))
        assert int(views["scatter"].get_attribute("data-points")) == 12 * 40
        assert int(views["heatmap"].get_attribute("data-tokens")) == 12 * 40
        assert int(views["metrics"].get_attribute("data-rows")) == 1
        assert page.locator(".tdw-view[data-view='curve'] svg path").count() > 0
        for name in ("curve", "scatter", "heatmap"):
            assert non_blank(views[name].screenshot()), name

        # What needs Python is switched off, and the page says so.
        assert views["controls"].get_attribute("data-static") == "1"
        assert page.locator(".tdw-controls button:visible").count() == 0
        assert "Static export" in (page.locator(".tdw-static-note").text_content() or "")

        # A click on a layer in the curve moves the heatmap and the scatter to that layer.
        assert views["heatmap"].get_attribute("data-layer") == "1"
        before = views["scatter"].screenshot()
        target = 3
        point = page.evaluate(
            f"""(target) => {{
                const curve = {ROOT}.__tdw.view.curve;
                const rect = curve.svgEl.getBoundingClientRect();
                const plot = curve.layout.plot;
                const y = rect.top + (plot.y0 + plot.y1) / 2;
                return {{x: rect.left + curve.layout.x(target), y}};
            }}""",
            target,
        )
        page.mouse.click(point["x"], point["y"])
        page.wait_for_selector(f".tdw-view[data-view='heatmap'][data-layer='{target}']")
        assert page.evaluate("() => window.tdwStatic.model.get('projection_layer')") == target
        page.wait_for_timeout(700)  # the 300 ms transition to the new layout
        after = views["scatter"].screenshot()
        assert after != before
        views["scatter"].screenshot(path=str(artifacts / f"export-scatter-layer{target}.png"))

        # The slider scrubs layers too (keyboard on the focused range input).
        slider = page.locator(".tdw-scatter input[type=range]")
        slider.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_selector(f".tdw-view[data-view='heatmap'][data-layer='{target - 1}']")
        assert page.evaluate("() => window.tdwStatic.model.get('projection_layer')") == target - 1

        # A box selection in the scatter selects tokens there and in the heatmap.
        box_select_scatter(page, ROOT)
        selected = int(views["scatter"].get_attribute("data-selected"))
        assert selected > 0
        assert int(views["heatmap"].get_attribute("data-selected")) == selected
        page.screenshot(path=str(artifacts / "export-page-selection.png"), full_page=True)

        # Token text is text: the hostile tokens never ran or became elements.
        assert page.evaluate("() => window.__tdw_xss === undefined")
        assert page.locator("img").count() == 0
        tokens = page.evaluate("() => window.tdwStatic.rendered.context.tokens.get().text(1)")
        assert tokens == XSS

        # The charts' own PNG / SVG buttons still download images (allowed by the page's CSP).
        for view, fmt, magic in (("curve", "SVG", b"<?xml"), ("scatter", "PNG", b"\x89PNG")):
            with page.expect_download(timeout=15_000) as download:
                page.locator(f".tdw-view[data-view='{view}'] button", has_text=fmt).first.click()
            assert Path(download.value.path()).read_bytes().startswith(magic), (view, fmt)

        assert requests == [], requests
        assert problems == [], problems
    finally:
        context.close()


def test_export_follows_a_dark_colour_scheme(browser, page_file, artifacts):
    context, page, requests, problems = _offline_page(browser)
    try:
        page.emulate_media(color_scheme="dark")
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-tdw-ready='1']", timeout=30_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "export-page-dark.png"), full_page=True)
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
        assert max(channels) < 60, background
        assert page.evaluate(f"() => {ROOT}.classList.contains('tdw-dark')")
        assert requests == [] and problems == []
    finally:
        context.close()


def test_projection_blocks_cover_every_layer(page_file):
    """The page itself holds what the browser test relies on (a cheap check, no browser)."""
    import base64
    import json

    html = page_file.read_text(encoding="utf-8")
    start = html.index('id="tdw-data">') + len('id="tdw-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    blocks = np.frombuffer(base64.b64decode(data["projections"]["data"]), dtype="<f4")
    assert blocks.size == 4 * 12 * 40 * 2
    assert data["projections"]["kinds"] == ["pca"] * 4
