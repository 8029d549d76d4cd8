"""The ``tokendim`` command: headless runs of the pipeline.

``tokendim demo``
    Extract the bundled SmolLM2's hidden states for a built-in prompt set, estimate the
    layer-wise intrinsic dimension with several estimators and print the curves and the
    paper's metrics. Runs offline on a laptop CPU in about a minute.
``tokendim curve``
    The same for any model, prompt set and estimators, with the curves written to CSV.
``tokendim sweep``
    Many models on the same prompts (locally or on a Ray cluster): curves, metrics and quality
    of each, written as tables and a text summary.
``tokendim report``
    The whole pipeline of the Explorer, headless, with progress: writes a standalone HTML report
    (the linked views, interactive and offline), the data files (curves, metrics, local-ID
    matrix with token metadata, projections of every layer) and a text summary of the metrics.

Errors a user can cause (an unknown model or estimator, an empty prompt file, an output folder
that cannot be written) end the command with exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import projection, sweep_cli
from .errors import TokendimError
from .extraction import extract
from .models import resolve_model
from .progress import StageProgress
from .prompts import as_prompt_set

if TYPE_CHECKING:
    from .session import Session

ESTIMATOR_NAMES = ("twonn", "mle", "gride", "correlation", "pca")
#: Seconds an interrupted command waits for its session's worker to stop.
_STOP_TIMEOUT = 30.0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tokendim`` command (also for documentation tools)."""
    parser = _Parser(
        prog="tokendim",
        description="Layer-wise intrinsic dimension of language-model token clouds.",
        epilog="Run `tokendim COMMAND --help` for the options of each command. Example: "
        "tokendim report --model smollm2-135m --prompts mixed --out report/",
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

    report = sub.add_parser(
        "report",
        help="headless run: standalone HTML report, data files and a text summary",
        description="Run the whole pipeline headless (extraction, ID curves, local IDs, a "
        "projection of every layer) and write OUT/report.html (one standalone file: the linked "
        "views, interactive and offline), the data files (curves, metrics, local_ids, "
        "projections; Parquet or CSV) and OUT/summary.txt (the metrics table, also printed).",
        epilog="Exit status: 0 on success, 2 on bad input (one line on stderr), 130 when "
        "interrupted. Example: tokendim report --model smollm2-135m --prompts prompts.txt "
        "--estimator twonn --estimator gride --out report/",
    )
    report.add_argument(
        "--model",
        default="smollm2-135m",
        help="model: a built-in alias, hub id, local folder or .gguf file (default smollm2-135m)",
    )
    report.add_argument(
        "--prompts",
        default="mixed",
        help="prompt set: a built-in name, or a .txt/.jsonl/.csv file (default mixed)",
    )
    report.add_argument(
        "--estimator",
        action="append",
        dest="estimators",
        metavar="NAME",
        help="estimator of the curve, repeatable or comma-separated; the first is the main "
        f"one, the others are overlaid: {', '.join(ESTIMATOR_NAMES)} (default twonn)",
    )
    report.add_argument(
        "--cloud",
        default="all",
        choices=["all", "last", "per_prompt"],
        help="which tokens form each layer's cloud (default all)",
    )
    report.add_argument(
        "--keep-first",
        action="store_true",
        help="keep input position 0 (the attention sink) in the clouds and projections",
    )
    report.add_argument(
        "--k",
        type=_positive_int,
        default=20,
        help="neighbours of the local-ID estimates and of k-based estimators (default 20)",
    )
    report.add_argument(
        "--scale", type=_positive_int, default=None, help="scale of multiscale estimators (GRIDE)"
    )
    report.add_argument(
        "--max-tokens", type=_positive_int, default=None, help="subsample to at most N tokens"
    )
    report.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    report.add_argument(
        "--umap",
        action="store_true",
        help="UMAP projections (needs umap-learn; slower) instead of PCA",
    )
    report.add_argument(
        "--format",
        choices=["parquet", "csv"],
        default=None,
        help="data files format (default parquet when pyarrow is installed, else csv)",
    )
    report.add_argument("--out", type=Path, default=Path("tokendim-report"), help="output folder")
    report.add_argument("--title", default=None, help="title of the HTML report")
    report.add_argument(
        "--verbose", action="store_true", help="show library warnings and error tracebacks"
    )

    sweep_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokendim`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            with _quiet_libraries(verbose=args.verbose):
                return _report(args)
        if args.command == "sweep":
            return sweep_cli.run(args)
        return _run(args)
    except TokendimError as exc:
        # One line: messages that list a pip command on its own line are joined.
        print(f"tokendim: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokendim: interrupted", file=sys.stderr)
        if _busy_workers():
            # A worker still inside native code (a model load that cannot be stopped) would
            # abort the interpreter's shutdown: end the process here, streams flushed.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130


def _busy_workers() -> bool:
    """Whether a session worker thread of ours is still running."""
    import threading

    return any(t.name == "tokendim-session" and t.is_alive() for t in threading.enumerate())


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from .analysis import compare, format_metrics, id_curve
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
        f"intrinsic dimension per layer ({args.cloud} tokens, "
        f"{time.perf_counter() - extracted:.1f} s):"
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
    print(format_metrics(metrics))
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


# ---- tokendim report ------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_libraries(*, verbose: bool) -> Iterator[None]:
    """Keep stderr for our own messages: library chatter and worker tracebacks off by default.

    Undone on exit, so that calling :func:`main` in a process (tests) leaves it as it was.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        yield
        return
    # Read by transformers and huggingface_hub when they are imported; a user's own setting
    # wins. Our own progress display covers model loading.
    quiet = {
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    added = [name for name in quiet if name not in os.environ]
    for name in added:
        os.environ[name] = quiet[name]
    # The session logs unexpected worker failures with their traceback; the failure itself
    # reaches us as the session's error message. A handler keeps logging's last-resort
    # printer (stderr) off.
    logger = logging.getLogger("tokendim_widgets")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        for name in added:
            os.environ.pop(name, None)


def _estimator_names(values: Sequence[str] | None) -> list[str]:
    names: list[str] = []
    for value in values or ["twonn"]:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in ESTIMATOR_NAMES:
                raise TokendimError(
                    f"Unknown estimator {part.strip()!r}: choose from {', '.join(ESTIMATOR_NAMES)}."
                )
            if name not in names:
                names.append(name)
    if not names:
        raise TokendimError(f"No estimator given: choose from {', '.join(ESTIMATOR_NAMES)}.")
    return names


def _writable_folder(out: Path) -> Path:
    """Create ``out`` and check that files can be written there, before any long work."""
    probe = out / ".tokendim-write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TokendimError(
            f"Cannot write to the output folder {str(out)!r}: {exc.strerror or exc}. "
            "Choose another one with --out."
        ) from None
    return out


def _data_format(requested: str | None) -> str:
    import importlib.util

    has_arrow = importlib.util.find_spec("pyarrow") is not None
    if requested == "parquet" and not has_arrow:
        raise TokendimError(
            'Parquet files need pyarrow: pip install "tokendim-widgets[export]" '
            "(or pip install pyarrow), or use --format csv."
        )
    return requested or ("parquet" if has_arrow else "csv")


#: The session's traits that the progress display follows.
_FOLLOWED = ["status", "progress", "tokens_per_second"]


def _session_stage(session: Session) -> tuple[str, float, str]:
    """The session's status as a progress stage: (status, fraction done, token rate)."""
    status = session.status
    rate = session.tokens_per_second
    extra = f" {rate:,.0f} tokens/s" if status == "extracting" and rate > 0 else ""
    return status, session.progress, extra


def _report(args: argparse.Namespace) -> int:

    # Everything that can be checked without running the model is checked first.
    estimators = _estimator_names(args.estimators)
    resolve_model(args.model)
    prompts = as_prompt_set(args.prompts)
    if args.umap and not projection.umap_available():
        raise TokendimError(
            'UMAP projections need umap-learn: pip install "tokendim-widgets[umap]" '
            "(or pip install umap-learn), or leave out --umap for PCA."
        )
    fmt = _data_format(args.format)
    created = not args.out.exists()
    out = _writable_folder(args.out)
    try:
        return _report_run(args, out, fmt, estimators, prompts)
    except BaseException:
        if created:  # leave no empty folder behind a failed run
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _report_run(
    args: argparse.Namespace, out: Path, fmt: str, estimators: list[str], prompts: Any
) -> int:
    from .session import Session

    started = time.perf_counter()
    session = Session(
        model=args.model,
        prompts=prompts,
        estimator=estimators[0],
        overlay=estimators[1:],
        cloud=args.cloud,
        drop_first=not args.keep_first,
        k=args.k,
        scale=args.scale,
        max_tokens=args.max_tokens,
        device=args.device,
        projection_method="umap" if args.umap else "pca",
    )
    # A bar on a terminal, else one line per stage; the end states get no line of their own.
    progress = StageProgress(sys.stderr, ends=("done", "error", "cancelled"))
    progress.follow(session, _FOLLOWED, lambda: _session_stage(session))
    try:
        try:
            session.run().wait()
        except KeyboardInterrupt:
            session.cancel()
            raise
        # The session goes on projecting the other layers in the background; stop it and
        # compute the missing ones here, with progress.
        progress.unfollow()
        session.cancel()
        computed = time.perf_counter()
        from .export import export_data, export_html, layer_projections

        kind = "umap" if args.umap else "pca"
        progress.stage(f"{kind} projections")
        layer_projections(
            session,
            kind=kind,
            progress=lambda done, total: progress.show(
                f"projections, layer {done}/{total}", done / max(total, 1)
            ),
        )
        progress.stage("writing")
        html_path = export_html(session, out / "report.html", title=args.title, progress=False)
        files = export_data(session, out, format=fmt)
        summary = _summary(session, args, time.perf_counter() - started, computed - started)
        summary_path = out / "summary.txt"
        try:
            summary_path.write_text(summary, encoding="utf-8")
        except OSError as exc:
            raise TokendimError(f"Cannot write {summary_path}: {exc.strerror or exc}.") from None
    finally:
        progress.close()
        # Wait for the worker to stop (cancelled work stops at its next batch or layer): a
        # thread still inside torch when the interpreter exits aborts the process.
        session.close(timeout=_STOP_TIMEOUT)
    print(summary, end="")
    print(f"\nwrote {out}{os.sep}")
    for path in [html_path, *files.values(), summary_path]:
        print(f"  {path.name:<24} {_size(path.stat().st_size)}")
    return 0


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:8.2f} MB" if n_bytes >= 100_000 else f"{n_bytes / 1e3:8.1f} kB"


def _summary(session: Session, args: argparse.Namespace, total_s: float, run_s: float) -> str:
    import pandas as pd

    from .analysis import format_metrics

    states = session.hidden_states
    curves = session.curves
    main_curve = session.curve
    lines = [
        "tokendim report",
        f"model       {states.model_id}: {states.n_layers} layers of width {states.hidden_size}",
        f"prompts     {_prompt_name(states, args.prompts)}: {len(states.prompts)} prompts, "
        f"{states.n_tokens} tokens",
        f"cloud       {args.cloud}"
        + (" (input position 0 kept)" if args.keep_first else " (input position 0 dropped)")
        + f", k = {args.k}"
        + (f", scale = {args.scale}" if args.scale else ""),
        f"projection  {'umap' if args.umap else 'pca'}",
        f"time        {run_s:.1f} s analysis, {total_s:.1f} s in all",
        "",
        "intrinsic dimension per layer (value [lower, upper]):",
    ]
    table = pd.DataFrame({"layer": main_curve["layer"].to_numpy()})
    for label, curve in curves.items():
        table[str(label)] = [
            f"{d:6.2f} [{lo:6.2f}, {hi:6.2f}]"
            for d, lo, hi in zip(curve["dimension"], curve["lower"], curve["upper"], strict=True)
        ]
    lines.append(table.to_string(index=False))
    lines += ["", "metrics:", format_metrics(session.metrics)]
    return "\n".join(lines) + "\n"


def _prompt_name(states: Any, given: str) -> str:
    recorded = getattr(states, "prompt_set", None)
    if isinstance(recorded, dict) and recorded.get("name"):
        return str(recorded["name"])
    return Path(given).name


if __name__ == "__main__":
    raise SystemExit(main())
