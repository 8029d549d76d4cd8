"""Regenerate the README's figures from a real run: the dashboard and the linked views.

Runs the README example (the bundled SmolLM2-135M on the built-in ``mixed`` prompts; the
extraction is read from the cache when it is there), exports the linked views as the standalone
HTML page, opens it in headless Chromium, and writes:

* ``docs/screenshot.png``: the whole dashboard;
* ``docs/linked-views.png``: three panels, what one click and one drag do (a layer clicked in
  the curve moves the scatter and the heatmap; tokens selected in the scatter light up in the
  heatmap);
* ``docs/linked-views.gif``: the same three states, animated.

Usage::

    python scripts/figures.py [--model smollm2-135m] [--prompts mixed] [--projection umap]

Needs Chromium (``apt-get install -y chromium``; set ``TOKENDIM_CHROMIUM`` to use another
binary) and the ``playwright`` Python package from the test extra (no browser download).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

import tokendim_widgets as td
from tokendim_widgets.export import export_html

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXPLORER = "document.querySelector('.tdw-root[data-view=\"explorer\"]')"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _page_of(path: Path, args: argparse.Namespace) -> str:
    """Export a real run of the README example and return the page's path."""
    states = td.extract(args.model, args.prompts)
    session = td.Session.from_hidden_states(states, projection_method=args.projection)
    try:
        session.run().wait(1800)
        layer = int(session.layer)
        print(
            f"{states.model_id}: {states.n_tokens} tokens x {states.n_layers} layers, layer {layer}"
        )
        return str(export_html(session, path, progress=True))
    finally:
        session.close()


def _click_layer(page: Any, layer: int) -> None:
    point = page.evaluate(
        f"""(target) => {{
            const curve = {EXPLORER}.__tdw.view.curve;
            const rect = curve.svgEl.getBoundingClientRect();
            const plot = curve.layout.plot;
            return {{x: rect.left + curve.layout.x(target), y: rect.top + (plot.y0 + plot.y1) / 2}};
        }}""",
        layer,
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_timeout(800)


def _drag_box(page: Any) -> None:
    box = page.evaluate(
        f"""() => {{
            const r = {EXPLORER}.__tdw.view.scatter.stage.getBoundingClientRect();
            return {{x: r.left, y: r.top, w: r.width, h: r.height}};
        }}"""
    )
    page.mouse.move(box["x"] + box["w"] * 0.55, box["y"] + box["h"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["w"] * 0.75, box["y"] + box["h"] * 0.45, steps=10)
    page.mouse.move(box["x"] + box["w"] * 0.9, box["y"] + box["h"] * 0.6, steps=10)
    page.mouse.up()
    page.wait_for_timeout(800)


def _caption(png: bytes, text: str) -> Image.Image:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    band = 34
    out = Image.new("RGB", (image.width, image.height + band), "white")
    out.paste(image, (0, band))
    ImageDraw.Draw(out).text((12, 10), text, fill=(20, 20, 20))
    return out


def main(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("TOKENDIM_CHROMIUM", "/usr/bin/chromium")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        page_path = _page_of(Path(tmp) / "dashboard.html", args)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROME_ARGS)
            context = browser.new_context(
                offline=True, viewport={"width": 1280, "height": 900}, device_scale_factor=1
            )
            page = context.new_page()
            page.goto(Path(page_path).as_uri())
            page.wait_for_selector("body[data-tdw-ready='1']", timeout=120_000)
            page.wait_for_selector(".tdw-view[data-view='heatmap'][data-tokens]")
            page.wait_for_timeout(1000)
            root = page.locator(".tdw-root[data-view='explorer']")
            DOCS.mkdir(exist_ok=True)
            root.screenshot(path=str(DOCS / "screenshot.png"))
            frames = [_caption(root.screenshot(), "The views at the curve's peak layer.")]
            _click_layer(page, args.early_layer)
            frames.append(
                _caption(
                    root.screenshot(),
                    f"Click layer {args.early_layer} in the curve: the scatter and the heatmap "
                    "follow.",
                )
            )
            _drag_box(page)
            frames.append(
                _caption(
                    root.screenshot(),
                    "Drag a box in the scatter: those tokens light up in the heatmap.",
                )
            )
            browser.close()
    width = max(f.width for f in frames)
    scale = 0.5
    small = [f.resize((int(f.width * scale), int(f.height * scale))) for f in frames]
    panel = Image.new("RGB", (sum(s.width for s in small), max(s.height for s in small)), "white")
    x = 0
    for s in small:
        panel.paste(s, (x, 0))
        x += s.width
    panel.save(DOCS / "linked-views.png", optimize=True)
    gif = [f.resize((int(width * 0.6), int(f.height * 0.6 * width / f.width))) for f in frames]
    gif[0].save(
        DOCS / "linked-views.gif",
        save_all=True,
        append_images=gif[1:],
        duration=[2500, 2500, 3500],
        loop=0,
        optimize=True,
    )
    took = time.perf_counter() - start
    print(f"wrote docs/screenshot.png, docs/linked-views.png and .gif in {took:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", default="mixed")
    parser.add_argument("--projection", default="umap", choices=["umap", "pca"])
    parser.add_argument("--early-layer", type=int, default=3)
    main(parser.parse_args())
