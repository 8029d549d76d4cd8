"""What a scientist sees, checked in a real JupyterLab 4 in headless Chromium at 1280 x 900.

One notebook (synthetic hidden states, no model) and one page: k commits on Enter and on blur,
the Gaussian control toggle reaches Python, a selected token is visible in the heatmap, the
metrics stay readable at 850 px and narrower, four curves' peak labels never overlap, and after
an error the old views are greyed with a note until new results arrive. Screenshots land in
test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from browser_helpers import (
    SYNTHETIC_EXPLORER,
    run_all,
    run_cell,
    wait_output,
    watch_requests,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXPLORER = ".tdw-root[data-view='explorer']"


def _later(index: int, code: str) -> str:
    """A cell that does nothing when "Run All Cells" first runs it, and ``code`` when re-run."""
    body = "\n".join("    " + line for line in code.splitlines())
    return (
        "_runs = globals().setdefault('_runs', {})\n"
        f"_runs[{index}] = _runs.get({index}, 0) + 1\n"
        f"if _runs[{index}] > 1:\n{body}"
    )


CELLS = [
    SYNTHETIC_EXPLORER,
    "ex.wait(300)\nprint(f'READY k={session.k} status={session.status}')",
    "print(f'STATE k={session.k} controls={list(session.controls)}')",
    _later(3, "ex.selected_tokens = [137]\nprint('SELECTED', len(ex.selected_tokens))"),
    _later(
        4,
        "base = dict(ex.curves[0])\n"
        "names = [('twonn', 'curve'), ('mle', 'curve'), ('gride', 'curve'),\n"
        "         ('twonn · gaussian control', 'control')]\n"
        "ex.curves = [dict(base, label=name, kind=kind) for name, kind in names]\n"
        "print('FOUR', len(ex.curves))",
    ),
    _later(5, "session.k = 100000\nprint('BROKEN')"),
    _later(6, "session.k = 10\nex.wait(300)\nprint(f'FIXED {session.status}')"),
]


def _view(page: Any, name: str) -> Any:
    return page.locator(f"{EXPLORER} .tdw-view[data-view='{name}']")


def _orange_pixels(png: bytes) -> int:
    """Pixels near the light theme's selection colour (#e8590c): absent from viridis."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(
        count
        for count, (r, g, b) in image.getcolors(maxcolors=1 << 20) or []
        if abs(r - 232) + abs(g - 89) + abs(b - 12) < 60
    )


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def _set_width(page: Any, width: str) -> None:
    page.evaluate(
        "(w) => { document.querySelector(\".tdw-root[data-view='explorer']\").style.width = w; }",
        width,
    )


def _essential_cells_fit(page: Any) -> list[str]:
    """Text of every essential metric cell, after checking each lies inside the metrics view."""
    return page.evaluate(
        f"""() => {{
            const view = document.querySelector("{EXPLORER} .tdw-view[data-view='metrics']");
            const box = view.getBoundingClientRect();
            const cells = view.dataset.layout === "cards"
                ? view.querySelectorAll(".tdw-card dd")
                : view.querySelectorAll("table.tdw-metrics-essential td");
            const out = [];
            for (const cell of cells) {{
                const r = cell.getBoundingClientRect();
                if (r.width === 0 || r.left < box.left - 1 || r.right > box.right + 1) {{
                    throw new Error("clipped: " + cell.textContent + " " + r.left + ".." + r.right
                        + " outside " + box.left + ".." + box.right);
                }}
                const wrap = cell.closest(".tdw-table-wrap");
                if (wrap && wrap.scrollWidth > wrap.clientWidth + 1) throw new Error("scrolls");
                out.push(cell.textContent);
            }}
            return out;
        }}"""
    )


def test_views_a_scientist_needs(jupyter, browser, artifacts):
    write_notebook(jupyter["root"] / "views.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = watch_requests(page)
    page.goto(f"{jupyter['url']}/lab/tree/views.ipynb?reset")
    run_all(page)
    try:
        wait_output(page, r"READY k=10 status=done", timeout=300)
    except Exception:
        page.screenshot(path=str(artifacts / "views-not-ready.png"), full_page=True)
        raise
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='heatmap'][data-tokens='360']")

    # k commits on Enter (and JupyterLab does not take the Enter for itself).
    k = page.locator(f"{EXPLORER} input[aria-label='k']")
    k.scroll_into_view_if_needed()
    k.click()
    k.fill("17")
    k.press("Enter")
    page.wait_for_timeout(300)
    assert page.locator(".jp-Notebook.jp-mod-editMode").count() == 0
    assert k.input_value() == "17"
    run_cell(page, 2)
    wait_output(page, r"STATE k=17 controls=\[\]")
    run_cell(page, 1)
    wait_output(page, r"READY k=17 status=done", timeout=300)

    # A typed value is kept when focus moves on (blur commits it), and the Gaussian control
    # toggle reaches Python in the same gesture.
    k.click()
    k.fill("12")
    gaussian = page.locator(f"{EXPLORER} label.tdw-check", has_text="Gaussian control")
    gaussian.click()
    page.wait_for_timeout(300)
    assert k.input_value() == "12"
    run_cell(page, 2)
    wait_output(page, r"STATE k=12 controls=\['gaussian'\]")
    run_cell(page, 1)
    wait_output(page, r"READY k=12 status=done", timeout=300)
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='curve'][data-curves='2']")
    assert (
        page.locator(f"{EXPLORER} .tdw-c-lines path[data-kind='control']").get_attribute(
            "stroke-dasharray"
        )
        == "6 4"
    )

    # One selected token is visible in the heatmap, at the zoom that fits every token.
    heatmap = _view(page, "heatmap")
    heatmap.scroll_into_view_if_needed()
    assert heatmap.get_attribute("data-selected") == "0"
    before = _orange_pixels(heatmap.screenshot(path=str(artifacts / "views-heatmap-before.png")))
    run_cell(page, 3)
    wait_output(page, r"SELECTED 1")
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='heatmap'][data-selected='1']")
    page.wait_for_timeout(300)
    heatmap.scroll_into_view_if_needed()
    shot = heatmap.screenshot(path=str(artifacts / "views-heatmap-one-selected.png"))
    assert _orange_pixels(shot) - before > 300, (before, _orange_pixels(shot))
    assert _view(page, "scatter").get_attribute("data-selected") == "1"

    # The essential metrics with intervals are readable at 850 px, and as cards when narrower.
    for width, layout in ((850, "table"), (480, "cards")):
        _set_width(page, f"{width}px")
        page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='metrics'][data-layout='{layout}']")
        page.wait_for_timeout(300)
        texts = _essential_cells_fit(page)
        assert any("[" in t and "]" in t for t in texts), texts
        assert any(t in ("expansion-contraction", "rising", "falling", "flat") for t in texts)
        metrics = _view(page, "metrics")
        metrics.scroll_into_view_if_needed()
        metrics.screenshot(path=str(artifacts / f"views-metrics-{width}px.png"))
    _set_width(page, "")

    # Four curves peaking at the same layer: one marker each, labels that never overlap.
    run_cell(page, 4)
    wait_output(page, r"FOUR 4")
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='curve'][data-curves='4']")
    page.wait_for_timeout(300)
    curve = _view(page, "curve")
    curve.scroll_into_view_if_needed()
    curve.screenshot(path=str(artifacts / "views-curve-four-curves.png"))
    boxes = page.evaluate(
        f"""() => Array.from(document.querySelectorAll("{EXPLORER} .tdw-c-peak-labels text"))
            .map((t) => {{ const r = t.getBoundingClientRect();
                          return {{x: r.left, y: r.top, width: r.width, height: r.height}}; }})"""
    )
    assert len(boxes) >= 3, boxes
    assert page.locator(f"{EXPLORER} .tdw-c-peaks g").count() == 4
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    # The legend names every peak; a click hides the control curve.
    legend = page.locator(f"{EXPLORER} .tdw-c-legend-item")
    assert all("peak" in (t or "") for t in legend.all_text_contents())
    legend.nth(3).click()
    hidden = page.locator(f"{EXPLORER} .tdw-c-lines path").nth(3).get_attribute("visibility")
    assert hidden == "hidden"

    # After an error the old views stay, greyed, with a note, until new results arrive.
    run_cell(page, 5)
    wait_output(page, r"BROKEN")
    page.wait_for_selector(f"{EXPLORER} .tdw-controls[data-status='error']", timeout=120_000)
    for name in ("curve", "metrics", "heatmap", "scatter"):
        page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='{name}'][data-stale='1']")
    note = _view(page, "curve").locator(".tdw-stale-note").text_content() or ""
    assert "before the error" in note, note
    page.locator(EXPLORER).scroll_into_view_if_needed()
    page.locator(EXPLORER).screenshot(path=str(artifacts / "views-stale-after-error.png"))
    run_cell(page, 6)
    wait_output(page, r"FIXED done", timeout=300)
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='curve'][data-stale='0']")
    page.wait_for_selector(f"{EXPLORER} .tdw-view[data-view='heatmap'][data-stale='0']")
    assert problems == [], problems
