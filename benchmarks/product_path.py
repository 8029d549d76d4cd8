"""What a user waits for: the README example, stage by stage, in fresh processes.

Each measurement runs in a fresh Python process (imports, model files and caches as a user
meets them), on the bundled SmolLM2 with the built-in ``mixed`` prompt set (and Gemma 3 270M
when its package is installed). Times are seconds from the request to each thing a user sees:

* ``load``: ``load_model`` (the GGUF de-quantised to float32);
* ``extract``: the forward passes and the cache write (a fresh cache folder);
* from ``Session.run()`` with the extraction cached: the PCA preview of the selected layer, the
  first ID curve (all layers, with its intervals), the local-ID matrix, the first UMAP, every
  layer projected;
* from a finished session: each estimator's curve (an estimator change) and a ``k`` change;
* per layer: min / median / max of the default curve's time per layer (graph and fit);
* the cost of the default interval (resampling prompts) against the curve without one.

The session's staged graphs (the first curve searches only the neighbours its estimator
needs) are compared with one deep graph per layer (the previous behaviour), in the same run.

Usage::

    python benchmarks/product_path.py                 # everything (about 5 minutes on 2 cores)
    python benchmarks/product_path.py --skip-extract  # the session part only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

PROMPTS = "mixed"
ESTIMATORS = ("twonn", "mle", "gride", "correlation", "pca")


def child_load(model: str) -> dict[str, float]:
    start = time.perf_counter()
    import tokendim_widgets as td

    imported = time.perf_counter()
    td.load_model(model)
    return {"import": imported - start, "load": time.perf_counter() - imported}


def child_extract(model: str) -> dict[str, float]:
    import tokendim_widgets as td

    start = time.perf_counter()
    states = td.extract(model, PROMPTS, progress=False)
    return {"extract": time.perf_counter() - start, "tokens": float(states.n_tokens)}


def child_session(model: str, staged: bool) -> dict[str, Any]:
    import threading

    start = time.perf_counter()
    import tokendim_widgets as td
    from tokendim_widgets import export
    from tokendim_widgets import session as session_module

    session_module.STAGED_GRAPHS = staged
    session = td.Session(model=model, prompts=PROMPTS)
    marks: dict[str, Any] = {}
    done = threading.Event()

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - start)

    def on_kind(change: dict[str, Any]) -> None:
        mark(change["new"])
        if change["new"] == "umap":
            done.set()

    session.observe(on_kind, names="projection_kind")
    session.observe(lambda c: mark("curve") if c["new"] is not None else None, names="curve")
    session.observe(lambda c: mark("local") if c["new"] is not None else None, names="local_ids")
    session.run()
    done.wait(1200)
    session.wait(1200)
    mark("done")
    export.layer_projections(session)
    mark("all_projected")

    def change(**params: Any) -> float:
        t0 = time.perf_counter()
        with session.hold_trait_notifications():
            for name, value in params.items():
                setattr(session, name, value)
        session.wait(1200)
        return time.perf_counter() - t0

    for name in ESTIMATORS[1:]:
        marks[f"estimator {name}"] = change(estimator=name)
    marks["estimator twonn (back)"] = change(estimator="twonn")
    marks["k 10"] = change(k=10)
    marks["interval_method"] = str(session.curve["interval_method"].iloc[0])
    session.close()
    return marks


def child_layers(model: str) -> dict[str, Any]:
    import tokendim_widgets as td
    from tokendim_widgets.graphs import GraphCache

    states = td.extract(model, PROMPTS, progress=False)
    per_layer: dict[str, list[float]] = {}
    for name in ESTIMATORS:
        graphs = GraphCache(states, staged=True)
        times = []
        for layer in range(states.n_layers):
            t0 = time.perf_counter()
            td.id_curve(states, name, layers=[layer], graphs=graphs)
            times.append(time.perf_counter() - t0)
        per_layer[name] = times
    return per_layer


def child_intervals(model: str) -> dict[str, Any]:
    """Cost of the default (prompt-resampling) interval against the curve without one."""
    import tokendim_widgets as td
    from tokendim_widgets.graphs import GraphCache

    states = td.extract(model, PROMPTS, progress=False)
    out: dict[str, Any] = {}
    for name in ESTIMATORS:
        graphs = GraphCache(states, staged=True)
        t0 = time.perf_counter()
        td.id_curve(states, (name, {"interval": "analytic"}), graphs=graphs, warn=False)
        total = time.perf_counter() - t0  # graphs + fits, analytic intervals
        t0 = time.perf_counter()
        td.id_curve(states, (name, {"interval": "analytic"}), graphs=graphs, warn=False)
        analytic = time.perf_counter() - t0
        t0 = time.perf_counter()
        curve = td.id_curve(states, name, graphs=graphs, warn=False)
        default = time.perf_counter() - t0
        out[name] = {
            "curve_without_interval": total,
            "fits_analytic": analytic,
            "fits_default": default,
            "method": str(curve["interval_method"].iloc[0]),
        }
    return out


def run_child(kind: str, model: str, env: dict[str, str], *extra: str) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--model", model, *extra],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--staged", default="1", help=argparse.SUPPRESS)
    parser.add_argument("--skip-extract", action="store_true")
    parser.add_argument("--models", default=None, help="comma-separated; default: bundled ones")
    args = parser.parse_args()
    if args.child:
        result: Any
        if args.child == "load":
            result = child_load(args.model)
        elif args.child == "extract":
            result = child_extract(args.model)
        elif args.child == "session":
            result = child_session(args.model, args.staged == "1")
        elif args.child == "intervals":
            result = child_intervals(args.model)
        else:
            result = child_layers(args.model)
        print(json.dumps(result))
        return

    models = args.models.split(",") if args.models else ["smollm2-135m"]
    if not args.models:
        from tokendim_widgets.models import ALIASES

        gemma = ALIASES.get("gemma3-270m")
        if gemma is not None and gemma.locate() is not None:
            models.append("gemma3-270m")
    env = dict(os.environ)
    print(f"# product path, prompts {PROMPTS!r}, {os.cpu_count()} CPUs, {time.strftime('%F %T')}")
    for model in models:
        print(f"\n## {model}")
        load = run_child("load", model, env)
        print(f"import {load['import']:.1f} s, load_model {load['load']:.1f} s")
        if not args.skip_extract:
            with tempfile.TemporaryDirectory() as cache:
                fresh = dict(env, TOKENDIM_CACHE_DIR=cache)
                ex = run_child("extract", model, fresh)
            print(f"extract {ex['extract']:.1f} s on a fresh cache ({int(ex['tokens'])} tokens)")
        run_child("extract", model, env)  # make sure the shared cache holds it
        staged = run_child("session", model, env, "--staged", "1")
        deep = run_child("session", model, env, "--staged", "0")
        print(f"\nfrom Session.run(), extraction cached (intervals: {staged['interval_method']})")
        print(f"{'seconds to':28s} {'staged':>8s} {'deep':>8s} {'ratio':>6s}")
        for key in ("pca", "curve", "local", "umap", "done", "all_projected"):
            a, b = staged.get(key, float("nan")), deep.get(key, float("nan"))
            print(f"{key:28s} {a:8.1f} {b:8.1f} {b / a:5.2f}x")
        print("\nchanges on a finished session (staged)")
        for key, value in staged.items():
            if key.startswith(("estimator", "k ")):
                print(f"{key:28s} {value:8.2f} s")
        costs = run_child("intervals", model, env)
        print("\ncost of the default interval, all layers (graphs warm for the two fit columns)")
        print(
            f"{'estimator':12s} {'curve, no CI':>12s} {'fits, analytic':>14s} "
            f"{'fits, default':>13s} {'cost':>6s}  method"
        )
        for name, c in costs.items():
            extra = c["fits_default"] - c["fits_analytic"]
            print(
                f"{name:12s} {c['curve_without_interval']:12.2f} {c['fits_analytic']:14.2f} "
                f"{c['fits_default']:13.2f} {extra / c['curve_without_interval']:6.1%}  "
                f"{c['method']}"
            )
        layers = run_child("layers", model, env)
        print("\nper layer, fresh staged graphs (graph + fit), seconds")
        print(f"{'estimator':12s} {'min':>6s} {'median':>7s} {'max':>6s} {'all layers':>10s}")
        for name, times in layers.items():
            print(
                f"{name:12s} {min(times):6.2f} {statistics.median(times):7.2f} "
                f"{max(times):6.2f} {sum(times):10.1f}"
            )


if __name__ == "__main__":
    main()
