"""2-D pictures of each layer's token cloud: a PCA preview at once, then UMAP from the kNN graph.

:func:`pca_2d` is the instant, seeded preview (axes oriented by their skewness, so the picture
does not flip); :func:`umap_2d` runs umap-learn on the estimators' kNN graph of the distinct
points; :class:`LayerProjector` chains layers so that scrubbing reads as motion;
:func:`warm_up` compiles umap-learn's kernels ahead of time. Promises, cold start and
measurements: docs/projection.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from .devices import as_host_array
from .errors import TokendimError
from .validation import check_choice, check_float, check_int, check_int_or_auto, check_optional_int

if TYPE_CHECKING:
    from types import ModuleType

    from .knn import KNNGraph

__all__ = [
    "UMAP_NEIGHBORS",
    "LayerProjector",
    "align_to",
    "auto_epochs",
    "layer_order",
    "pca_2d",
    "spread_duplicates",
    "umap_2d",
    "umap_available",
    "umap_ready",
    "warm_up",
]

#: umap-learn's ``n_neighbors`` (the point itself counted, as umap-learn counts it): a graph
#: with ``k >= UMAP_NEIGHBORS - 1`` neighbours per point (self excluded) is enough.
UMAP_NEIGHBORS = 15

# Randomized PCA: extra directions carried along and power iterations. The error of the top
# two directions shrinks like (s_12 / s_2) ** (2 * 4 + 1): far below float32 noise unless the
# spectrum is flat, and then any orientation of the plane is as good a picture.
_PCA_OVERSAMPLE = 10
_PCA_POWER_ITERATIONS = 4
# Below this width an exact thin SVD is as fast as the randomized path.
_PCA_EXACT_WIDTH = 32
# Up to this many entries (n * D) the PCA runs its BLAS calls on one thread: its products are
# thin (n x 12), and on a busy machine multithreaded BLAS spends more time synchronising than
# computing (docs/projection.md). Larger clouds keep every thread.
_PCA_SINGLE_THREAD_SIZE = 10_000_000

# n_epochs="auto": a budget of point-epochs (the SGD's work is proportional to the number of
# graph edges, ~n * n_neighbors, times the epochs), bounded below where layouts are visibly
# unconverged and above by umap-learn's own default for small data.
_EPOCH_BUDGET = 750_000
_MIN_EPOCHS = 100
_MAX_EPOCHS = 500

# The umap-learn kernels compiled on the path umap_2d takes (module, attribute). Found by
# listing the numba dispatchers that gain a signature during a fit from a precomputed graph
# (umap-learn 0.5.12); a name missing in another version is skipped.
_UMAP_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch_parallel"),
    ("umap.layouts", "clip"),
)
_CACHE_ENV = "TOKENDIM_UMAP_CACHE"

# Guards the module's lazily created state (BLAS controller, kernel cache, warm-up future).
_state_lock = threading.RLock()

_INSTALL_HINT = (
    'UMAP projections need umap-learn: pip install "tokendim-widgets[umap]" '
    "(or pip install umap-learn). PCA previews (pca_2d) work without it."
)


class _GraphLike(Protocol):
    @property
    def distances(self) -> np.ndarray: ...
    @property
    def indices(self) -> np.ndarray: ...
    @property
    def keep(self) -> np.ndarray: ...
    @property
    def inverse(self) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# input checks


def _as_points(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a finite 2-D float32/float64 numpy array (no copy when it already is one)."""
    X = as_host_array(X)  # a torch tensor on any device, bfloat16 too
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TokendimError(f"{name} must be a 2-D array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TokendimError(f"{name} must be a 2-D array of numbers, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TokendimError(f"{name} must be real-valued, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise TokendimError(
            f"{name} must be 2-D (points x features), got shape {arr.shape}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise TokendimError(f"{name} is empty (shape {arr.shape}): give it points.")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise TokendimError(
            f"{name} has non-finite values (NaN or inf) in {bad} rows: remove or fix them first."
        )
    return arr


# --------------------------------------------------------------------------------------------
# PCA preview


def pca_2d(X: Any, *, seed: int = 0) -> np.ndarray:
    """Project ``X`` on its top two principal directions: the instant preview of a layer.

    Parameters
    ----------
    X : array-like, shape (n, D)
        The points (rows). Any float dtype; centred internally (mean in float64, so large
        common offsets, like the attention-sink token's norm, cost no precision).
    seed : int, default 0
        Seed of the randomized subspace iteration (clouds wider than 32 features). It changes
        the result only at the level of float noise.

    Returns
    -------
    numpy.ndarray of float32, shape (n, 2)
        Principal component scores, first column the direction of largest variance. Each
        column is oriented so that its third moment is positive (the largest score decides on
        symmetric clouds): the picture does not depend on the sign of the basis, so it does
        not flip between runs. A cloud with one feature (or one distinct point) gets zeros
        in the missing column(s).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 50)) * np.linspace(5.0, 0.1, 50)
    >>> Y = pca_2d(X)
    >>> Y.shape, Y.dtype
    ((500, 2), dtype('float32'))
    >>> bool(np.allclose(pca_2d(-X), Y, atol=1e-4))
    True
    """
    arr = _as_points(X)
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    n, width = arr.shape
    # The mean in float64, the subtraction in the input's precision: rounding the mean to
    # float32 shifts every point alike, which PCA does not see.
    mean = arr.mean(axis=0, dtype=np.float64).astype(arr.dtype)
    centred = arr - mean
    work = centred.dtype
    out = np.zeros((n, 2), dtype=np.float64)
    if n < 2:
        return out.astype(np.float32)
    n_comp = min(2, width, n)
    with _blas_threads(n * width):
        if min(n, width) <= _PCA_EXACT_WIDTH + _PCA_OVERSAMPLE:
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            directions = vt[:n_comp].T
        else:
            directions = _randomized_directions(centred, n_comp, rng)
        scores = (centred @ directions.astype(work)).astype(np.float64)
    out[:, :n_comp] = scores
    return _orient(out).astype(np.float32)


_blas_controller: Any = None


def _blas_threads(size: int) -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for a small PCA, when threadpoolctl is there (it comes with
    scikit-learn); otherwise, and for large clouds, BLAS as configured.

    The limit is process-wide while it lasts (tens of milliseconds): BLAS calls of other
    threads in that window run on one thread too, slower but unchanged.
    """
    global _blas_controller
    if size > _PCA_SINGLE_THREAD_SIZE:
        return contextlib.nullcontext()
    with _state_lock:
        if _blas_controller is None:
            try:
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
            except Exception:  # not installed, or a platform it cannot inspect
                _blas_controller = False
        controller = _blas_controller
    if controller is False:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def _randomized_directions(centred: np.ndarray, n_comp: int, rng: np.random.Generator) -> Any:
    """Top ``n_comp`` right singular vectors by subspace iteration (Halko et al. 2011)."""
    q = min(n_comp + _PCA_OVERSAMPLE, *centred.shape)
    basis = rng.standard_normal((centred.shape[1], q)).astype(centred.dtype)
    # Orthonormalise after every product: without it the columns collapse onto the top
    # direction in float32 after two or three iterations.
    basis, _ = np.linalg.qr(centred @ basis)
    for _ in range(_PCA_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(centred.T @ basis)
        basis, _ = np.linalg.qr(centred @ basis)
    small = basis.T @ centred  # (q, D): its right singular vectors are the directions sought
    _, _, vt = np.linalg.svd(small.astype(np.float64), full_matrices=False)
    return vt[:n_comp].T


def _orient(Y: np.ndarray) -> np.ndarray:
    """Flip each column so that its third moment is positive (largest |value| on ties)."""
    for j in range(Y.shape[1]):
        col = Y[:, j]
        scale = float(np.max(np.abs(col)))
        if scale == 0.0:
            continue
        third = float(np.mean((col / scale) ** 3))
        # A third moment within float noise of zero (a symmetric cloud) cannot decide: then the
        # point farthest from the centre does.
        if abs(third) > 1e-6:
            sign = math.copysign(1.0, third)
        else:
            sign = math.copysign(1.0, float(col[int(np.argmax(np.abs(col)))]))
        Y[:, j] = col * sign
    return Y


# --------------------------------------------------------------------------------------------
# alignment


def align_to(
    Y: Any,
    reference: Any,
    *,
    scale: bool = True,
    reflection: bool = True,
) -> np.ndarray:
    """Rotate (and reflect), scale and shift ``Y`` to best match ``reference``, row by row.

    Orthogonal Procrustes with scaling: the least-squares fit of ``s * Y @ R + t`` to the
    reference over the rows both define (rows with NaN in either are left out of the fit and
    transformed like the others). Rows must be the same tokens in the same order, as with two
    layers' layouts of one cloud.

    Parameters
    ----------
    Y : array-like, shape (n, d)
        The layout to move.
    reference : array-like, shape (n, d)
        The layout to match (the adjacent layer's).
    scale : bool, default True
        Fit a common scale factor ``s``; with False, ``s = 1``.
    reflection : bool, default True
        Allow ``R`` to be a reflection (a mirrored picture is the same picture); with False,
        ``R`` is a proper rotation.

    Returns
    -------
    numpy.ndarray of float32, shape (n, d)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(100, 2))
    >>> R = np.array([[0.0, -1.0], [-1.0, 0.0]])  # a reflection
    >>> B = 3.0 * A @ R + 5.0
    >>> bool(np.allclose(align_to(B, A), A, atol=1e-5))
    True
    """
    Ya = np.asarray(Y, dtype=np.float64)
    Ra = np.asarray(reference, dtype=np.float64)
    if Ya.ndim != 2 or Ra.shape != Ya.shape:
        raise TokendimError(
            "align_to needs two layouts of the same tokens (same shape, one row per token), "
            f"got {Ya.shape} and {Ra.shape}."
        )
    rows = np.isfinite(Ya).all(axis=1) & np.isfinite(Ra).all(axis=1)
    if int(rows.sum()) < 2:
        raise TokendimError(
            "align_to needs at least two rows defined (finite) in both layouts, got "
            f"{int(rows.sum())}."
        )
    y, r = Ya[rows], Ra[rows]
    y_mean, r_mean = y.mean(axis=0), r.mean(axis=0)
    yc, rc = y - y_mean, r - r_mean
    u, s, vt = np.linalg.svd(yc.T @ rc)
    if not reflection and np.linalg.det(u @ vt) < 0:
        # The best proper rotation flips the axis of the smallest singular value.
        u[:, -1] *= -1.0
        s[-1] *= -1.0
    rotation = u @ vt
    norm = float(np.sum(yc * yc))
    factor = float(s.sum()) / norm if scale and norm > 0.0 else 1.0
    return ((Ya - y_mean) @ rotation * factor + r_mean).astype(np.float32)


# --------------------------------------------------------------------------------------------
# duplicates


def spread_duplicates(Y: Any, inverse: Any, *, amount: float = 0.003) -> np.ndarray:
    """Move the copies of each duplicated point into a small floret around it.

    Rows that share a representative (same ``inverse`` value) sit on one spot of the layout.
    The first row of each group stays; the ``j``-th copy (in row order) moves to radius
    ``amount * rms * sqrt(j)`` at angle ``j`` times the golden angle (a sunflower pattern),
    where ``rms`` is the layout's root-mean-square distance to its centre. Deterministic: no
    random numbers, same rows, same picture.

    Parameters
    ----------
    Y : array-like, shape (n, 2)
        A layout with one row per original row (duplicates at their representative's place).
    inverse : array-like of int, shape (n,)
        Group of each row (``KNNGraph.inverse``).
    amount : float, default 0.003
        Radius of the first copy as a fraction of the layout's RMS radius; 0 returns ``Y``.

    Returns
    -------
    numpy.ndarray of float32, shape (n, 2)

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    >>> Z = spread_duplicates(Y, np.array([0, 0, 1]), amount=0.01)
    >>> bool((Z[0] == Y[0]).all() and (Z[1] != Y[1]).any() and (Z[2] == Y[2]).all())
    True
    """
    out = np.array(Y, dtype=np.float32)
    inv = np.asarray(inverse)
    if out.ndim != 2 or out.shape[1] != 2 or inv.shape != (out.shape[0],):
        raise TokendimError(
            f"spread_duplicates needs an (n, 2) layout and n group labels, got {out.shape} "
            f"and {inv.shape}."
        )
    check_float(amount, "amount", 0.0, math.inf, high_open=True)
    if amount == 0 or out.shape[0] < 2:
        return out
    order = np.argsort(inv, kind="stable")  # rows grouped, each group in row order
    sorted_inv = inv[order]
    starts = np.r_[0, np.flatnonzero(sorted_inv[1:] != sorted_inv[:-1]) + 1]
    rank = np.arange(inv.size) - np.repeat(starts, np.diff(np.r_[starts, inv.size]))
    ranks = np.empty(inv.size, dtype=np.int64)
    ranks[order] = rank
    moved = ranks > 0
    if not moved.any():
        return out
    centre = np.nanmean(out, axis=0)
    rms = float(np.sqrt(np.nanmean(np.sum((out - centre) ** 2, axis=1))))
    if not np.isfinite(rms) or rms == 0.0:
        rms = 1.0
    j = ranks[moved].astype(np.float64)
    radius = amount * rms * np.sqrt(j)
    angle = j * (math.pi * (3.0 - math.sqrt(5.0)))
    out[moved, 0] += (radius * np.cos(angle)).astype(np.float32)
    out[moved, 1] += (radius * np.sin(angle)).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# umap-learn: import, kernel cache, warm-up

_kernels_prepared = False
_warm_future: Future[None] | None = None


def umap_available() -> bool:
    """Whether umap-learn is installed (checked without importing it: the import is slow).

    Examples
    --------
    >>> isinstance(umap_available(), bool)
    True
    """
    import importlib.util

    try:
        return importlib.util.find_spec("umap") is not None
    except (ImportError, ValueError):
        return False


def _import_umap() -> ModuleType:
    """``import umap`` with our error message; prepares the kernel cache once."""
    try:
        import umap
    except ImportError as exc:
        if getattr(exc, "name", None) == "umap":
            raise TokendimError(f"{_INSTALL_HINT} ({exc})") from None
        raise TokendimError(
            f"umap-learn is installed but does not import ({exc}); reinstall it with "
            'pip install --force-reinstall "tokendim-widgets[umap]".'
        ) from exc
    if not hasattr(umap, "UMAP"):
        # PyPI's "umap" is another project that also installs a module named umap.
        raise TokendimError(
            "The installed module 'umap' is not umap-learn: pip uninstall umap, then "
            'pip install "tokendim-widgets[umap]".'
        )
    _prepare_kernels()
    return umap


# Without a pynndescent index umap-learn warns, on every fit from a precomputed graph, that
# transform() of new points is unavailable: we never call it. A narrow filter (that message,
# from umap-learn) is put in place before each fit if it is not there, rather than
# catch_warnings around the fit: that swaps the process-wide filter list and is not
# thread-safe, and fits run on the session's worker thread.
_QUIET_MESSAGE = r".*knn_search_index.*"
_QUIET_MODULE = r"umap\."


def _silence_index_warning() -> None:
    present = any(
        f[0] == "ignore"
        and getattr(f[1], "pattern", None) == _QUIET_MESSAGE
        and f[2] is UserWarning
        and getattr(f[3], "pattern", None) == _QUIET_MODULE
        for f in warnings.filters
    )
    if not present:
        warnings.filterwarnings(
            "ignore", message=_QUIET_MESSAGE, category=UserWarning, module=_QUIET_MODULE
        )


def _cache_enabled() -> bool:
    return os.environ.get(_CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _prepare_kernels() -> None:
    """Turn on numba's on-disk cache for umap-learn's kernels, before their first compile.

    umap-learn compiles them with ``cache=False`` (its default), so every new process pays
    ~5 s to compile them again. ``Dispatcher.enable_caching()`` is what ``cache=True`` does
    at decoration: numba then saves the machine code it compiles and loads it next time
    (invalidated when umap-learn's source files change). The code itself is not touched;
    results are bit-identical (tests/test_projection.py checks it across processes).
    """
    global _kernels_prepared
    with _state_lock:
        if _kernels_prepared:
            return
        _kernels_prepared = True
        if not _cache_enabled():
            return
        import importlib

        for module_name, attr in _UMAP_KERNELS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            enable = getattr(getattr(module, attr, None), "enable_caching", None)
            if enable is None:
                continue  # not a numba dispatcher in this version of umap-learn
            # On a kernel declared cache=True this sets up the same on-disk cache again.
            # No cache locator (a read-only install and no writable user cache): numba
            # raises; the kernels then compile in memory as usual.
            with contextlib.suppress(Exception):
                enable()


def warm_up(background: bool = True, *, parallel: bool = False) -> Future[None]:
    """Import umap-learn and compile the kernels :func:`umap_2d` uses, ahead of time.

    Call it when work that takes longer starts (the session calls it when the model starts
    loading): the first UMAP projection then costs only its own run time. Idempotent: later
    calls return the same future (a failed warm-up is retried).

    Parameters
    ----------
    background : bool, default True
        Run on a daemon thread and return at once; with False, run here and raise
        :class:`TokendimError` if umap-learn is missing. The thread runs at the lowest CPU
        priority (Linux, without ``parallel``): it takes only what the extraction and the
        kNN searches leave idle, instead of slowing the first curve.
    parallel : bool, default False
        Also compile the parallel kernel used by ``umap_2d(..., seed=None)``.

    Returns
    -------
    concurrent.futures.Future
        Done when umap-learn is ready; ``future.result(timeout)`` waits for it and raises what
        the warm-up raised (:class:`TokendimError` if umap-learn is missing).

    Examples
    --------
    >>> future = warm_up(background=True)
    >>> future.result(timeout=600) is None  # doctest: +SKIP
    True
    """
    global _warm_future
    with _state_lock:
        current = _warm_future
        if current is not None and not (current.done() and current.exception() is not None):
            if not parallel or getattr(current, "_tokendim_parallel", False):
                return current
            previous: Future[None] | None = current
        else:
            previous = None
        future: Future[None] = Future()
        future._tokendim_parallel = parallel  # type: ignore[attr-defined]
        _warm_future = future

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        if background and not parallel:
            _background_priority()
        try:
            if previous is not None:
                previous.result()
            _tiny_fit(seed=0)
            if parallel:
                _tiny_fit(seed=None)
        except BaseException as exc:  # the future carries it to whoever waits
            future.set_exception(exc)
        else:
            future.set_result(None)

    if background:
        threading.Thread(target=work, name="tokendim-umap-warm-up", daemon=True).start()
    else:
        work()
        future.result()
    return future


def _background_priority() -> None:
    """Give the calling thread the lowest CPU priority (nice 19), where that is per thread.

    On Linux a thread's nice value is its own (and its children's): a background compile then
    runs on the cores the foreground work leaves idle. Elsewhere nothing changes (there the
    call would name a process, not this thread).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def umap_ready() -> bool:
    """True once :func:`warm_up` has finished successfully (umap-learn imported and compiled).

    Examples
    --------
    >>> isinstance(umap_ready(), bool)
    True
    """
    with _state_lock:
        future = _warm_future
    return future is not None and future.done() and future.exception() is None


def _tiny_fit(seed: int | None) -> None:
    """A fit on 200 points through the very code path (and dtypes) of :func:`umap_2d`."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    sq = np.sum(X.astype(np.float64) ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X.astype(np.float64) @ X.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    indices = np.argsort(d2, axis=1, kind="stable")[:, : UMAP_NEIGHBORS - 1]
    distances = np.sqrt(np.take_along_axis(d2, indices, axis=1))
    idx, dist = _with_self(indices, distances, UMAP_NEIGHBORS)
    _run_umap(X, idx, dist, UMAP_NEIGHBORS, 0.1, 20, pca_2d(X), seed)


def _with_self(
    indices: np.ndarray, distances: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's precomputed graph: the point itself in column 0, then n_neighbors - 1.

    Always int64 indices and float32 distances: numba compiles one specialisation per dtype,
    and the warm-up must compile the one the real call uses.
    """
    m = indices.shape[0]
    idx = np.empty((m, n_neighbors), dtype=np.int64)
    idx[:, 0] = np.arange(m)
    idx[:, 1:] = indices[:, : n_neighbors - 1]
    dist = np.zeros((m, n_neighbors), dtype=np.float32)
    dist[:, 1:] = distances[:, : n_neighbors - 1]
    return idx, dist


# --------------------------------------------------------------------------------------------
# UMAP


def auto_epochs(n_points: int) -> int:
    """Epochs of the UMAP optimisation for ``n_points`` distinct points (``n_epochs="auto"``).

    ``clip(round(750_000 / n), 100, 500)``: 500 up to 1500 points, 150 at 5000, 100 from
    7500 on. Why: each epoch costs time proportional to the graph's edges (~n times the
    neighbours), so a fixed budget of point-epochs keeps one projection near 1.5 s on two idle
    CPU cores (2-3 s under load) whatever the number of tokens. What it costs: on the SmolLM2
    layer-15 cloud (5704 distinct tokens, 131 epochs) trustworthiness at 10 neighbours is 0.914
    against 0.919-0.921 at umap-learn's default of 500 epochs, and the share of 15 nearest
    neighbours kept in 2-D 0.49 against 0.51; at 50 epochs layouts are visibly unconverged
    (0.89-0.90), hence the floor. Starting from the adjacent layer's layout needs no more.

    Examples
    --------
    >>> auto_epochs(1000), auto_epochs(5000), auto_epochs(100_000)
    (500, 150, 100)
    """
    n = max(int(n_points), 1)
    return int(min(_MAX_EPOCHS, max(_MIN_EPOCHS, round(_EPOCH_BUDGET / n))))


def _as_graph(knn: Any, X: np.ndarray, n_neighbors: int) -> _GraphLike:
    """The graph to use: given (a KNNGraph or a (distances, indices) pair) or built here."""
    if knn is None:
        from .knn import build_graph

        return build_graph(X, n_neighbors - 1)
    if isinstance(knn, tuple | list) and len(knn) == 2:
        from .knn import graph_from_arrays

        return graph_from_arrays(knn[0], knn[1])
    if all(hasattr(knn, name) for name in ("distances", "indices", "keep", "inverse")):
        return knn
    raise TokendimError(
        "knn must be a KNNGraph (tokendim_widgets.build_graph(X, k)), a (distances, indices) "
        f"pair of arrays, or None to search here; got {type(knn).__name__}."
    )


def umap_2d(
    X: Any,
    *,
    knn: KNNGraph | tuple[Any, Any] | None = None,
    n_neighbors: int = UMAP_NEIGHBORS,
    min_dist: float = 0.1,
    n_epochs: int | Literal["auto"] = "auto",
    init: Literal["pca", "spectral"] | np.ndarray = "pca",
    seed: int | None = 0,
    jitter: float = 0.0,
    align: bool = True,
) -> np.ndarray:
    """UMAP layout of ``X`` in 2-D, built from a precomputed exact kNN graph.

    Parameters
    ----------
    X : array-like, shape (n, D)
        The points (rows: tokens).
    knn : KNNGraph or (distances, indices) or None
        The graph of ``X`` the estimators use (:func:`tokendim_widgets.build_graph`), with at
        least ``n_neighbors - 1`` neighbours per point, self excluded; extra columns are
        ignored. A ``(distances, indices)`` pair over the rows of ``X`` is deduplicated by
        :func:`tokendim_widgets.knn.graph_from_arrays`. None searches here (exact, torch).
        No other neighbour search runs.
    n_neighbors : int, default 15
        umap-learn's ``n_neighbors`` (the point itself counted).
    min_dist : float, default 0.1
        umap-learn's ``min_dist`` (0 to 1: how tightly points may pack).
    n_epochs : int or "auto", default "auto"
        Optimisation epochs; "auto" is :func:`auto_epochs` of the number of distinct points.
    init : "pca", "spectral" or array of shape (n, 2), default "pca"
        Starting layout: the PCA preview (:func:`pca_2d`; the UMAP then grows out of the
        picture the user saw first), umap-learn's spectral layout, or a layout of the same
        rows (the adjacent layer's: the picture moves instead of re-laying out).
    seed : int or None, default 0
        Fixed: the same inputs give the same layout, bit for bit (serial SGD). None: umap-learn's
        parallel SGD, faster on many cores, not reproducible.
    jitter : float, default 0.0
        Spread the copies of duplicated points into small florets (see
        :func:`spread_duplicates`; 0.003 is a good visible value). 0 stacks them exactly.
    align : bool, default True
        Return the layout aligned (:func:`align_to`) to the starting layout when ``init`` is
        "pca" or an array, so it stays in the frame of the picture it grew from.

    Returns
    -------
    numpy.ndarray of float32, shape (n, 2)
        One row per row of ``X``; duplicates at their representative's position (plus jitter).

    Raises
    ------
    TokendimError
        umap-learn missing (``pip install "tokendim-widgets[umap]"``), a graph with too few
        neighbours or of another cloud, too few distinct points, bad parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from tokendim_widgets.knn import build_graph
    >>> X = np.random.default_rng(0).normal(size=(300, 10)).astype("float32")
    >>> Y = umap_2d(X, knn=build_graph(X, 15), n_epochs=50)  # doctest: +SKIP
    >>> Y.shape  # doctest: +SKIP
    (300, 2)
    """
    arr = _as_points(X)
    n = arr.shape[0]
    n_neighbors = check_int(n_neighbors, "n_neighbors", 2)
    check_float(min_dist, "min_dist", 0.0, 1.0)  # umap-learn's spread is 1
    seed_ = check_optional_int(seed, "seed", 0)
    check_float(jitter, "jitter", 0.0, math.inf, high_open=True)

    graph = _as_graph(knn, arr, n_neighbors)
    keep = np.asarray(graph.keep, dtype=np.int64)
    inverse = np.asarray(graph.inverse, dtype=np.int64)
    distances = np.asarray(graph.distances)
    indices = np.asarray(graph.indices)
    if inverse.shape != (n,):
        raise TokendimError(
            f"The kNN graph describes {inverse.shape[0]} rows but X has {n}: pass the graph "
            "built on this X (same layer, same cloud)."
        )
    m = int(keep.shape[0])
    if m <= n_neighbors:
        raise TokendimError(
            f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} distinct points; "
            f"this cloud has {m}. Lower n_neighbors, add tokens, or use pca_2d."
        )
    if distances.shape[1] < n_neighbors - 1:
        raise TokendimError(
            f"The kNN graph holds {distances.shape[1]} neighbours per point; UMAP with "
            f"n_neighbors={n_neighbors} needs {n_neighbors - 1} (self excluded). Build it with "
            f"build_graph(X, {n_neighbors - 1}) or more, or lower n_neighbors."
        )

    epochs = check_int_or_auto(n_epochs, "n_epochs")
    if isinstance(epochs, str):  # "auto"
        epochs = auto_epochs(m)

    points = np.ascontiguousarray(arr[keep], dtype=np.float32)
    start: np.ndarray | None
    umap_init: Any
    if isinstance(init, str):
        if init == "pca":
            start = pca_2d(points, seed=seed_ or 0)
            umap_init = start
        elif init == "spectral":
            start, umap_init = None, "spectral"
        else:
            raise TokendimError(f"init must be 'pca', 'spectral' or an (n, 2) array, got {init!r}.")
    else:
        full = np.asarray(init, dtype=np.float64)
        if full.shape != (n, 2):
            raise TokendimError(
                f"An init layout needs one row per row of X and two columns, shape ({n}, 2); "
                f"got {full.shape}."
            )
        start = full[keep]
        if not np.all(np.isfinite(start)):
            raise TokendimError("The init layout has NaN or inf rows: give a complete layout.")
        umap_init = start.astype(np.float32)

    idx, dist = _with_self(indices, distances, n_neighbors)
    layout = _run_umap(points, idx, dist, n_neighbors, float(min_dist), epochs, umap_init, seed_)
    if align and start is not None:
        layout = align_to(layout, start)
    out = layout.astype(np.float32)[inverse]
    if jitter > 0:
        out = spread_duplicates(out, inverse, amount=float(jitter))
    return out


def _run_umap(
    points: np.ndarray,
    idx: np.ndarray,
    dist: np.ndarray,
    n_neighbors: int,
    min_dist: float,
    n_epochs: int,
    init: Any,
    seed: int | None,
) -> np.ndarray:
    """umap-learn's fit from a precomputed graph (self in column 0) on distinct points."""
    umap = _import_umap()
    if isinstance(init, np.ndarray):
        init = np.ascontiguousarray(init, dtype=np.float32)
        span = init.max(axis=0) - init.min(axis=0)
        if np.any(span <= 0):
            # umap-learn rescales the init to a box; a flat axis would divide by zero.
            noise = np.random.default_rng(seed or 0).normal(scale=1e-4, size=init.shape)
            init = init + (noise * max(float(span.max()), 1.0)).astype(np.float32)
    model = umap.UMAP(
        n_neighbors=n_neighbors,
        n_components=2,
        min_dist=min_dist,
        n_epochs=n_epochs,
        init=init,
        random_state=seed,
        # A seed makes umap-learn run serially anyway; saying so avoids its warning.
        n_jobs=1 if seed is not None else -1,
        precomputed_knn=(np.ascontiguousarray(idx), np.ascontiguousarray(dist), None),
        verbose=False,
    )
    _silence_index_warning()
    try:
        layout = np.asarray(model.fit_transform(points), dtype=np.float64)
    except ValueError as exc:
        raise TokendimError(f"umap-learn could not lay out this cloud: {exc}") from exc
    bad = np.asarray(~np.isfinite(layout).all(axis=1), dtype=bool)
    if bad.any():
        # umap-learn gives NaN to points left without edges; put each on its nearest
        # neighbour that has a position, so no token disappears from the picture.
        for row in np.flatnonzero(bad):
            good = [j for j in idx[row, 1:] if not bad[j]]
            layout[row] = layout[good[0]] if good else np.nanmean(layout[~bad], axis=0)
    return layout


# --------------------------------------------------------------------------------------------
# layers


def layer_order(n_layers: int, start: int) -> list[int]:
    """Layers nearest to ``start`` first (start, start-1, start+1, start-2, ...).

    The order in which to project the other layers in the background, so that each one can
    start from an adjacent layer that is already done.

    Examples
    --------
    >>> layer_order(5, 1)
    [1, 0, 2, 3, 4]
    """
    if not 0 <= start < n_layers:
        raise TokendimError(f"start must be a layer in 0..{n_layers - 1}, got {start}.")
    return sorted(range(n_layers), key=lambda layer: (abs(layer - start), layer))


class LayerProjector:
    """Projections of the layers of one cloud (same tokens in every layer), aligned in a chain.

    Each layer's UMAP starts from the nearest layer's UMAP already computed (else from this
    layer's PCA preview when there is one, else from its own PCA) and is returned in that
    layout's frame; each PCA preview is aligned (:func:`align_to`) to the nearest preview
    already computed (of two at the same distance, the lower layer). Computing layers in
    :func:`layer_order` from the selected one makes every layer start from an adjacent one, so
    scrubbing through the layers reads as motion. This is the package's one chaining: the
    session's :class:`~tokendim_widgets.results.Results` keeps one projector per cloud.

    The picture of a layer depends on its inputs and on the chain it was started from
    (``init_from_``): compute in the same order for the same pictures. Thread-safe: results are
    stored under a lock (the computations themselves run in the caller's thread).

    Parameters
    ----------
    n_neighbors, min_dist, n_epochs, seed, jitter
        As in :func:`umap_2d` (``jitter`` is applied to UMAP layouts only: a PCA preview does
        not know the duplicates).

    Attributes
    ----------
    layouts_ : dict[(str, int), numpy.ndarray]
        ``("pca" | "umap", layer) -> (n, 2)`` float32 layouts computed so far.
    init_from_ : dict[(str, int), int | None]
        The layer each layout was aligned to (None: the first of its chain).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> layers = [rng.normal(size=(200, 16)) for _ in range(3)]
    >>> proj = LayerProjector()
    >>> previews = [proj.pca(layer, layers[layer]) for layer in layer_order(3, 1)]
    >>> sorted(proj.init_from_.items())
    [(('pca', 0), 1), (('pca', 1), None), (('pca', 2), 1)]
    """

    def __init__(
        self,
        *,
        n_neighbors: int = UMAP_NEIGHBORS,
        min_dist: float = 0.1,
        n_epochs: int | Literal["auto"] = "auto",
        seed: int | None = 0,
        jitter: float = 0.0,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.seed = seed
        self.jitter = jitter
        self.layouts_: dict[tuple[str, int], np.ndarray] = {}
        self.init_from_: dict[tuple[str, int], int | None] = {}
        self._lock = threading.Lock()

    def _nearest(self, kind: str, layer: int) -> tuple[int | None, np.ndarray | None]:
        with self._lock:
            done = [other for (k, other) in self.layouts_ if k == kind and other != layer]
            if not done:
                return None, None
            other = min(done, key=lambda o: (abs(o - layer), o))
            return other, self.layouts_[(kind, other)]

    def layout(self, kind: str, layer: int) -> np.ndarray | None:
        """The layout of ``layer`` computed so far (None if not computed yet)."""
        with self._lock:
            return self.layouts_.get((kind, layer))

    def _store(self, kind: str, layer: int, Y: np.ndarray, source: int | None) -> np.ndarray:
        with self._lock:
            self.layouts_[(kind, layer)] = Y
            self.init_from_[(kind, layer)] = source
        return Y

    def pca(self, layer: int, X: Any) -> np.ndarray:
        """The PCA preview of ``layer`` (rows of ``X``: the tokens), aligned to the nearest one.

        Parameters
        ----------
        layer : int
        X : array-like, shape (n, D)

        Returns
        -------
        numpy.ndarray of float32, shape (n, 2)
        """
        Y = pca_2d(X, seed=self.seed or 0)
        source, reference = self._nearest("pca", layer)
        if reference is not None:
            if reference.shape != Y.shape:
                raise TokendimError(
                    f"Layer {layer} has {Y.shape[0]} tokens but layer {source} had "
                    f"{reference.shape[0]}: one projector serves one cloud (the same tokens)."
                )
            Y = align_to(Y, reference)
        return self._store("pca", layer, Y, source)

    def umap(self, layer: int, X: Any, knn: KNNGraph | tuple[Any, Any] | None = None) -> np.ndarray:
        """The UMAP layout of ``layer``, started from (and aligned to) the nearest layout.

        Parameters
        ----------
        layer : int
        X : array-like, shape (n, D)
        knn : KNNGraph or (distances, indices) or None
            This layer's graph (see :func:`umap_2d`).

        Returns
        -------
        numpy.ndarray of float32, shape (n, 2)
        """
        source, init = self._nearest("umap", layer)
        if init is None:
            with self._lock:
                init = self.layouts_.get(("pca", layer))
        Y = umap_2d(
            X,
            knn=knn,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            n_epochs=self.n_epochs,
            init="pca" if init is None else init,
            seed=self.seed,
            jitter=self.jitter,
        )
        return self._store("umap", layer, Y, source)

    def project_all(
        self,
        layers: Sequence[Any],
        graphs: Sequence[KNNGraph | tuple[Any, Any] | None] | None = None,
        *,
        start: int = 0,
        kind: Literal["pca", "umap"] = "umap",
    ) -> list[np.ndarray]:
        """Project every layer, from ``start`` outwards; returns the layouts in layer order.

        Parameters
        ----------
        layers : sequence of array-like, each (n, D_l)
            The cloud at each layer (same tokens, same order).
        graphs : sequence of KNNGraph or None, optional
            Each layer's graph (UMAP only); None builds them.
        start : int, default 0
            The layer computed first (the selected one).
        kind : "pca" or "umap", default "umap"
        """
        check_choice(kind, "kind", ("pca", "umap"))
        if graphs is not None and len(graphs) != len(layers):
            raise TokendimError(f"{len(layers)} layers but {len(graphs)} graphs.")
        for layer in layer_order(len(layers), start):
            if kind == "pca":
                self.pca(layer, layers[layer])
            else:
                self.umap(layer, layers[layer], None if graphs is None else graphs[layer])
        return [self.layouts_[(kind, layer)] for layer in range(len(layers))]
