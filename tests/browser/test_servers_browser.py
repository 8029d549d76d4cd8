"""The Explorer in JupyterLab 4, Notebook 7 and Voila, each a real server driven in Chromium.

Each test renders the Explorer on synthetic hidden states, clicks a layer in the curve and waits
for Python's answer (a Label the kernel rewrites on every layer change, so no cell is re-run,
which Voila could not do), and checks that no request of the page failed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import (
    SYNTHETIC_EXPLORER,
    click_curve_layer,
    non_blank,
    run_all,
    watch_requests,
    write_notebook,
)
from conftest import CHROMIUM, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = "document.querySelector('.tdw-root[data-view=\"explorer\"]')"
EXPLORER = ".tdw-root[data-view='explorer']"
# Problems of the host page itself, seen without our widget too, so not counted against it:
HOST_PROBLEMS = {
    # Notebook 7.6's own bundle throws this on opening any notebook (checked with a notebook of
    # one print cell and no widget).
    "notebook": [
        r"^page error: Cannot read properties of undefined \(reading 'schema'\).*notebook_core"
    ],
    # Voila's page template links Font Awesome from a CDN; there is no network here.
    "voila": [r"^failed https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free"],
}
# "?reset": a fresh JupyterLab workspace, not the one an earlier test left (it would reopen a
# notebook of another folder: a 404 that is not the widget's).
PATHS = {"lab": "/lab/tree/views.ipynb?reset", "notebook": "/notebooks/views.ipynb", "voila": "/"}


def _run_notebook_7(page: Any) -> None:
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


@pytest.mark.parametrize("kind", ["lab", "notebook", "voila"])
def test_explorer_renders_and_links_a_layer_to_python(kind, browser, tmp_path, artifacts):
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    if kind == "voila":
        pytest.importorskip("voila")
    if kind == "notebook":
        pytest.importorskip("notebook")
    write_notebook(tmp_path / "views.ipynb", [SYNTHETIC_EXPLORER])
    with serve(kind, tmp_path, "views.ipynb") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch_requests(page)
        try:
            page.goto(url + PATHS[kind], timeout=180_000)
            if kind == "lab":
                run_all(page)
            elif kind == "notebook":
                _run_notebook_7(page)
            try:
                page.wait_for_selector(
                    f"{EXPLORER} .tdw-view[data-view='heatmap'][data-tokens='360']",
                    timeout=180_000,
                )
            except Exception:
                page.screenshot(path=str(artifacts / f"server-{kind}-not-rendered.png"))
                raise
            page.wait_for_selector(".tdw-view[data-view='curve'][data-curves='1']")
            explorer = page.locator(".tdw-root[data-view='explorer']")
            explorer.scroll_into_view_if_needed()
            page.wait_for_timeout(400)
            explorer.screenshot(path=str(artifacts / f"server-{kind}-explorer.png"))
            for name in ("curve", "scatter", "heatmap"):
                view = page.locator(f"{EXPLORER} .tdw-view[data-view='{name}']")
                assert non_blank(view.screenshot()), (kind, name)

            # A click on a layer of the curve reaches Python, which answers through the Label.
            current = int(
                page.locator(".tdw-view[data-view='heatmap']").get_attribute("data-layer") or 0
            )
            target = 3 if current != 3 else 4
            click_curve_layer(page, ROOT, target)
            try:
                page.get_by_text(f"LAYER {target}", exact=True).wait_for(timeout=30_000)
            except Exception as exc:
                labels = page.locator(".widget-label").all_text_contents()
                layer = page.locator(".tdw-view[data-view='heatmap']").get_attribute("data-layer")
                page.screenshot(path=str(artifacts / f"server-{kind}-failed.png"))
                raise AssertionError(f"labels={labels} heatmap layer={layer}") from exc
            page.wait_for_selector(f".tdw-view[data-view='heatmap'][data-layer='{target}']")
            page.wait_for_timeout(300)
            host = [re.compile(p, re.S) for p in HOST_PROBLEMS.get(kind, [])]
            ours = [p for p in problems if not any(h.search(p) for h in host)]
            assert ours == [], ours
        finally:
            page.close()


def test_voila_demo_shows_progress_while_it_runs(browser, tmp_path, artifacts, monkeypatch):
    """The shipped Voila notebook: the page opens before the result, its progress visible."""
    import shutil
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    pytest.importorskip("voila")
    demo = Path(__file__).resolve().parents[2] / "notebooks" / "voila_demo.ipynb"
    shutil.copy(demo, tmp_path / "voila_demo.ipynb")
    # The small offline encoder keeps the test short; the notebook's default is SmolLM2.
    monkeypatch.setenv("TOKENDIM_DEMO_MODEL", "minilm-l6")
    monkeypatch.setenv("TOKENDIM_DEMO_PROMPTS", "narrative")
    with serve("voila", tmp_path, "voila_demo.ipynb") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch_requests(page)
        try:
            page.goto(url + "/", timeout=180_000)
            # The dashboard is on the page while the run goes on, with its progress showing.
            page.wait_for_selector(f"{EXPLORER} .tdw-progress-active", timeout=180_000)
            assert page.locator(f"{EXPLORER} .tdw-view[data-view='curve']").is_visible()
            page.locator(EXPLORER).screenshot(path=str(artifacts / "voila-demo-running.png"))
            page.wait_for_selector(
                f"{EXPLORER} .tdw-view[data-view='heatmap'][data-tokens]", timeout=300_000
            )
            page.wait_for_function(
                "() => Number(document.querySelector(\".tdw-view[data-view='curve']\")"
                "?.getAttribute('data-curves') || 0) >= 1",
                timeout=60_000,
            )
            page.wait_for_function(
                "() => !document.querySelector('.tdw-progress-active')", timeout=300_000
            )
            page.locator(EXPLORER).screenshot(path=str(artifacts / "voila-demo-done.png"))
            host = [re.compile(p, re.S) for p in HOST_PROBLEMS["voila"]]
            ours = [p for p in problems if not any(h.search(p) for h in host)]
            assert ours == [], ours
        finally:
            page.close()
