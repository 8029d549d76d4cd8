"""Small helpers to drive JupyterLab in Playwright and to look at screenshots."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any


def write_notebook(path: Path, cells: list[str]) -> None:
    """A minimal nbformat-4 notebook with these code cells."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for source in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")


def non_blank(png: bytes, *, min_colours: int = 8) -> bool:
    """True if a screenshot shows more than a flat background (a drawn chart)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) >= min_colours


def _accept_kernel_dialog(page: Any) -> None:
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        dialog.wait_for(state="visible", timeout=8000)
        dialog.click()
    except Exception:  # no dialog: the kernel started by itself
        pass


def run_all(page: Any) -> None:
    """Open the notebook's kernel and run every cell from the Run menu."""
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    _accept_kernel_dialog(page)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def run_cell(page: Any, index: int) -> None:
    """Run one cell again (select it, then Shift+Enter in command mode)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")


def wait_output(
    page: Any, pattern: str, *, timeout: float = 60, selector: str = ".jp-OutputArea-output"
) -> str:
    """Wait until some element of ``selector`` (by default a cell output) matches ``pattern``;
    return that element's text."""
    handle = page.wait_for_function(
        """([pattern, selector]) => {
            const re = new RegExp(pattern);
            for (const el of document.querySelectorAll(selector)) {
                if (re.test(el.textContent || '')) return el.textContent;
            }
            return null;
        }""",
        arg=[pattern, selector],
        timeout=timeout * 1000,
    )
    return str(handle.json_value())


def box_select_scatter(page: Any, root: str) -> None:
    """Drag a box over most of the scatter of the views under the JS expression ``root``."""
    box = page.evaluate(
        f"""() => {{
            const r = {root}.__tdw.view.scatter.stage.getBoundingClientRect();
            return {{x: r.left, y: r.top, w: r.width, h: r.height}};
        }}"""
    )
    page.mouse.move(box["x"] + box["w"] * 0.05, box["y"] + box["h"] * 0.05)
    page.mouse.down()
    page.mouse.move(box["x"] + box["w"] * 0.5, box["y"] + box["h"] * 0.6, steps=8)
    page.mouse.move(box["x"] + box["w"] * 0.95, box["y"] + box["h"] * 0.95, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)


# A notebook cell that builds an Explorer on synthetic hidden states (a planted dimension profile,
# an embedding layer first), runs it, and shows a Label that Python rewrites on every layer change:
# the page can see a layer click reach Python without re-running a cell (Voila runs no cells).
SYNTHETIC_EXPLORER = """\
import numpy as np, pandas as pd, ipywidgets as W
from IPython.display import display
from tokendim_widgets import Explorer, HiddenStates, Session
rng = np.random.default_rng(0)
dims, n_prompts, per_prompt, width = (3, 6, 9, 7, 4, 3), 18, 20, 24
n = n_prompts * per_prompt
layers = []
for d in dims:
    basis, _ = np.linalg.qr(rng.normal(size=(width, d)))
    layers.append((rng.uniform(-1, 1, size=(n, d)) @ basis.T).astype(np.float32))
tokens = pd.DataFrame({
    "prompt": np.repeat(np.arange(n_prompts), per_prompt).astype(np.int32),
    "position": np.tile(np.arange(per_prompt), n_prompts).astype(np.int32),
    "token_id": rng.integers(0, 1000, size=n).astype(np.int32),
    "token": [f"t{i}" for i in range(n)],
})
kinds = ["embedding"] + ["residual"] * (len(dims) - 2) + ["final_norm"]
states = HiddenStates.from_arrays(layers, tokens, model_id="planted", layer_kinds=kinds)
session = Session.from_hidden_states(states, projection_method="pca", k=10, layer=1)
ex = Explorer(session=session)
echo = W.Label("LAYER none")
ex.observe(lambda change: setattr(echo, "value", f"LAYER {change['new']}"), names="layer")
display(ex, echo)
"""


def click_curve_layer(page: Any, root: str, target: int) -> None:
    """Click layer ``target`` in the curve of the explorer under the JS expression ``root``."""
    point = page.evaluate(
        f"""(target) => {{
            const curve = {root}.__tdw.view.curve;
            curve.svgEl.scrollIntoView({{block: "center"}});
            const rect = curve.svgEl.getBoundingClientRect();
            const plot = curve.layout.plot;
            return {{x: rect.left + curve.layout.x(target), y: rect.top + (plot.y0 + plot.y1) / 2}};
        }}""",
        target,
    )
    page.mouse.click(point["x"], point["y"])


def watch_requests(page: Any) -> list[str]:
    """Record failed requests and HTTP errors (4xx / 5xx) of the page, and page errors."""
    problems: list[str] = []
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e} | {e.stack}"))
    return problems
