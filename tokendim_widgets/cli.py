"""The ``tokendim`` command: headless runs of the pipeline.

``tokendim demo``
    Extract the bundled SmolLM2's hidden states for a built-in prompt set, estimate the
    layer-wise intrinsic dimension with several estimators and print the curves and the
    paper's metrics. Runs offline on a laptop CPU in about a minute.
``tokendim curve``
    The same for any model, prompt set and estimators, with the curves written to CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import TokendimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokendim",
        description="Layer-wise intrinsic dimension of language-model token clouds.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def pipeline_options(p: argparse.ArgumentParser, model: str, prompts: str) -> None:
        p.add_argument(
            "--model",
            default=model,
            help=f"model: a built-in alias, hub id, local folder or .gguf file (default {model})",
        )
        p.add_argument(
            "--prompts",
            default=prompts,
            help=f"prompt set: a built-in name, or a .txt/.jsonl/.csv file (default {prompts})",
        )
        p.add_argument(
            "--estimator",
            action="append",
            dest="estimators",
            metavar="NAME",
            help="estimator (repeatable): twonn, mle, gride, correlation, pca "
            "(default: twonn, mle and gride)",
        )
        p.add_argument(
            "--cloud",
            default="all",
            choices=["all", "last", "per_prompt"],
            help="which tokens form each layer's cloud (default all)",
        )
        p.add_argument(
            "--keep-first",
            action="store_true",
            help="keep input position 0 (the attention sink) in the clouds",
        )
        p.add_argument("--max-tokens", type=int, default=None, help="subsample to N tokens")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
        p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")

    demo = sub.add_parser("demo", help="the bundled offline model on a built-in prompt set")
    pipeline_options(demo, "smollm2-135m", "mixed")
    curve = sub.add_parser("curve", help="ID curves of any model, written to CSV")
    pipeline_options(curve, "smollm2-135m", "mixed")
    curve.add_argument("--out", type=Path, default=Path("tokendim-out"), help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokendim`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except TokendimError as exc:
        print(f"tokendim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokendim: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from .analysis import compare, id_curve
    from .extraction import extract
    from .graphs import GraphCache

    estimators = args.estimators or ["twonn", "mle", "gride"]
    started = time.perf_counter()
    states = extract(
        args.model,
        args.prompts,
        max_tokens=args.max_tokens,
        device=args.device,
        cache=not args.no_cache,
        progress=True,
    )
    extracted = time.perf_counter()
    print(
        f"\n{states.model_id}: {states.n_tokens} tokens from {len(states.prompts)} prompts, "
        f"{states.n_layers} layers of width {states.hidden_size} "
        f"({extracted - started:.1f} s)"
    )
    graphs = GraphCache(states, device=args.device)
    curves = {}
    for name in estimators:
        curve = id_curve(
            states, name, cloud=args.cloud, drop_first=not args.keep_first, graphs=graphs
        )
        curves[curve.attrs["estimator"]] = curve
    print(
        f"intrinsic dimension per layer ({args.cloud} tokens, {time.perf_counter() - extracted:.1f} s):"
    )
    table = pd.DataFrame({"layer": next(iter(curves.values()))["layer"]})
    for label, curve in curves.items():
        table[label] = [
            f"{d:6.2f} [{lo:5.2f}, {hi:5.2f}]"
            for d, lo, hi in zip(curve["dimension"], curve["lower"], curve["upper"], strict=True)
        ]
    print(table.to_string(index=False))
    metrics = compare(curves)
    print("\nsummary metrics:")
    print(metrics.drop(columns=["model", "cloud"]).round(3).to_string())
    if getattr(args, "out", None) is not None:
        out: Path = args.out
        try:
            out.mkdir(parents=True, exist_ok=True)
            for label, curve in curves.items():
                safe = "".join(c if c.isalnum() else "_" for c in label)
                curve.to_csv(out / f"curve_{safe}.csv", index=False)
            metrics.to_csv(out / "metrics.csv")
        except OSError as exc:
            raise TokendimError(f"Cannot write to {out}: {exc.strerror}. Choose --out.") from exc
        print(f"\nwrote {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
