"""The Explorer in a real JupyterLab, driven in headless Chromium.

A notebook builds an Explorer on a tiny random Llama saved to disk (the whole pipeline runs:
load, extract, kNN, estimators, projections), then the test clicks and drags in the page and
reads the Python side back by re-running a cell.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from browser_helpers import (
    box_select_scatter,
    non_blank,
    run_all,
    run_cell,
    wait_output,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<img src=x onerror="window.__tdw_xss = 1">'
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "Intrinsic dimension measures how many directions a cloud uses.",
    "She opened the door, looked outside and smiled at the rain.",
    "SELECT name FROM users WHERE age > 30;",
    "def add(a, b):\n    return a + b",
]


def _prompts() -> list[str]:
    prompts = [f"{XSS} The quick brown fox jumps over the lazy dog."]
    for i in range(24):
        a, b = SENTENCES[i % 6], SENTENCES[(i * 5 + 1) % 6]
        prompts.append(f"{a} {b}")
    return prompts


def _js(page: Any, expression: str, arg: Any = None) -> Any:
    return page.evaluate(expression, arg)


ROOT = "document.querySelector('.tdw-root[data-view=\"explorer\"]')"


def test_explorer_views_link_through_python(jupyter, browser, tiny_dir, artifacts):
    folder = tiny_dir("llama")
    cells = [
        "from tokendim_widgets import Explorer\n"
        f"ex = Explorer(model={folder!r}, prompts={_prompts()!r}, projection_method='pca', k=5)\n"
        "ex",
        "ex.wait(300)\nprint('READY', ex.session.status, ex.session.hidden_states.n_layers)",
        "print(f'STATE layer={int(ex.layer)} selected={len(ex.selected_tokens)}')",
    ]
    write_notebook(jupyter["root"] / "e2e.ipynb", cells)

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith((jupyter["url"], "data:", "blob:", "ws://127.0.0.1"))
            else None
        ),
    )
    page.goto(f"{jupyter['url']}/lab/tree/e2e.ipynb")
    run_all(page)
    wait_output(page, r"READY done 4", timeout=300)
    page.wait_for_selector(".tdw-view[data-view='heatmap'][data-tokens]")

    # Every view rendered something.
    explorer = page.locator(".tdw-root[data-view='explorer']")
    explorer.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    explorer.screenshot(path=str(artifacts / "explorer.png"))
    views = {}
    for name in ("curve", "scatter", "heatmap", "metrics", "controls"):
        view = page.locator(f".tdw-root[data-view='explorer'] .tdw-view[data-view='{name}']")
        view.screenshot(path=str(artifacts / f"view-{name}.png"))
        views[name] = view
    assert views["curve"].get_attribute("data-curves") == "1"
    assert page.locator(".tdw-view[data-view='curve'] svg path").count() > 0
    assert int(views["scatter"].get_attribute("data-points")) > 100
    assert int(views["heatmap"].get_attribute("data-tokens")) > 100
    assert int(views["metrics"].get_attribute("data-rows")) == 1
    assert non_blank(views["scatter"].screenshot())
    assert non_blank(views["heatmap"].screenshot())
    assert non_blank(views["curve"].screenshot())

    # Clicking a layer in the curve reaches Python and changes the scatter.
    current = int(views["heatmap"].get_attribute("data-layer"))
    target = 0 if current != 0 else 3
    before = views["scatter"].screenshot()
    point = _js(
        page,
        f"""(target) => {{
            const curve = {ROOT}.__tdw.view.curve;
            const rect = curve.svgEl.getBoundingClientRect();
            const plot = curve.layout.plot;
            return {{x: rect.left + curve.layout.x(target), y: rect.top + (plot.y0 + plot.y1) / 2}};
        }}""",
        target,
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(f".tdw-view[data-view='heatmap'][data-layer='{target}']")
    run_cell(page, 2)
    wait_output(page, rf"STATE layer={target} selected=0")
    page.wait_for_timeout(800)  # the new projection arrives and animates (300 ms)
    after = views["scatter"].screenshot()
    assert after != before
    views["scatter"].screenshot(path=str(artifacts / f"view-scatter-layer{target}.png"))

    # A box selection in the scatter reaches Python and highlights rows in the heatmap.
    box_select_scatter(page, ROOT)
    selected = int(views["scatter"].get_attribute("data-selected"))
    assert selected > 0
    assert int(views["heatmap"].get_attribute("data-selected")) == selected
    run_cell(page, 2)
    wait_output(page, rf"STATE layer={target} selected={selected}")
    explorer.screenshot(path=str(artifacts / "explorer-selection.png"))

    # Token text is untrusted: the prompt with an <img onerror> shows as text, never runs.
    first_row = _js(
        page,
        f"""() => {{
            const heatmap = {ROOT}.__tdw.view.heatmap;
            const r = heatmap.wrap.getBoundingClientRect();
            const box = heatmap.plotBox();
            const y = r.top + box.y0 + heatmap.rowHeight() / 2;
            return {{x: r.left + (box.x0 + box.x1) / 2, y}};
        }}""",
    )
    page.mouse.move(first_row["x"], first_row["y"] + 10)
    page.mouse.move(first_row["x"], first_row["y"], steps=3)
    tooltip = page.locator(".tdw-view[data-view='heatmap'] .tdw-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.text_content() or ""
    views["heatmap"].screenshot(path=str(artifacts / "view-heatmap-tooltip.png"))
    assert "<img" in text, text  # the markup itself, shown as characters
    assert _js(page, "() => window.__tdw_xss === undefined")
    assert _js(page, "() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert outside == []


def test_blank_screenshots_are_told_apart_from_charts():
    from PIL import Image

    def png(image: Any) -> bytes:
        data = io.BytesIO()
        image.save(data, "PNG")
        return data.getvalue()

    assert not non_blank(png(Image.new("RGB", (40, 40), "white")))
    chart = Image.new("RGB", (40, 40), "white")
    for i in range(40):
        chart.putpixel((i, i), (i * 6, 0, 255 - i * 6))
    assert non_blank(png(chart))
