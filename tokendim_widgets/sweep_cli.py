"""``tokendim sweep``: many models on the same prompts, locally or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .sweeps import sweep


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``sweep`` subcommand on the ``tokendim`` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "sweep",
        help="many models on the same prompts: curves, metrics and quality of each",
        description="Run the same prompts through several models (extraction, ID curves with "
        "intervals, summary metrics, bits per byte) one after another or on a Ray cluster, and "
        "write OUT/curves, OUT/metrics, OUT/models (Parquet or CSV) and OUT/summary.txt. "
        "Models already swept with the same options are read from the cache.",
        epilog="Example: tokendim sweep --model smollm2-135m --model ./my-model --prompts mixed "
        "--executor ray --address auto --out sweep/. Exit status 0 when every model "
        "succeeded, 1 when some failed (listed in OUT/models), 2 on bad input.",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        required=True,
        metavar="REF",
        help="model reference (repeatable): alias, hub id, local folder or .gguf file",
    )
    parser.add_argument("--prompts", default="mixed", help="prompt set (default mixed)")
    parser.add_argument(
        "--estimator",
        action="append",
        dest="estimators",
        metavar="NAME",
        help="estimator (repeatable): twonn, mle, gride, correlation, pca (default twonn)",
    )
    parser.add_argument(
        "--cloud",
        default="all",
        choices=["all", "last", "per_prompt"],
        help="which tokens form each layer's cloud (default: all)",
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="subsample to N tokens")
    parser.add_argument("--no-quality", action="store_true", help="skip loss / bits per byte")
    parser.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="local: one model after another here; ray: one task per model on a Ray cluster",
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: start a local Ray)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--cache-dir", default=None, help="cache folder, shared by all nodes")
    parser.add_argument(
        "--format",
        choices=["parquet", "csv"],
        default=None,
        help="data files' format (default: parquet when pyarrow is installed, else csv)",
    )
    parser.add_argument("--out", type=Path, default=Path("tokendim-sweep"), help="output folder")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the ``sweep`` subcommand; returns the exit status."""

    result = sweep(
        args.models,
        args.prompts,
        estimators=args.estimators or ["twonn"],
        quality=not args.no_quality,
        executor=args.executor,
        address=args.address,
        cloud=args.cloud,
        max_tokens=args.max_tokens,
        device=args.device,
        cache_dir=args.cache_dir,
        progress=True,
    )
    files = result.write(args.out, format=args.format)
    print(result.summary())
    print("wrote " + ", ".join(str(f) for f in files))
    if not result.errors.empty:
        print(f"tokendim: {len(result.errors)} model(s) failed", file=sys.stderr)
        return 1
    return 0
