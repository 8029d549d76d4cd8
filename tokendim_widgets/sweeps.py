"""Model sweeps: the same prompts through many models, on one machine or on a Ray cluster.

:func:`sweep` runs, for each model, the extraction (cached), the ID curves with their intervals,
the summary metrics and the model quality (next-token loss and bits per byte), and gathers
them in one :class:`SweepResult`. Each model's whole result is also cached (namespace
``"sweep"``, keyed by the model's content identity, the prompts and the options), so a model
already swept is read back without loading it or running a forward pass.

With ``executor="ray"`` every model is one Ray task (see ``docs/sweeps.md``): the results come
back through Ray's object store and are also written to the cache folder, which must then be
a path shared by every node (``TOKENDIM_CACHE_DIR``).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import TokendimError
from .extraction import extract
from .models import load_model, model_identity, resolve_model
from .progress import Progress
from .prompts import as_prompt_set
from .quality import model_quality
from .store import Store, make_key
from .validation import check_choice

#: Cache namespace of per-model sweep results.
NAMESPACE = "sweep"
#: Bumped when the content of a cached per-model result changes.
_FORMAT = 1
EXECUTORS = ("local", "ray")
QUALITY_COLUMNS = (
    "loss",
    "loss_lower",
    "loss_upper",
    "bits_per_byte",
    "bits_per_byte_lower",
    "bits_per_byte_upper",
    "quality_tokens",
    "quality_bytes",
    "quality_note",
)
SweepProgress = Callable[[int, int, str], Any]


@dataclass(frozen=True)
class ModelJob:
    """Everything one worker needs to sweep one model (plain, picklable data).

    Attributes
    ----------
    label : str
        The model's name in the results.
    ref : str
        Its model reference (alias, hub id, folder or ``.gguf`` file).
    prompts : PromptSet
        The prompts.
    estimators : tuple
        Estimator specs (names or ``(name, params)`` pairs).
    options : dict
        ``cloud``, ``drop_first``, ``max_tokens``, ``max_length``, ``device``, ``dtype``,
        ``quality``, ``n_boot``.
    cache_dir : str or None
        Cache folder (shared by every node on a cluster); None disables the cache.
    """

    label: str
    ref: str
    prompts: Any
    estimators: tuple[Any, ...]
    options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _message(exc: BaseException) -> str:
    if isinstance(exc, TokendimError):
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _has_lm_head(model: Any) -> bool:
    getter = getattr(model, "get_output_embeddings", None)
    return callable(getter) and getter() is not None


def _bootstrap_ratio(
    numerator: np.ndarray, denominator: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of sum(numerator) / sum(denominator), resampling prompts."""
    if len(numerator) < 2 or n_boot < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(numerator), size=(n_boot, len(numerator)))
    den = denominator[draws].sum(axis=1)
    ratio = numerator[draws].sum(axis=1) / np.where(den > 0, den, np.nan)
    ratio = ratio[np.isfinite(ratio)]
    if not ratio.size:
        return math.nan, math.nan
    low, high = np.percentile(ratio, [2.5, 97.5])
    return float(low), float(high)


def prompt_quality(
    loaded: tuple[Any, Any],
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    device: str = "auto",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Next-token loss and bits per byte of a causal LM, with intervals over prompts.

    Each prompt is scored alone with :func:`~tokendim_widgets.model_quality`; the loss is the
    total negative log-likelihood over the total number of predicted tokens (as for the whole
    set at once), and bits per byte the total NLL in bits over the UTF-8 bytes of the scored
    prompts (when ``model_quality`` reports ``bits_per_byte`` itself, its per-prompt value is
    used). The intervals are 95% percentile intervals of a bootstrap over prompts.

    Parameters
    ----------
    loaded : (model, tokenizer)
        A loaded model.
    texts : sequence of str
        The prompts.
    max_length : int, optional
        Truncate prompts to this many tokens.
    device : str, default "auto"
        As in :func:`~tokendim_widgets.model_quality`.
    n_boot : int, default 1000
        Bootstrap replicates.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    dict
        The :data:`QUALITY_COLUMNS`; NaN with a ``quality_note`` for a model without a
        next-token head (an encoder) or prompts that predict nothing.
    """

    empty: dict[str, Any] = {c: math.nan for c in QUALITY_COLUMNS}
    model = loaded[0]
    if not _has_lm_head(model):
        empty["quality_note"] = (
            f"{type(model).__name__} has no next-token head (an encoder): no loss or bits per byte"
        )
        return empty
    nll, tokens, bits, nbytes = [], [], [], []
    for text in texts:
        try:
            scored = model_quality(loaded, [text], device=device, max_length=max_length)
        except TokendimError:
            continue  # a prompt of one token predicts nothing
        size = float(scored.get("n_bytes", len(text.encode("utf-8"))))
        total = scored["loss"] * scored["n_tokens"]
        nll.append(total)
        tokens.append(float(scored["n_tokens"]))
        per_byte = scored.get("bits_per_byte")
        bits.append(per_byte * size if per_byte is not None else total / math.log(2))
        nbytes.append(size)
    if not tokens:
        empty["quality_note"] = "no prompt has a next token to predict"
        return empty
    a_nll, a_tok, a_bits, a_bytes = map(np.asarray, (nll, tokens, bits, nbytes))
    loss_lo, loss_hi = _bootstrap_ratio(a_nll, a_tok, n_boot, seed)
    bpb_lo, bpb_hi = _bootstrap_ratio(a_bits, a_bytes, n_boot, seed)
    note = f"intervals: bootstrap over {len(tokens)} prompts"
    if max_length is not None:
        note += "; bytes of whole prompts, some truncated"
    return {
        "loss": float(a_nll.sum() / a_tok.sum()),
        "loss_lower": loss_lo,
        "loss_upper": loss_hi,
        "bits_per_byte": float(a_bits.sum() / a_bytes.sum()),
        "bits_per_byte_lower": bpb_lo,
        "bits_per_byte_upper": bpb_hi,
        "quality_tokens": float(a_tok.sum()),
        "quality_bytes": float(a_bytes.sum()),
        "quality_note": note,
    }


def _sweep_key(job: ModelJob) -> str | None:
    from .analysis import as_estimator, estimator_label, estimator_params

    identity = model_identity(resolve_model(job.ref))
    if not identity.get("id"):
        return None
    specs = []
    for spec in job.estimators:
        estimator = as_estimator(spec)
        specs.append([estimator_label(estimator), estimator_params(estimator)])
    return make_key(NAMESPACE, _FORMAT, identity["id"], job.prompts.hash, specs, job.options)


def _compute(job: ModelJob) -> tuple[pd.DataFrame, pd.DataFrame]:
    from .analysis import id_curve, summarize
    from .graphs import GraphCache

    opts = job.options
    cache = job.cache_dir is not None
    extract_options = {
        "max_tokens": opts.get("max_tokens"),
        "max_length": opts.get("max_length"),
        "device": opts.get("device", "auto"),
        "dtype": opts.get("dtype", "auto"),
        "cache": cache,
        "cache_dir": job.cache_dir,
        "progress": False,
    }
    quality: dict[str, Any] = {c: math.nan for c in QUALITY_COLUMNS}
    quality["quality_note"] = "not measured (quality=False)"
    if opts.get("quality", True):
        loaded = load_model(
            job.ref, device=extract_options["device"], dtype=extract_options["dtype"]
        )
        states = extract(loaded, job.prompts, **extract_options)
        quality = prompt_quality(
            loaded,
            job.prompts.texts,
            max_length=opts.get("max_length"),
            device=extract_options["device"],
            n_boot=int(opts.get("n_boot", 1000)),
        )
        del loaded
    else:
        states = extract(job.ref, job.prompts, **extract_options)
    graphs = GraphCache(states, device=extract_options["device"])
    curves, metrics = [], []
    for spec in job.estimators:
        curve = id_curve(
            states,
            spec,
            cloud=opts.get("cloud", "all"),
            drop_first=opts.get("drop_first", True),
            graphs=graphs,
        )
        row = summarize(curve).to_dict()
        row.update(
            model=job.label,
            estimator=curve.attrs["estimator"],
            n_layers=states.n_layers,
            hidden_size=states.hidden_size,
            n_tokens=states.n_tokens,
            n_distinct=int(curve["n_distinct"].min()),
            **quality,
        )
        metrics.append(row)
        frame = pd.DataFrame(curve)
        frame.attrs = {}
        frame.insert(0, "model", job.label)
        curves.append(frame)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(metrics)


def run_model(job: ModelJob) -> dict[str, Any]:
    """Sweep one model: read its cached result, or compute it (and cache it).

    Never raises for a problem of the model: the error comes back in the result, so that one
    failed model does not stop a sweep.

    Parameters
    ----------
    job : ModelJob
        What to run.

    Returns
    -------
    dict
        ``label``, ``curves`` and ``metrics`` (DataFrames, None on failure), ``status``
        (``"computed"``, ``"cached"`` or ``"failed"``), ``error`` (message or None),
        ``seconds`` and ``worker`` (host:pid that ran it).
    """

    started = time.perf_counter()
    result: dict[str, Any] = {
        "label": job.label,
        "curves": None,
        "metrics": None,
        "status": "failed",
        "error": None,
        "worker": _where(),
    }
    try:
        store = Store(job.cache_dir) if job.cache_dir is not None else None
        key = _sweep_key(job) if store is not None else None
        entry = store.get(NAMESPACE, key) if store is not None and key is not None else None
        if entry is not None:
            curves, metrics = entry.table("curves"), entry.table("metrics")
            curves["model"] = job.label
            metrics["model"] = job.label
            result.update(curves=curves, metrics=metrics, status="cached")
        else:
            curves, metrics = _compute(job)
            if store is not None and key is not None:
                store.put(
                    NAMESPACE,
                    key,
                    tables={"curves": curves, "metrics": metrics},
                    meta={"model": job.ref, "prompts": job.prompts.name},
                )
            result.update(curves=curves, metrics=metrics, status="computed")
    except Exception as exc:  # one failed model must not stop the sweep
        result["error"] = _message(exc)
    result["seconds"] = time.perf_counter() - started
    return result


# ---- the result ----------------------------------------------------------------------------
def _interval_of(rows: pd.DataFrame, column: str) -> tuple[Any, Any] | None:
    """The ``column_lower``/``column_upper`` columns of ``rows`` when it has them."""
    low, high = f"{column}_lower", f"{column}_upper"
    if low in rows.columns and high in rows.columns:
        return rows[low].to_numpy(dtype=float), rows[high].to_numpy(dtype=float)
    return None


def _rank(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(method="average").to_numpy()


def spearman(
    x: Sequence[float] | np.ndarray | pd.Series,
    y: Sequence[float] | np.ndarray | pd.Series,
    *,
    x_interval: tuple[Any, Any] | None = None,
    y_interval: tuple[Any, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman's rank correlation with a 95% bootstrap interval.

    Each replicate resamples the models with replacement and, where a model's own 95%
    interval is given, draws its value from that interval (a normal on each side of the
    value, its scale the half-width on that side over 1.96): the interval of the correlation
    carries both the choice of models and each model's uncertainty.

    Parameters
    ----------
    x, y : sequence of float, array or Series
        One value per model; models with a NaN value are left out.
    x_interval, y_interval : (lower, upper) of sequences of float, optional
        Each model's 95% interval; a NaN end counts as no uncertainty on that side.
    n_boot : int, default 2000
        Bootstrap replicates.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``rho``, ``lower``, ``upper`` and ``n`` (models used); NaN below three models.

    Examples
    --------
    >>> r = spearman([1.0, 2.0, 3.0, 4.0], [8.0, 6.0, 7.0, 1.0])
    >>> round(r["rho"], 2), r["n"]
    (-0.8, 4)
    >>> x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    >>> y = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0]
    >>> ranges = ([v - 2 for v in y], [v + 2 for v in y])  # each model's own interval
    >>> spearman(x, y)["upper"], spearman(x, y, y_interval=ranges)["upper"] > -1
    (-1.0, True)
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise TokendimError("spearman needs x and y of one value per model, the same length.")
    spread_a = _half_widths(a, x_interval, "x_interval")
    spread_b = _half_widths(b, y_interval, "y_interval")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b, spread_a, spread_b = a[keep], b[keep], spread_a[:, keep], spread_b[:, keep]
    out = {"rho": math.nan, "lower": math.nan, "upper": math.nan, "n": int(a.size)}
    if a.size < 3:
        return out
    out["rho"] = float(np.corrcoef(_rank(a), _rank(b))[0, 1])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, a.size, size=(int(n_boot), a.size))
    # Average ranks of ties, per replicate (pandas' rank: scipy.stats costs ~0.5 s to import).
    ra = pd.DataFrame(_jitter(a, spread_a, pick, rng)).rank(axis=1).to_numpy(copy=True)
    rb = pd.DataFrame(_jitter(b, spread_b, pick, rng)).rank(axis=1).to_numpy(copy=True)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    ok = norm > 0
    reps = (ra * rb).sum(axis=1)[ok] / norm[ok]
    if reps.size:
        low, high = np.percentile(reps, [2.5, 97.5])
        # Noisy values pull the replicates towards 0; the interval still holds the estimate.
        out["lower"], out["upper"] = min(float(low), out["rho"]), max(float(high), out["rho"])
    return out


def _half_widths(values: np.ndarray, interval: tuple[Any, Any] | None, name: str) -> np.ndarray:
    """Scales (2, n) below and above each value from its 95% interval (0 where unknown)."""
    if interval is None:
        return np.zeros((2, values.size))
    try:
        low, high = (np.asarray(v, dtype=float) for v in interval)
    except (TypeError, ValueError) as exc:
        raise TokendimError(f"{name} must be (lower, upper), one value each per model.") from exc
    if low.shape != values.shape or high.shape != values.shape:
        raise TokendimError(f"{name} must be (lower, upper), one value each per model.")
    z = 1.959963984540054
    below = np.nan_to_num(np.clip(values - low, 0.0, None), nan=0.0) / z
    above = np.nan_to_num(np.clip(high - values, 0.0, None), nan=0.0) / z
    return np.stack([below, above])


def _jitter(
    values: np.ndarray, spread: np.ndarray, pick: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The picked models' values, shape (B, n): one split-normal draw per model and replicate,
    shared by its copies (a model picked twice is one model, its copies tie)."""
    z = rng.standard_normal(pick.shape)
    drawn = values + z * np.where(z < 0, spread[0], spread[1])
    return np.take_along_axis(drawn, pick, axis=1)


@dataclass
class SweepResult:
    """The results of :func:`sweep`.

    Attributes
    ----------
    curves : pandas.DataFrame
        One row per model, estimator and layer: ``model``, ``estimator``, ``layer``,
        ``depth``, ``dimension``, ``lower``, ``upper``, ``n_tokens``, ``n_distinct`` ...
    metrics : pandas.DataFrame
        One row per model and estimator: the metrics of :func:`~tokendim_widgets.summarize`
        with their intervals, the model's shape and its quality (``loss``,
        ``bits_per_byte``, each with ``_lower``/``_upper``).
    models : pandas.DataFrame
        One row per model: ``model``, ``ref``, ``status`` (computed, cached, failed),
        ``error``, ``seconds``, ``worker``.
    settings : dict
        The prompts and options of the sweep (used by :meth:`session`).

    Examples
    --------
    >>> result = sweep(["smollm2-135m", "minilm-l6"], "narrative")  # doctest: +SKIP
    >>> result.models[["model", "status"]]  # doctest: +SKIP
    >>> result.correlation()  # Spearman of working dimension and bits per byte  # doctest: +SKIP
    """

    curves: pd.DataFrame
    metrics: pd.DataFrame
    models: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> pd.DataFrame:
        """The failed models and their error messages."""
        failed = self.models[self.models["status"] == "failed"]
        return failed[["model", "error"]].reset_index(drop=True)

    def correlation(
        self,
        x: str = "bits_per_byte",
        y: str = "working_dimension",
        *,
        estimator: str | None = None,
        n_boot: int = 2000,
        seed: int = 0,
    ) -> dict[str, float]:
        """Spearman correlation of two metrics across models, with its bootstrap interval.

        Each model's own interval (the ``_lower``/``_upper`` columns, where present) is
        carried into the correlation's interval (see :func:`spearman`).

        Parameters
        ----------
        x, y : str
            Columns of :attr:`metrics`.
        estimator : str, optional
            Which estimator's rows (default: the first of the sweep).
        n_boot, seed : int
            See :func:`spearman`.

        Returns
        -------
        dict
            ``rho``, ``lower``, ``upper``, ``n``.
        """
        rows = self._rows(estimator)
        return spearman(
            rows[x],
            rows[y],
            x_interval=_interval_of(rows, x),
            y_interval=_interval_of(rows, y),
            n_boot=n_boot,
            seed=seed,
        )

    def _rows(self, estimator: str | None) -> pd.DataFrame:
        if self.metrics.empty:
            return self.metrics
        name = estimator or str(self.metrics["estimator"].iloc[0])
        rows = self.metrics[self.metrics["estimator"] == name]
        if rows.empty:
            known = ", ".join(self.metrics["estimator"].unique())
            raise TokendimError(f"No estimator {name!r} in this sweep; choose one of {known}.")
        return rows

    def summary(self) -> str:
        """A text summary: metrics per model with intervals, quality, correlation, errors."""
        from .analysis import format_metrics

        parts = []
        if not self.metrics.empty:
            table = self.metrics.set_index(
                self.metrics["model"] + " / " + self.metrics["estimator"]
            )
            table.index.name = "model / estimator"
            parts.append(format_metrics(table))
            quality = self.metrics.drop_duplicates("model").set_index("model")
            lines = ["", "quality (95% intervals over prompts):"]
            for model, row in quality.iterrows():
                if np.isfinite(row["bits_per_byte"]):
                    lines.append(
                        f"  {model}: bits/byte {row['bits_per_byte']:.3f} "
                        f"[{row['bits_per_byte_lower']:.3f}, {row['bits_per_byte_upper']:.3f}]"
                        f", loss {row['loss']:.3f} nats"
                    )
                else:
                    lines.append(f"  {model}: -- ({row['quality_note']})")
            parts.append("\n".join(lines))
            for name in self.metrics["estimator"].unique():
                r = self.correlation(estimator=name)
                if np.isfinite(r["rho"]):
                    parts.append(
                        f"Spearman(bits per byte, working dimension; {name}) = {r['rho']:.2f} "
                        f"[{r['lower']:.2f}, {r['upper']:.2f}] over {r['n']} models "
                        "(bootstrap over models)"
                    )
        for _, row in self.models.iterrows():
            parts.append(
                f"{row['model']}: {row['status']} in {row['seconds']:.1f} s on {row['worker']}"
                + (f": {row['error']}" if row["status"] == "failed" else "")
            )
        return "\n".join(parts)

    def write(self, out: str | os.PathLike[str], *, format: str | None = None) -> list[Path]:
        """Write curves, metrics and models as Parquet or CSV, and ``summary.txt``.

        Parameters
        ----------
        out : str or path
            Output folder (created).
        format : {"parquet", "csv"}, optional
            Default Parquet when pyarrow is installed, else CSV.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        if format is None:
            try:
                import pyarrow  # noqa: F401

                format = "parquet"
            except ImportError:
                format = "csv"
        check_choice(format, "format", ("parquet", "csv"))
        folder = Path(out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = []
            for name in ("curves", "metrics", "models"):
                frame: pd.DataFrame = getattr(self, name)
                path = folder / f"{name}.{format}"
                if format == "parquet":
                    frame.to_parquet(path, index=False)
                else:
                    frame.to_csv(path, index=False)
                written.append(path)
            summary = folder / "summary.txt"
            summary.write_text(self.summary() + "\n", encoding="utf-8")
        except OSError as exc:
            raise TokendimError(f"Cannot write the sweep report to {folder}: {exc}.") from exc
        return [*written, summary]

    def session(self, model: str, **params: Any) -> Any:
        """A :class:`~tokendim_widgets.Session` on one model of the sweep (same prompts).

        Its extraction is read from the cache the sweep filled. Pass it to
        :class:`~tokendim_widgets.Explorer` (``Explorer(session=...)``) to see its layers.
        """
        from .session import Session

        refs = dict(zip(self.models["model"], self.models["ref"], strict=True))
        if model not in refs:
            raise TokendimError(f"No model {model!r} in this sweep; choose one of {list(refs)}.")
        settings = dict(self.settings)
        estimator = settings.pop("estimator", "twonn")
        merged = {"estimator": estimator, **settings, **params}
        return Session(model=refs[model], **merged)


# ---- running -------------------------------------------------------------------------------
def _labels(models: Mapping[str, Any] | Iterable[Any]) -> list[tuple[str, str]]:
    if isinstance(models, Mapping):
        pairs = [(str(k), os.fspath(v)) for k, v in models.items()]
    elif isinstance(models, str | os.PathLike):
        pairs = [(os.fspath(models), os.fspath(models))]
    else:
        pairs = [(os.fspath(m), os.fspath(m)) for m in models]
    if not pairs:
        raise TokendimError("sweep() needs at least one model.")
    seen: set[str] = set()
    for label, _ in pairs:
        if label in seen:
            raise TokendimError(
                f"Model {label!r} is listed twice; give each model once (or a dict of labels)."
            )
        seen.add(label)
    return pairs


def _run_local(jobs: list[ModelJob], tick: Callable[[dict[str, Any]], None]) -> list[dict]:
    results = []
    for job in jobs:
        result = run_model(job)
        tick(result)
        results.append(result)
    return results


def _run_ray(
    jobs: list[ModelJob],
    tick: Callable[[dict[str, Any]], None],
    *,
    address: str | None,
    num_gpus: float | None,
    max_retries: int,
    runtime_env: dict[str, Any] | None,
) -> list[dict]:
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError as exc:
        raise TokendimError(
            "executor='ray' needs Ray: pip install 'tokendim-widgets[ray]' (or use "
            "executor='local')."
        ) from exc
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:
            raise TokendimError(
                f"Cannot connect to the Ray cluster at {address!r}: {exc}. Start it with "
                "`ray start --head` or pass the address of a running cluster."
            ) from exc
    try:
        if num_gpus is None:
            num_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        remote = ray.remote(run_model)
        pending = {}
        for job in jobs:
            options: dict[str, Any] = {
                "num_cpus": 1,
                "num_gpus": num_gpus,
                "max_retries": max_retries,
                "retry_exceptions": False,
                "name": f"tokendim-sweep:{job.label}",
            }
            if runtime_env is not None:
                options["runtime_env"] = runtime_env
            pending[remote.options(**options).remote(job)] = job
        done: dict[str, dict[str, Any]] = {}
        waiting = list(pending)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            job = pending[ready[0]]
            try:
                result = ray.get(ready[0])
            except RayError as exc:  # the worker died more often than max_retries
                result = {
                    "label": job.label,
                    "curves": None,
                    "metrics": None,
                    "status": "failed",
                    "error": _message(exc),
                    "worker": "",
                    "seconds": math.nan,
                }
            done[job.label] = result
            tick(result)
        return [done[job.label] for job in jobs]
    finally:
        if started_here:
            ray.shutdown()


def sweep(
    models: Mapping[str, Any] | Iterable[Any],
    prompts: Any,
    *,
    estimators: Sequence[Any] = ("twonn",),
    quality: bool = True,
    executor: str = "local",
    address: str | None = None,
    cloud: str = "all",
    drop_first: bool = True,
    max_tokens: int | None = None,
    max_length: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    num_gpus: float | None = None,
    max_retries: int = 3,
    runtime_env: dict[str, Any] | None = None,
    progress: bool | SweepProgress = True,
) -> SweepResult:
    """Run the same prompts through many models: curves, metrics and quality of each.

    Parameters
    ----------
    models : list of model references, or dict of label -> reference
        Built-in aliases, hub ids, local folders or ``.gguf`` files.
    prompts : PromptSet, list of str, built-in set name or file path
        The prompts every model reads.
    estimators : sequence, default ("twonn",)
        Estimator specs (names or ``(name, params)`` pairs); the first one is the default of
        :meth:`SweepResult.correlation` and :meth:`SweepResult.session`.
    quality : bool, default True
        Measure next-token loss and bits per byte (NaN with a note for encoders).
    executor : {"local", "ray"}, default "local"
        ``"local"`` runs the models one after another in this process; ``"ray"`` runs one
        Ray task per model.
    address : str, optional
        Ray cluster address (``"auto"``, ``"127.0.0.1:6379"``, ``"ray://host:10001"``);
        default: the cluster Ray is already connected to, else a new local one.
    cloud, drop_first : see :func:`~tokendim_widgets.id_curve`
    max_tokens, max_length, device, dtype : see :func:`~tokendim_widgets.extract`
    cache : bool, default True
        Read and write cached results (hidden states and per-model sweep results).
    cache_dir : str or path, optional
        Cache folder (default ``$TOKENDIM_CACHE_DIR``); on a cluster, a path every node sees.
    num_gpus : float, optional
        GPUs per Ray task (default 1 when the cluster has GPUs, else 0).
    max_retries : int, default 3
        How often Ray reruns a model whose worker died.
    runtime_env : dict, optional
        Ray runtime environment of the tasks (e.g. ``{"env_vars": {...}}``).
    progress : bool or callable, default True
        A tqdm bar over models; a callable is called as ``progress(done, total, model)``.

    Returns
    -------
    SweepResult
        ``.curves``, ``.metrics``, ``.models``, ``.errors``; ``.write(folder)`` for a report.

    Raises
    ------
    TokendimError
        No models, a model listed twice, an unknown executor, Ray not installed or not
        reachable. Problems of one model (unknown name, too few tokens) do not raise: they
        are reported in ``.errors``.

    Examples
    --------
    >>> result = sweep(["smollm2-135m", "minilm-l6"], "mixed")  # doctest: +SKIP
    >>> result.metrics[["model", "working_dimension", "bits_per_byte"]]  # doctest: +SKIP
    """

    check_choice(executor, "executor", EXECUTORS)
    if isinstance(estimators, str):
        estimators = (estimators,)
    if not estimators:
        raise TokendimError("sweep() needs at least one estimator, e.g. estimators=['twonn'].")
    from .analysis import as_estimator

    for spec in estimators:
        as_estimator(spec)  # a bad estimator is the user's error for every model: raise now
    pairs = _labels(models)
    prompt_set = as_prompt_set(prompts)
    root = str(Store(cache_dir).root) if cache else None
    options = {
        "cloud": cloud,
        "drop_first": bool(drop_first),
        "max_tokens": max_tokens,
        "max_length": max_length,
        "device": device,
        "dtype": dtype,
        "quality": bool(quality),
        "n_boot": 1000,
    }
    jobs = [
        ModelJob(label, ref, prompt_set, tuple(estimators), options, root) for label, ref in pairs
    ]
    shown = progress if callable(progress) else progress is True
    bar = Progress(shown, len(jobs), f"sweep ({executor})", unit="model", notes=True)

    def tick(result: dict[str, Any]) -> None:
        bar.advance(1, result["label"], postfix=f"{result['label']}: {result['status']}")

    try:
        if executor == "local":
            results = _run_local(jobs, tick)
        else:
            results = _run_ray(
                jobs,
                tick,
                address=address,
                num_gpus=num_gpus,
                max_retries=max_retries,
                runtime_env=runtime_env,
            )
    finally:
        bar.close()
    refs = dict(pairs)
    curves = [r["curves"] for r in results if r["curves"] is not None]
    metrics = [r["metrics"] for r in results if r["metrics"] is not None]
    first = estimators[0]
    settings = {
        "prompts": prompt_set,
        "estimator": first
        if isinstance(first, str)
        else (first[0] if isinstance(first, tuple) else "twonn"),
        "cloud": cloud,
        "drop_first": bool(drop_first),
        "max_tokens": max_tokens,
        "max_length": max_length,
        "device": device,
    }
    return SweepResult(
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        metrics=pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(),
        models=pd.DataFrame(
            {
                "model": [r["label"] for r in results],
                "ref": [refs[r["label"]] for r in results],
                "status": [r["status"] for r in results],
                "error": [r["error"] for r in results],
                "seconds": [r["seconds"] for r in results],
                "worker": [r["worker"] for r in results],
            }
        ),
        settings=settings,
    )
