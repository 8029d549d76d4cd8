"""The layer detail in a real JupyterLab 4, in headless Chromium.

A notebook runs a session on synthetic hidden states (prompts of planted dimensions, two of
them too short for their own estimate) and shows a LayerDetail with two Labels that Python
rewrites when the window's fit or the session's selection changes: the page sees its gestures
reach Python without re-running a cell. The test types a window, drags its lower edge, clicks
a prompt, and saves light and dark screenshots in test-artifacts/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import non_blank, run_all, wait_output, watch_requests, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """\
import numpy as np, pandas as pd, ipywidgets as W
from IPython.display import display
from tokendim_widgets import HiddenStates, Session
from tokendim_widgets.widgets.layer_detail import LayerDetail
rng = np.random.default_rng(0)
lengths = [40] * 16 + [8, 8]
prompt_dims = [2, 3, 5, 8] * 4 + [3, 3]
width = 24
layers = []
for shift in (0, 2, 4):
    parts = []
    for d in prompt_dims:
        d = min(d + shift, width)
        basis, _ = np.linalg.qr(rng.normal(size=(width, d)))
        parts.append(rng.normal(size=(lengths[len(parts)], d)) @ basis.T)
    layers.append(np.vstack(parts).astype(np.float32))
tokens = pd.DataFrame({
    "prompt": np.repeat(np.arange(len(lengths)), lengths).astype(np.int32),
    "position": np.concatenate([np.arange(n) for n in lengths]).astype(np.int32),
    "token_id": np.zeros(sum(lengths), dtype=np.int32),
    "token": [f"w{i} " for i in range(sum(lengths))],
})
states = HiddenStates.from_arrays(layers, tokens, model_id="planted")
session = Session.from_hidden_states(states, projection_method="pca", k=10, layer=1)
session.run().wait(300)
detail = LayerDetail(session, device="cpu")
fit_label = W.Label("FIT none")
sel_label = W.Label("SELECTED none")
def show_fit(change):
    fit = change["new"]
    if "dimension" in fit:
        lo, hi, d = fit["r_min"], fit["r_max"], fit["dimension"]
        fit_label.value = f"FIT r_min={lo:.6g} r_max={hi:.6g} d={d:.4g}"
def show_selection(change):
    rows = np.asarray(session.selected_tokens)
    prompts = sorted(set(states.tokens["prompt"].to_numpy()[rows].tolist()))
    sel_label.value = f"SELECTED {len(rows)} prompts={prompts}"
detail.observe(show_fit, names="window_fit")
session.observe(show_selection, names="selected_tokens")
display(detail, fit_label, sel_label)
"""

CELLS = [
    SETUP,
    "detail.wait(300)\n"
    "print('READY', detail.layer, len(detail.prompts), dict(detail.panel_status))",
]

ROOT = ".tdw-root[data-view='layer_detail']"


def _label(page: Any, prefix: str) -> str:
    return str(
        page.evaluate(
            """(prefix) => {
                for (const el of document.querySelectorAll('.widget-label')) {
                    const t = el.textContent || '';
                    if (t.startsWith(prefix)) return t;
                }
                return '';
            }""",
            prefix,
        )
    )


def _wait_label(page: Any, pattern: str, timeout: float = 60) -> str:
    return wait_output(page, pattern, timeout=timeout, selector=".widget-label")


def _fit(text: str) -> tuple[float, float, float]:
    match = re.search(r"r_min=(\S+) r_max=(\S+) d=(\S+)", text)
    assert match, text
    return float(match[1]), float(match[2]), float(match[3])


def test_layer_detail_window_and_prompt_click(jupyter, browser, artifacts):
    write_notebook(jupyter["root"] / "detail.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems = watch_requests(page)
    page.goto(f"{jupyter['url']}/lab/tree/detail.ipynb?reset")
    run_all(page)
    try:
        ready = wait_output(page, r"READY 1 16 ", timeout=300)
    except Exception:
        page.screenshot(path=str(artifacts / "layer-detail-not-ready.png"), full_page=True)
        raise
    assert "error" not in ready, ready
    # JupyterLab's news toast would cover the lower right panel in the screenshots.
    no_news = page.locator(".jp-Notification-Toast-Button, .jp-toast-button", has_text="No")
    if no_news.count() > 0:
        no_news.first.click()
    view = page.locator(ROOT)
    page.wait_for_selector(f"{ROOT} [data-panel='prompts'][data-prompts='16']")
    page.wait_for_selector(f"{ROOT} [data-panel='correlation'][data-fit='python']")
    page.wait_for_selector(f"{ROOT} [data-panel='convergence'][data-points='3']")
    caption = page.locator(f"{ROOT} [data-panel='prompts'] .tdw-ld-caption").text_content()
    assert "2 prompt(s) with fewer than 16" in (caption or ""), caption
    view.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    assert non_blank(view.screenshot(path=str(artifacts / "layer-detail-light.png")))
    lo0, hi0, d0 = _fit(_wait_label(page, r"^FIT r_min"))

    # Typing the upper end (Enter commits it) refits in Python and shows the new slope.
    r_max = page.locator(f"{ROOT} input[aria-label='r max']")
    r_max.click()
    r_max.fill(f"{hi0 * 1.6:.6g}")
    r_max.press("Enter")
    text = _wait_label(page, r"^FIT r_min=\S+ r_max=" + re.escape(f"{hi0 * 1.6:.6g}"))
    lo1, hi1, d1 = _fit(text)
    assert lo1 == pytest.approx(lo0, rel=1e-5) and d1 != pytest.approx(d0)
    assert page.locator(".jp-Notebook.jp-mod-editMode").count() == 0
    page.wait_for_selector(f"{ROOT} [data-panel='correlation'][data-fit='python']")

    # Dragging the lower edge to the left widens the window and refits on release.
    handle = page.locator(f"{ROOT} [data-panel='correlation'] .tdw-ld-handle[data-edge='lo']")
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 30, y, steps=6)
    page.mouse.move(x - 60, y, steps=6)
    page.mouse.up()
    text = _wait_label(page, r"^FIT r_min=(?!" + re.escape(f"{lo1:.6g}") + r" )")
    lo2, hi2, _ = _fit(text)
    assert lo2 < lo1 and hi2 == pytest.approx(hi1, rel=1e-5)
    page.wait_for_selector(f"{ROOT} [data-panel='correlation'][data-fit='python']")
    panel = page.locator(f"{ROOT} [data-panel='correlation']")
    panel.screenshot(path=str(artifacts / "layer-detail-window-moved.png"))

    # A click on a prompt's dot selects that prompt's tokens in the session.
    target = page.evaluate(
        f"""() => {{
            const dots = document.querySelectorAll("{ROOT} .tdw-ld-prompt");
            dots[0].scrollIntoView({{block: "center"}});
            for (const dot of dots) {{
                const r = dot.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                if (document.elementFromPoint(x, y) === dot)
                    return {{x, y, prompt: Number(dot.dataset.prompt)}};
            }}
            return null;
        }}"""
    )
    assert target is not None
    page.mouse.click(target["x"], target["y"])
    prompt = target["prompt"]
    length = 8 if prompt >= 16 else 40
    _wait_label(page, rf"^SELECTED {length} prompts=\[{prompt}\]")
    page.wait_for_selector(f"{ROOT} [data-panel='prompts'][data-selected='1']")

    # Dark theme: the same view, legible on a dark panel.
    page.evaluate(
        f"""() => {{
            const m = document.querySelector("{ROOT}").__tdw.context.model;
            m.set("theme", "dark");
        }}"""
    )
    page.wait_for_selector(f"{ROOT}.tdw-dark")
    view.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    assert non_blank(view.screenshot(path=str(artifacts / "layer-detail-dark.png")))
    assert _label(page, "SELECTED").startswith("SELECTED")
    assert problems == [], problems
