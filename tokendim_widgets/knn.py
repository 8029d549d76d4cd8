"""Exact k-nearest-neighbour graphs on torch, and the one duplicates policy of every estimator.

:func:`search` removes copies of rows (exact and up to float noise), then finds the exact
Euclidean neighbours of the distinct rows: a float32 screen of tiled products over the centred
cloud selects candidates, their distances are recomputed as norms of differences, and each
row's selection is verified against the screen's error bound (rows it cannot certify are
searched again, in float64 if need be). The design and its measurements: docs/knn.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .devices import (
    free_memory,
    full_float32,
    is_out_of_memory,
    product_unit_roundoff,
    resolve_device,
)
from .errors import TokendimError
from .validation import check_float, check_int

__all__ = [
    "DEFAULT_RTOL",
    "KNNGraph",
    "TooFewPoints",
    "as_points",
    "build_graph",
    "column_mean",
    "deduplicate",
    "float32_error",
    "graph_from_arrays",
    "knn",
    "search",
]

#: Rows closer than this fraction of the cloud's RMS radius are copies of one another. Far
#: below any real neighbour distance (a 2-D cloud of 10^6 points has neighbours ~1e-3 of its
#: radius apart) and far above float32 noise on a copy (~1e-7 of its norm).
DEFAULT_RTOL = 1e-5

# Rows (and columns) of one square tile of the screening products: a tile's products and its
# top-m selections stay near the caches on a CPU; on a GPU each launch costs, so tiles are large.
_CPU_TILE = 1024
_GPU_TILE = 8192
# Bytes of the gathered candidate rows of one re-rank step: small, so the rows are differenced
# while still in the caches (docs/knn.md).
_RERANK_BYTES = 4 * 2**20
# Smallest tile the out-of-memory retry goes down to before it gives up.
_MIN_TILE = 256


def _rerank_bytes(dev: torch.device, tile: int) -> int:
    """Bytes of one re-rank step: cache-sized on the CPU; on a GPU, where each step is a few
    kernel launches, as large as a screening tile's buffer."""
    return _RERANK_BYTES if dev.type == "cpu" else max(_RERANK_BYTES, 4 * tile * tile)


# --------------------------------------------------------------------------------------------
# input checks


def as_points(X: Any, name: str = "X") -> torch.Tensor:
    """``X`` checked and as a 2-D float32 or float64 torch tensor, as the search takes it.

    Shares memory with numpy input when it can (read-only arrays are copied). Raises
    :class:`~tokendim_widgets.errors.TokendimError` for anything but a non-empty, finite,
    real 2-D array; integers become float64, float16 and bfloat16 float32 (exactly).

    Examples
    --------
    >>> as_points([[1, 2], [3, 4]]).dtype
    torch.float64
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TokendimError(f"{name} must be a 2-D array of numbers: {exc}") from None
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TokendimError(f"{name} must be a 2-D array of numbers, got dtype {arr.dtype}.")
        if np.iscomplexobj(arr):
            raise TokendimError(f"{name} must be real-valued, got dtype {arr.dtype}.")
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        elif not arr.flags.writeable:
            # Memory-mapped cache entries are read-only; torch.from_numpy warns on those
            # (and tensors must not write through to the cache), so take a copy.
            arr = np.array(arr)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise TokendimError(
            f"{name} must be 2-D (points x features), got shape {tuple(t.shape)}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if t.is_complex():
        raise TokendimError(f"{name} must be real-valued, got dtype {t.dtype}.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)  # float16/bfloat16: upcasting is exact
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise TokendimError(f"{name} is empty (shape {tuple(t.shape)}): give it points.")
    # A sum is finite only if every term is (NaN and inf propagate); only a sum that is not
    # (or that overflowed) needs the element-wise check, which costs 3-4x more.
    if not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise TokendimError(
            f"{name} has non-finite values (NaN or inf) in {bad} rows: remove or fix them "
            "before estimating."
        )
    return t


def _check_k(k: Any, n: int, what: str = "points") -> int:
    k = check_int(k, "k", 1)
    if n < k + 1:
        raise TokendimError(
            f"{k} neighbours need at least {k + 1} {what}, but there are {n}. "
            "Use a smaller k or more points."
        )
    return k


# --------------------------------------------------------------------------------------------
# the search


def knn(
    X: Any,
    k: int,
    *,
    device: str | torch.device | None = "auto",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest neighbours of every row of ``X`` (the row itself excluded).

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n, D)
        The points. float32 and float64 are used as given; other dtypes are converted.
    k : int
        Neighbours per point, ``1 <= k <= n - 1``.
    device : str or torch.device, default "auto"
        Where the products run: ``"auto"`` picks CUDA, then MPS, else the CPU (with the
        threads torch is set to use; this function changes no global torch setting).
    chunk_size : int, optional
        Rows (and columns) of one tile of the screening products: 1024 on the CPU, 8192 on
        a GPU by default. Memory beyond the input is a few copies of it plus a few tiles.

    Returns
    -------
    distances : numpy.ndarray of float64, shape (n, k)
        Ascending distances to the k nearest other rows, recomputed as norms of differences
        of the rows (relative accuracy ~1e-6 for float32 input, ~1e-15 for float64).
    indices : numpy.ndarray of int64, shape (n, k)
        Their row indices; exact ties are ordered by index. Duplicated rows are neighbours of
        one another at distance 0 (use :func:`search` to remove them first).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [10.0, 10.0]]) + 1e6
    >>> d, i = knn(X, 2, device="cpu")
    >>> d[0].tolist(), i[0].tolist()
    ([1.0, 3.0], [1, 2])
    """
    t = as_points(X)
    n = int(t.shape[0])
    k = _check_k(k, n)
    dev = resolve_device(device)
    distances, indices, _ = _search(t, k, dev, chunk_size)
    return distances, indices


def float32_error(dim: int) -> float:
    """Relative error bound of a float32 squared distance (or product sum) over ``dim`` terms.

    Rounding of the centred rows, of the products and of sums over D terms (blocked BLAS sums
    grow like sqrt(D) in practice), with a safety factor of 8: 2.8e-5 at D = 768. The kNN
    verification and the correlation dimension's exact counting share it. Where torch may
    round float32 products to TF32 or bfloat16 (``set_float32_matmul_precision``), the bound
    widens by four units of that rounding (inputs and norms, both sides); the kNN search
    itself runs in full float32 (:func:`~tokendim_widgets.devices.full_float32`).
    """
    eps = float(torch.finfo(torch.float32).eps)
    return 8.0 * (2.0 + math.sqrt(dim)) * eps + 4.0 * product_unit_roundoff()


def _margin(k: int) -> int:
    # Extra candidates re-ranked directly: they absorb the screen's ranking noise among
    # near-ties. Each point's selection is verified afterwards (and searched again if it cannot
    # be), so the margin trades re-rank work (a gathered row per candidate) against rows
    # searched twice.
    return max(4, k // 8)


#: Rows per step of the centring passes. Fixed (not the tile size), so the mean and the
#: squared norms, hence the duplicate threshold, come out the same bits whichever caller.
_CENTRE_STEP = 4096


def column_mean(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Column mean of the rows ``t`` on ``dev``, in float64 (float32 on MPS).

    Accumulated in fixed chunks of rows, so that no float64 copy of ``t`` is made and every
    caller (the search's centring, the correlation dimension's) gets the same bits.

    Examples
    --------
    >>> column_mean(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), torch.device("cpu")).tolist()
    [2.0, 4.0]
    """
    acc_dtype = torch.float64 if dev.type != "mps" else torch.float32
    total = torch.zeros(t.shape[1], dtype=acc_dtype, device=dev)
    for s in range(0, t.shape[0], _CENTRE_STEP):
        total += t[s : s + _CENTRE_STEP].to(dev, acc_dtype).sum(dim=0)
    return total / t.shape[0]


def _centred(
    t: torch.Tensor,
    dev: torch.device,
    *,
    keep_rows: bool = True,
    order: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(float64 mean, centred rows in float32 (none unless keep_rows), their squared norms).

    Centred in the input's precision (float64 input keeps its small differences on top of a
    large offset), then rounded to float32 for the products. With ``order`` the rows and
    norms come in that order (the screen's), so no second centred copy is made.
    """
    n, dim = int(t.shape[0]), int(t.shape[1])
    mean = column_mean(t, dev)
    rows_dtype = t.dtype if dev.type != "mps" else torch.float32
    mean_in = mean.to(rows_dtype)
    xc = torch.empty((n if keep_rows else 0, dim), dtype=torch.float32, device=dev)
    sq32 = torch.empty(n, dtype=torch.float32, device=dev)
    for s in range(0, n, _CENTRE_STEP):
        rows = t[s : s + _CENTRE_STEP] if order is None else t[order[s : s + _CENTRE_STEP]]
        part = (rows.to(dev, rows_dtype) - mean_in).to(torch.float32)
        sq32[s : s + _CENTRE_STEP] = part.pow(2).sum(dim=1)
        if keep_rows:
            xc[s : s + _CENTRE_STEP] = part
    return mean, xc, sq32


def _rms(sq32: torch.Tensor) -> float:
    """Root-mean-square distance to the mean, from the centred squared norms."""
    total = float(sq32.cpu().to(torch.float64).sum())
    return math.sqrt(total / max(1, sq32.numel()))


class _Screen:
    """Approximate squared distances of tiles of the centred cloud, for candidate selection:
    ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` from one float32 product per tile."""

    def __init__(self, xc: torch.Tensor, sq32: torch.Tensor) -> None:
        self.left = xc
        self.sq = sq32
        self._out: torch.Tensor | None = None  # the tile buffer (see tile)

    def tile(self, a: int, b: int, c: int, d: int) -> torch.Tensor:
        """Approximate squared distances of rows a:b to rows c:d, float32.

        The result lives in a buffer that the next call overwrites: a fresh tile would be
        fresh pages from the system, whose faults cost a good part of the products' time.
        """
        rows, cols = b - a, d - c
        if self._out is None or self._out.numel() < rows * cols:
            self._out = torch.empty(rows * cols, dtype=torch.float32, device=self.left.device)
        block = self._out[: rows * cols].view(rows, cols)
        torch.addmm(
            self.sq[c:d].unsqueeze(0), self.left[a:b], self.left[c:d].t(), alpha=-2.0, out=block
        )
        return block.add_(self.sq[a:b].unsqueeze(1))

    def rows(self, rows: torch.Tensor, c: int, d: int) -> torch.Tensor:
        """Approximate squared distances of the given rows to rows c:d."""
        block = torch.addmm(
            self.sq[c:d].unsqueeze(0), self.left[rows], self.left[c:d].t(), alpha=-2.0
        )
        return block.add_(self.sq[rows].unsqueeze(1))


def _merge(
    best_v: torch.Tensor, best_i: torch.Tensor, v: torch.Tensor, i: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The m smallest of two candidate lists per row (values and their column indices)."""
    vals = torch.cat([best_v, v], dim=1)
    idx = torch.cat([best_i, i], dim=1)
    keep = min(m, vals.shape[1])
    vals, pos = torch.topk(vals, keep, dim=1, largest=False, sorted=False)
    return vals, torch.gather(idx, 1, pos)


class _Best:
    """The m smallest screened values offered to each row, and each row's threshold.

    The threshold (an upper bound on what can still enter the row's m best) lets a tile be
    screened with one comparison per entry: only entries below it are offered. Offers are
    kept as they come, per block of rows, and merged into the rows' m best (one sort of
    (row, value) keys over the kept and the offered, the first m of each row kept) when a
    block holds ``4 m`` offers per row, and at the end: one sort per merge, instead of work
    on every offer. A merge also lowers each row's threshold to its m-th kept value.

    Every entry not kept was at least its row's threshold at the time, or cut by a merge (at
    least the m-th kept then): the row's final threshold, or its m-th kept value if lower,
    bounds everything left out, as the verification needs.
    """

    def __init__(self, n: int, m: int, tile: int, dev: torch.device) -> None:
        self.m, self.tile = m, tile
        inf = float("inf")
        self.values = torch.full((n, m), inf, dtype=torch.float32, device=dev)
        self.indices = torch.zeros((n, m), dtype=torch.int64, device=dev)
        self.threshold = torch.full((n,), inf, dtype=torch.float32, device=dev)
        self._offers: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self._count: dict[int, int] = {}
        self._merged: set[int] = set()  # blocks whose rows hold kept values

    def offer(
        self, start: int, count: int, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor
    ) -> None:
        """Offer entries to rows ``start .. start + count`` (``rows``: positions in that range,
        any order; ``cols``: global indices)."""
        if rows.numel() == 0:
            return
        self._offers.setdefault(start, []).append((rows, cols, vals))
        self._count[start] = self._count.get(start, 0) + int(rows.numel())
        if self._count[start] > 4 * self.m * count:
            self._merge(start, count)

    def seed(self, start: int, values: torch.Tensor, indices: torch.Tensor) -> None:
        """Keep ``values`` (and their column ``indices``) as the first of rows ``start ..``."""
        stop, q = start + values.shape[0], values.shape[1]
        self.values[start:stop, :q] = values
        self.indices[start:stop, :q] = indices
        self._merged.add(start)

    def flush(self, n: int) -> None:
        """Merge every waiting offer."""
        for start in list(self._offers):
            self._merge(start, min(self.tile, n - start))

    def _merge(self, start: int, count: int) -> None:
        offers = self._offers.pop(start)
        self._count.pop(start)
        m, dev = self.m, self.values.device
        stop = start + count
        rows = torch.cat([o[0] for o in offers])
        cols = torch.cat([o[1] for o in offers])
        vals = torch.cat([o[2] for o in offers])
        if start in self._merged:  # the kept ones compete again
            rows = torch.cat([torch.arange(count, device=dev).repeat_interleave(m), rows])
            cols = torch.cat([self.indices[start:stop].reshape(-1), cols])
            vals = torch.cat([self.values[start:stop].reshape(-1), vals])
        self._merged.add(start)
        # One sort of (row, value) keys groups the offers by row, ascending: a float32's bits,
        # negatives' flipped, order as the float does.
        bits = vals.view(torch.int32)
        bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
        key, order = torch.sort((rows << 32) | (bits.to(torch.int64) + 2**31))
        rows = key >> 32
        per_row = torch.bincount(rows, minlength=count)
        first = torch.cumsum(per_row, 0) - per_row
        rank = torch.arange(rows.numel(), device=dev) - first[rows]
        keep = torch.nonzero(rank < m).squeeze(1)
        slot = rows.index_select(0, keep) * m + rank.index_select(0, keep)
        pick = order.index_select(0, keep)
        values = self.values[start:stop].view(-1)
        values.fill_(float("inf"))
        values.index_copy_(0, slot, vals.index_select(0, pick))
        self.indices[start:stop].view(-1).index_copy_(0, slot, cols.index_select(0, pick))
        # The m-th kept value, once there are m (before that the threshold stands).
        mth = torch.where(per_row >= m, self.values[start:stop, m - 1], float("inf"))
        self.threshold[start:stop] = torch.minimum(self.threshold[start:stop], mth)


def _select_symmetric(
    screen: _Screen, n: int, m: int, tile: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The m smallest screened squared distances of every row (self excluded by index).

    Returns their values (inf in empty slots), their indices, and per row a value that every
    entry left out screened at or above (what the verification needs).

    Distances are symmetric, so only tiles on and above the diagonal are computed, and each
    off-diagonal tile offers candidates both to its rows and to its columns: half the
    products of a row-by-row search. The diagonal tiles come first: a quantile of each row's
    values there gives it a threshold before the other tiles are screened against it.
    """
    inf = float("inf")
    best = _Best(n, m, tile, dev)
    starts = list(range(0, n, tile))
    for a in starts:
        b = min(n, a + tile)
        block = screen.tile(a, b, a, b)
        block.fill_diagonal_(inf)  # self, by index
        others = b - a - 1
        # The diagonal tile is a sample of `others` of the n - 1 other points: its q-th
        # smallest value estimates the row's (q (n - 1) / others)-th smallest overall, so q is
        # set for about _SAMPLE_MARGIN * m of those. The estimate is the row's threshold from
        # the start (the m-th of the tile would be ~(n / tile) times too loose). A row left
        # with fewer than k candidates is searched again (rare: see _SAMPLE_MARGIN).
        want = math.ceil(_SAMPLE_MARGIN * m * others / max(1, n - 1))
        sampled = m < n - 1 and want < others
        q = min(others, m, max(_SAMPLE_MIN, want)) if sampled else min(others, m)
        group = _group_size(b - a, q) if sampled else 1
        if group > 1:
            # The q-th smallest of the minima of column groups: at least the row's q-th
            # smallest (a little above it where two of those share a group), found in a
            # fraction of the time of a top-q over the whole tile. Entries up to it are
            # offered (so at least q; every entry left out is above the threshold).
            width = (b - a) // group * group
            mins = block[:, :width].view(b - a, width // group, group).amin(dim=2)
            if width < b - a:
                mins = torch.cat([mins, block[:, width:].amin(dim=1, keepdim=True)], dim=1)
            limit = torch.topk(mins, q, dim=1, largest=False, sorted=False).values.amax(dim=1)
            best.threshold[a:b] = limit
            i, j = torch.nonzero(block <= limit.unsqueeze(1), as_tuple=True)
            best.offer(a, b - a, i, j + a, block[i, j])
        elif q > 0:
            v, i = torch.topk(block, q, dim=1, largest=False, sorted=False)
            best.seed(a, v, i + a)
            if sampled or q == m:  # else: too few points to estimate; no threshold yet
                best.threshold[a:b] = v.max(dim=1).values
    limit_buf = torch.empty(tile * tile, dtype=torch.float32, device=dev)
    wanted_buf = torch.empty(tile * tile, dtype=torch.bool, device=dev)
    for a in starts:
        b = min(n, a + tile)
        for c in starts:
            if c <= a:
                continue
            d = min(n, c + tile)
            block = screen.tile(a, b, c, d)
            t_rows, t_cols = best.threshold[a:b], best.threshold[c:d]
            # One pass over the tile finds the entries either side wants (a few per row), by
            # flat position (index_select on flat tensors is several times faster than
            # two-dimensional indexing). Into reused buffers, as the tile itself.
            width, size = d - c, (b - a) * (d - c)
            limit = torch.maximum(
                t_rows.unsqueeze(1), t_cols.unsqueeze(0), out=limit_buf[:size].view(b - a, width)
            )
            wanted = torch.lt(block, limit, out=wanted_buf[:size].view(b - a, width))
            flat = torch.nonzero(wanted.view(-1)).squeeze(1)
            v = block.view(-1).index_select(0, flat)
            del block, wanted, limit
            i, j = torch.div(flat, width, rounding_mode="floor"), flat % width
            # Each entry to the side whose threshold it is under: the rows', then the columns'.
            sides = ((a, b, i, j + c, t_rows), (c, d, j, i + a, t_cols))
            for start, stop, own, other, thr in sides:
                pick = torch.nonzero(v < thr.index_select(0, own)).squeeze(1)
                best.offer(
                    start,
                    stop - start,
                    own.index_select(0, pick),
                    other.index_select(0, pick),
                    v.index_select(0, pick),
                )
    best.flush(n)
    # Left out: entries at or above their row's threshold, and entries cut by a flush (at or
    # above the m-th kept). A row with fewer than m kept has inf slots (index 0): they are
    # masked in the re-rank, and its bound is its threshold.
    top = torch.minimum(best.values.max(dim=1).values, best.threshold)
    return best.values, best.indices, top


def _group_size(width: int, q: int) -> int:
    """Columns per group for a row's q-th smallest from group minima (1: a plain top-q).

    At most q / 4 of the groups are then expected to hold two of the row's q smallest, so
    the threshold stays within ~1/8 of the q-th smallest; groups of 8 cost least.
    """
    for group in (8, 4, 2):
        if width // group >= 4 * q:
            return group
    return 1


def _select_rows(
    screen: _Screen, rows: torch.Tensor, n: int, m: int, tile: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The m smallest screened squared distances of the given rows to all rows."""
    f = rows.numel()
    best_v = torch.full((f, m), float("inf"), dtype=torch.float32, device=dev)
    best_i = torch.zeros((f, m), dtype=torch.int64, device=dev)
    for c in range(0, n, tile):
        d = min(n, c + tile)
        block = screen.rows(rows, c, d)
        inside = (rows >= c) & (rows < d)
        block[torch.nonzero(inside).flatten(), rows[inside] - c] = float("inf")
        v, i = torch.topk(block, min(m, d - c), dim=1, largest=False, sorted=False)
        best_v, best_i = _merge(best_v, best_i, v, i + c, m)
    return best_v, best_i


def _search(
    t: torch.Tensor,
    k: int,
    dev: torch.device,
    chunk_size: int | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(distances, indices) of :func:`knn`, and the rows' RMS radius (for the copies rule).

    The products run in full float32 whatever torch's precision settings (the verification
    bounds assume it). On an accelerator, an out-of-memory error frees the memory and runs
    the search again with tiles half as wide, down to ``_MIN_TILE`` rows.
    """
    tile = chunk_size
    while True:
        out_of_memory = False
        try:
            with full_float32():
                return _search_tiles(t, k, dev, tile)
        except Exception as exc:
            if dev.type == "cpu" or not is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:  # outside the except block: its frames hold the search's tensors
            free_memory()
            current = min(int(t.shape[0]), int(tile) if tile else _GPU_TILE)
            if current <= _MIN_TILE:
                raise TokendimError(
                    f"Out of memory on {dev} for the kNN search of {int(t.shape[0])} points "
                    f"even with tiles of {current} rows: free GPU memory, use fewer tokens "
                    "(max_tokens), or search on the CPU (device='cpu')."
                ) from None
            tile = max(_MIN_TILE, current // 2)


def _search_tiles(
    t: torch.Tensor,
    k: int,
    dev: torch.device,
    chunk_size: int | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One exact search with the given tile (see :func:`_search`)."""
    n, dim = int(t.shape[0]), int(t.shape[1])
    m = min(n - 1, k + _margin(k))
    # The re-rank differences the input rows in their own precision (MPS has no float64).
    wide = torch.float64 if dev.type != "mps" else torch.float32
    rows_dev = t.to(dev) if dev.type != "mps" else t.to(dev, torch.float32)
    if chunk_size is None:
        tile = _GPU_TILE if dev.type != "cpu" else _CPU_TILE
    else:
        tile = check_int(chunk_size, "chunk_size", 1)
    tile = min(n, tile)
    step = max(tile, 1024)
    rerank_bytes = _rerank_bytes(dev, tile)

    # The tiles follow a seeded random order of the points: the diagonal tile, which sets
    # each row's first threshold, is then a uniform sample of the cloud (in input order it
    # would hold the row's own prompt, and set thresholds too tight).
    perm = (
        torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(dev) if n > tile else None
    )
    inverse = None
    if perm is not None:
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(n, device=dev)
    # The centred rows exist once, in the screen's order (xs, norms sqs); sq32 holds the
    # norms in input order. Beside the input, no other copy of the cloud is made.
    mean, xs, sqs = _centred(rows_dev, dev, order=perm)
    sq32 = sqs if inverse is None else sqs[inverse]
    rms = _rms(sq32)

    def select_rows(scr: _Screen, rows: torch.Tensor, width: int) -> tuple[Any, torch.Tensor]:
        """:func:`_select_rows` of input rows, candidates as input indices."""
        if perm is None or inverse is None:
            return _select_rows(scr, rows, n, width, tile, dev)
        approx, cand = _select_rows(scr, inverse[rows], n, width, tile, dev)
        return approx, perm[cand]

    approx, cand, top = _select_symmetric(_Screen(xs, sqs), n, m, tile, dev)
    if perm is not None and inverse is not None:
        approx, cand, top = approx[inverse], perm[cand[inverse]], top[inverse]
    valid = torch.isfinite(approx)  # a row may hold fewer than m candidates
    count = valid.sum(dim=1)
    del approx
    out_d = torch.empty((n, k), dtype=torch.float64)
    out_i = torch.empty((n, k), dtype=torch.int64)
    dist, idx = _rerank_graph(rows_dev, cand, valid, rerank_bytes)
    out_d.copy_(dist[:, :k])
    out_i.copy_(idx[:, :k])
    del cand, dist, idx
    if m == n - 1 and bool(valid.all()):  # every other point was a candidate
        return out_d.numpy(), out_i.numpy(), rms
    q2 = sq32.to(wide)
    r_k = out_d[:, -1].to(dev, wide)
    failed = _unverified(top.to(wide), q2, r_k, dim)
    # The rows a threshold left with fewer than m candidates are screened again on their own
    # (a full row search certifies most); the others the screen could not certify go
    # straight to float64.
    again = failed[count[failed] < m]
    failed = failed[count[failed] == m]
    if again.numel():
        still = [failed]
        for s in range(0, int(again.numel()), step):
            rows = again[s : s + step]
            approx, cand = select_rows(_Screen(xs, sqs), rows, m)
            dist, idx = _rerank(rows_dev, rows_dev[rows], cand, rerank_bytes)
            cpu_rows = rows.cpu()
            out_d[cpu_rows] = dist[:, :k].to("cpu", torch.float64)
            out_i[cpu_rows] = idx[:, :k].to("cpu")
            bad = _unverified(
                approx.max(dim=1).values.to(wide),
                q2[rows],
                out_d[cpu_rows, -1].to(dev, wide),
                dim,
            )
            still.append(rows[bad])
        failed = torch.cat(still)
    # The float64 search over the rows nothing else certified, in chunks of rows, so its
    # (rows x columns) float64 blocks stay within a few tiles' memory.
    wide_rows = max(1, (tile * tile) // max(m, min(n, tile)))
    for s in range(0, int(failed.numel()), wide_rows):
        rows = failed[s : s + wide_rows]
        d_k, i_k = _search_wide(t, rows_dev, rows, mean, m, dev, tile, rerank_bytes)
        cpu_rows = rows.cpu()
        out_d[cpu_rows] = d_k[:, :k].to("cpu", torch.float64)
        out_i[cpu_rows] = i_k[:, :k].to("cpu")
    return out_d.numpy(), out_i.numpy(), rms


#: The diagonal tile's sample sets each row's first threshold for about this many times m
#: candidates: its count over all points is ~2.5 m, give or take 1 / sqrt(q) relative (q >= 4
#: order statistics of the sample), so fewer than m is rare and fewer than k rarer still.
_SAMPLE_MARGIN = 2.5
_SAMPLE_MIN = 4


def _unverified(top: torch.Tensor, q2: torch.Tensor, r_k: torch.Tensor, dim: int) -> torch.Tensor:
    """Positions of the rows whose candidates might have missed a true neighbour.

    A point j left out of a row's candidates screened at ``>= top``. Were it truly nearer
    than the k-th neighbour found (``r_k``), the screen's error on it would have to exceed the
    slack this function checks. Such a j has ``|x_j| <= |q| + r_k``, which bounds that
    error (:func:`float32_error`). Returns indices (on the rows' device) of rows to search
    again, more precisely.
    """
    eps_rel = float32_error(dim)
    q = q2.sqrt()
    reach = q + r_k
    bound = eps_rel * (reach * reach + 2.0 * q * reach + q2)
    slack = top - r_k * r_k
    return torch.nonzero(slack <= 2.0 * bound).flatten()


def _rerank(
    points: torch.Tensor,
    queries: torch.Tensor,
    cand: torch.Tensor,
    step_bytes: int = _RERANK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct distances of each query row to its candidate rows of ``points``, sorted.

    Computed as norms of differences (never through the |x|^2 + |y|^2 - 2 x.y expansion),
    in the precision of ``points``, ``step_bytes`` of gathered rows at a time.
    """
    c, m = cand.shape
    dim = points.shape[1]
    dist = torch.empty((c, m), dtype=points.dtype, device=points.device)
    step = min(c, max(1, step_bytes // max(1, m * dim * points.element_size())))
    # index_select into one reused buffer (half the time of fancy indexing on the CPU), then
    # differences in place and their norms: 3-4x faster than torch.cdist on the same rows.
    buf = torch.empty((step * m, dim), dtype=points.dtype, device=points.device)
    for a in range(0, c, step):
        b = min(c, a + step)
        idx = cand[a:b].reshape(-1)
        nb = torch.index_select(points, 0, idx, out=buf[: idx.numel()]).view(b - a, m, dim)
        nb.sub_(queries[a:b].unsqueeze(1))
        torch.linalg.vector_norm(nb, dim=2, out=dist[a:b])
    return _by_distance(dist, cand)


def _by_distance(dist: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's candidates in ascending distance, exact ties by the lower index (sorted by
    index first, whatever order the selection produced, then stably by distance)."""
    cand, perm = torch.sort(cand, dim=1)
    dist, order = torch.sort(torch.gather(dist, 1, perm), dim=1, stable=True)
    return dist, torch.gather(cand, 1, order)


def _rerank_graph(
    points: torch.Tensor,
    cand: torch.Tensor,
    valid: torch.Tensor,
    step_bytes: int = _RERANK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_rerank` of every row of ``points`` against its own candidates, each pair once.

    Near neighbours are often mutual (on the benchmark cloud 35% of the 80 candidates of a
    row list that row too), so the distinct pairs are measured once, ``|x_hi - x_lo|`` (the
    same value from either side: the difference is negated exactly), and handed to both.
    """
    n, m = cand.shape
    dev = points.device
    rows = torch.arange(n, device=dev).repeat_interleave(m)
    cols = cand.reshape(-1)
    key = torch.minimum(rows, cols) * n + torch.maximum(rows, cols)
    del rows, cols
    key, order = torch.sort(key)
    first = torch.ones(key.numel(), dtype=torch.bool, device=dev)
    torch.ne(key[1:], key[:-1], out=first[1:])
    pair_of = torch.empty_like(order)
    pair_of[order] = torch.cumsum(first, 0) - 1  # each (row, slot)'s distinct pair
    del order
    pairs = key[first]
    del key, first
    lo = torch.div(pairs, n, rounding_mode="floor")
    hi = pairs - lo * n
    del pairs
    dim = points.shape[1]
    total = int(lo.numel())
    measured = torch.empty(total, dtype=points.dtype, device=dev)
    step = max(1, min(total, step_bytes // max(1, dim * points.element_size())))
    buf_hi = torch.empty((step, dim), dtype=points.dtype, device=dev)
    buf_lo = torch.empty((step, dim), dtype=points.dtype, device=dev)
    for a in range(0, total, step):
        b = min(total, a + step)
        # lo ascends, so its rows are read in order (and mostly from the caches).
        diff = torch.index_select(points, 0, hi[a:b], out=buf_hi[: b - a])
        diff.sub_(torch.index_select(points, 0, lo[a:b], out=buf_lo[: b - a]))
        torch.linalg.vector_norm(diff, dim=1, out=measured[a:b])
    dist = measured[pair_of].view(n, m)
    dist.masked_fill_(~valid, float("inf"))  # empty slots sort last
    return _by_distance(dist, cand)


def _search_wide(
    t: torch.Tensor,
    rows_dev: torch.Tensor,
    rows: torch.Tensor,
    mean: torch.Tensor,
    m: int,
    dev: torch.device,
    chunk: int,
    step_bytes: int = _RERANK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Search ``rows`` again with float64 products (rare: huge-norm rows, degenerate data).

    Columns are streamed in blocks and a running top-m is kept, so no float64 copy of the
    whole cloud is made.
    """
    n = int(t.shape[0])
    rows = rows.to(dev)
    f = rows.numel()
    queries = rows_dev[rows].to(mean.dtype) - mean
    best_v = torch.full((f, m), float("inf"), dtype=mean.dtype, device=dev)
    best_i = torch.zeros((f, m), dtype=torch.int64, device=dev)
    cols = max(m, min(n, chunk))
    for s in range(0, n, cols):
        e = min(n, s + cols)
        xc = rows_dev[s:e].to(mean.dtype) - mean
        sq = xc.pow(2).sum(dim=1)
        block = torch.addmm(sq.unsqueeze(0), queries, xc.t(), beta=1.0, alpha=-2.0)
        inside = (rows >= s) & (rows < e)
        block[torch.nonzero(inside).flatten(), rows[inside] - s] = float("inf")
        idx = torch.arange(s, e, device=dev).expand(f, -1)
        vals = torch.cat([best_v, block], dim=1)
        both = torch.cat([best_i, idx], dim=1)
        best_v, pos = torch.topk(vals, m, dim=1, largest=False, sorted=False)
        best_i = torch.gather(both, 1, pos)
    return _rerank(rows_dev, rows_dev[rows], best_i, step_bytes)


# --------------------------------------------------------------------------------------------
# duplicates


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph with edges (a, b): each node's smallest member."""
    label = np.arange(n)
    if a.size == 0:
        return label
    while True:
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            return label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        # Pointer jumping: every node points straight at its current root.
        while True:
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt


def _exact_duplicates(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keep, inverse) of bitwise-identical rows, keep in ascending row order."""
    rows = np.ascontiguousarray(x)
    n, width = rows.shape[0], rows.dtype.itemsize * rows.shape[1]
    void = rows.view(np.dtype((np.void, width))).ravel()
    candidates = np.arange(n)
    if width > _HEAD_BYTES:
        # Copies share their leading bytes: hash those (cheap), and compare whole rows only
        # where a hash repeats (copies, or the rare rows that agree on their first bytes).
        head = np.ascontiguousarray(rows.view(np.uint8).reshape(n, width)[:, :_HEAD_BYTES])
        words = head.view(np.uint64)
        key = words[:, 0].copy()
        for j in range(1, words.shape[1]):
            key *= np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2^64, the same for every row
            key ^= words[:, j]
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        repeats = np.zeros(n, dtype=bool)
        same = sorted_key[1:] == sorted_key[:-1]
        repeats[1:] |= same
        repeats[:-1] |= same
        candidates = np.sort(order[repeats])
    rep = np.arange(n)
    if candidates.size:
        _, first, inv = np.unique(void[candidates], return_index=True, return_inverse=True)
        rep[candidates] = candidates[first[inv.ravel()]]  # the first row of each group
    keep = np.flatnonzero(rep == np.arange(n)).astype(np.int64)
    return keep, np.searchsorted(keep, rep).astype(np.int64)


#: Leading bytes of a row hashed to find candidate copies (whole rows are compared after).
_HEAD_BYTES = 64


def _close_pairs(x: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows at distance <= thr (exact), found through 1-D projections.

    A projection on a unit vector never increases a distance, so pairs within ``thr`` are
    among the pairs whose projections are within ``thr``: sort the projections, list those
    candidates and check each exactly. Of three random directions the one with the fewest
    candidates is used; for ordinary clouds that is a few per point.
    """
    n, dim = x.shape
    if n < 2 or thr <= 0.0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rng = np.random.default_rng(0x7D)
    u = rng.standard_normal((dim, 3))
    u /= np.linalg.norm(u, axis=0)
    proj = np.empty((n, 3))
    for s in range(0, n, 8192):
        proj[s : s + 8192] = x[s : s + 8192].astype(np.float64) @ u
    # Slack for the rounding of the projections themselves.
    scale = float(np.abs(proj).max()) if proj.size else 0.0
    window = thr * (1.0 + 1e-9) + 64.0 * np.finfo(np.float64).eps * (scale + thr) * math.sqrt(dim)
    best: tuple[int, np.ndarray, np.ndarray] | None = None
    for j in range(3):
        order = np.argsort(proj[:, j], kind="stable")
        p = proj[order, j]
        ends = np.searchsorted(p, p + window, side="right")
        counts = ends - np.arange(n) - 1
        total = int(counts.sum())
        if best is None or total < best[0]:
            best = (total, order, counts)
    assert best is not None
    total, order, counts = best
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    # Candidate pairs (position i, position i + 1 + r) in sorted order, in bounded batches.
    starts = np.arange(n)
    batch = max(1, (16 * 2**20) // (8 * max(dim, 1)))
    pos = 0
    while pos < n:
        # Take rows until the batch holds about `batch` candidate pairs.
        csum = np.cumsum(counts[pos:])
        stop = pos + max(1, int(np.searchsorted(csum, batch, side="right")))
        stop = min(stop, n)
        cnt = counts[pos:stop]
        first = np.repeat(starts[pos:stop], cnt)
        offset = np.arange(first.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        second = first + 1 + offset
        ia, ib = order[first], order[second]
        for s in range(0, ia.size, batch):
            pa, pb = ia[s : s + batch], ib[s : s + batch]
            diff = x[pa].astype(np.float64) - x[pb].astype(np.float64)
            close = np.einsum("ij,ij->i", diff, diff) <= thr * thr
            found_a.append(pa[close])
            found_b.append(pb[close])
        pos = stop
    return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)


def deduplicate(X: Any, *, rtol: float = DEFAULT_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """Find the distinct rows of ``X``: exact copies and copies up to float noise are merged.

    Rows closer than ``rtol`` times the RMS radius of the distinct rows (their root-mean-square
    distance to their mean) are copies; copies of copies are merged too. Each group is kept
    as its first row. The threshold is invariant to rotation, translation and scaling.

    Parameters
    ----------
    X : array-like, shape (n, D)
    rtol : float, default :data:`DEFAULT_RTOL`
        Relative threshold; 0 merges only bitwise-identical rows.

    Returns
    -------
    keep : numpy.ndarray of int64, shape (n_unique,)
        Ascending indices of the representative rows in ``X``.
    inverse : numpy.ndarray of int64, shape (n,)
        For each row of ``X``, the position in ``keep`` of its representative
        (``X[keep][inverse]`` is ``X`` with every copy replaced by its representative).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0 + 1e-12], [5.0, 2.0]])
    >>> keep, inverse = deduplicate(X)
    >>> keep.tolist(), inverse.tolist()
    ([0, 1, 4], [0, 1, 0, 1, 2])
    """
    t = as_points(X)
    rtol = check_float(rtol, "rtol", 0.0, math.inf, high_open=True)
    x = t.numpy() if t.device.type == "cpu" else t.cpu().numpy()
    keep, inverse = _exact_duplicates(x)
    if keep.size < 2:
        return keep, inverse
    xu = x[keep]
    # The same centring arithmetic as the search (search() takes the radius from there).
    thr = rtol * _rms(_centred(torch.from_numpy(xu), torch.device("cpu"), keep_rows=False)[2])
    if thr == 0.0:
        return keep, inverse
    return _merge_close(xu, keep, inverse, thr)


def _merge_close(
    xu: np.ndarray, keep: np.ndarray, inverse: np.ndarray, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the rows ``xu`` (= X[keep]) closer than ``thr``: (keep, inverse) of X."""
    a, b = _close_pairs(xu, thr)
    if a.size == 0:
        return keep, inverse
    label = _components(keep.size, a, b)
    reps = np.unique(label)  # the smallest member of each group, ascending
    position = np.searchsorted(reps, label)
    return keep[reps], position[inverse]


# --------------------------------------------------------------------------------------------
# the graph


@dataclass(frozen=True, eq=False)
class KNNGraph:
    """A kNN graph over the distinct points of a cloud, with the map back to its rows.

    Attributes
    ----------
    distances : numpy.ndarray of float64, shape (n_unique, k)
        Ascending distances from each distinct point to its k nearest distinct points.
    indices : numpy.ndarray of int64, shape (n_unique, k)
        Their positions among the distinct points (0 .. n_unique - 1), not rows of X.
    keep : numpy.ndarray of int64, shape (n_unique,)
        Row of the original cloud that represents each distinct point (ascending).
    inverse : numpy.ndarray of int64, shape (n_points,)
        For each original row, the position of its representative in ``keep``.
    threshold : float
        Distance at or below which two rows were taken as copies (0 if not deduplicated).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> g = build_graph(np.vstack([X, X[:10]]), 8, device="cpu")
    >>> g.n_points, g.n_duplicates, g.k, g.distances.shape
    (110, 10, 8, (100, 8))
    >>> g.expand(np.arange(100.0)).shape
    (110,)
    """

    distances: np.ndarray
    indices: np.ndarray
    keep: np.ndarray
    inverse: np.ndarray
    threshold: float = 0.0

    def __post_init__(self) -> None:
        d, i = self.distances, self.indices
        if d.ndim != 2 or i.shape != d.shape:
            raise TokendimError(
                f"distances and indices must be 2-D of one shape, got {d.shape} and {i.shape}."
            )
        if self.keep.shape != (d.shape[0],):
            raise TokendimError(
                f"keep must hold one row per distinct point ({d.shape[0]}), got {self.keep.shape}."
            )
        if self.inverse.ndim != 1:
            raise TokendimError("inverse must be 1-D.")

    @property
    def n_points(self) -> int:
        """Rows of the original cloud."""
        return int(self.inverse.shape[0])

    @property
    def n_unique(self) -> int:
        """Distinct points the graph is built on."""
        return int(self.distances.shape[0])

    @property
    def n_duplicates(self) -> int:
        """Rows merged into another row's group."""
        return self.n_points - self.n_unique

    @property
    def k(self) -> int:
        """Neighbours per point."""
        return int(self.distances.shape[1])

    def truncate(self, k: int) -> KNNGraph:
        """The same graph with only the first ``k`` neighbours of each point."""
        k = check_int(k, "k", 1)
        if k > self.k:
            raise TokendimError(
                f"This graph holds {self.k} neighbours per point; {k} were asked for. "
                f"Build it with build_graph(X, {k})."
            )
        return KNNGraph(
            self.distances[:, :k], self.indices[:, :k], self.keep, self.inverse, self.threshold
        )

    def expand(self, values: Any) -> np.ndarray:
        """Per-distinct-point ``values`` (first axis n_unique) -> one entry per original row."""
        arr = np.asarray(values)
        if arr.ndim == 0 or arr.shape[0] != self.n_unique:
            raise TokendimError(
                f"expand needs one value per distinct point ({self.n_unique}), got shape "
                f"{arr.shape}."
            )
        return arr[self.inverse]


class TooFewPoints(TokendimError):
    """Raised by :func:`search` when fewer than ``k + 1`` points are distinct.

    Attributes
    ----------
    k : int
        Neighbours asked for.
    n_unique : int
        Distinct points left after merging copies.
    n_merged : int
        Rows merged into another row's group.
    """

    def __init__(self, k: int, n_unique: int, n_merged: int) -> None:
        extra = f" ({n_merged} duplicate rows were merged)" if n_merged else ""
        super().__init__(
            f"{k} neighbours need at least {k + 1} distinct points, but there are "
            f"{n_unique}{extra}. Use a smaller k or more (distinct) points."
        )
        self.k, self.n_unique, self.n_merged = k, n_unique, n_merged


def search(
    X: Any,
    k: int | Callable[[int], int],
    *,
    device: str | torch.device | None = "auto",
    dedupe: bool = True,
    rtol: float = DEFAULT_RTOL,
    chunk_size: int | None = None,
) -> KNNGraph:
    """Remove duplicate rows, then search the exact k nearest neighbours of the rest.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n, D)
    k : int or callable
        Neighbours per distinct point; needs at least ``k + 1`` distinct points. A callable
        is given the number of distinct points and returns ``k`` (estimators whose range
        depends on it).
    device : str or torch.device, default "auto"
    dedupe : bool, default True
        Merge copies first (see docs/knn.md, duplicates policy). With ``False`` the graph is
        over every row and copies are neighbours at distance 0; estimators fitted on it
        apply :func:`graph_from_arrays`'s rule to it.
    rtol : float, default :data:`DEFAULT_RTOL`
        Relative threshold of :func:`deduplicate`.
    chunk_size : int, optional
        Tile size of :func:`knn`.

    Returns
    -------
    KNNGraph

    Raises
    ------
    TooFewPoints
        Fewer than ``k + 1`` distinct points.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(1).normal(size=(50, 3))
    >>> search(np.vstack([X, X]), 5, device="cpu").n_duplicates
    50
    """
    t = as_points(X)
    need = k if callable(k) else _constant(check_int(k, "k", 1))
    n = int(t.shape[0])
    rtol = check_float(rtol, "rtol", 0.0, math.inf, high_open=True)
    if dedupe:
        # Bitwise copies first; near copies are looked for in the graph below (a near copy
        # is some row's nearest neighbour), which spares a pass over all rows.
        keep, inverse = _exact_duplicates(t.numpy() if t.device.type == "cpu" else t.cpu().numpy())
    else:
        keep, inverse = np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    n_k = int(need(int(keep.size)))
    if keep.size < n_k + 1:
        raise TooFewPoints(n_k, int(keep.size), n - int(keep.size))
    dev = resolve_device(device)
    sub = t if keep.size == n else t[torch.from_numpy(keep).to(t.device)]
    d, i, rms = _search(sub, n_k, dev, chunk_size)
    # deduplicate()'s threshold, from the search's centring (the same arithmetic on the CPU).
    thr = rtol * rms if dedupe else 0.0
    # The graph's distances are accurate to ~1e-6 relative: a pair within the threshold shows
    # as a nearest neighbour below it (with that slack); then merge exactly, as deduplicate().
    if thr > 0.0 and float(d[:, 0].min()) <= thr * (1.0 + 1e-5):
        x = t.numpy() if t.device.type == "cpu" else t.cpu().numpy()
        merged, inverse = _merge_close(x[keep], keep, inverse, thr)
        if merged.size < keep.size:
            keep = merged
            n_k = int(need(int(keep.size)))
            if keep.size < n_k + 1:
                raise TooFewPoints(n_k, int(keep.size), n - int(keep.size))
            sub = t[torch.from_numpy(keep).to(t.device)]
            d, i, _ = _search(sub, n_k, dev, chunk_size)
    return KNNGraph(d, i, keep, inverse, thr)


#: The name :func:`search` had first (graphs, projections and notebooks use it).
build_graph = search


def _constant(k: int) -> Callable[[int], int]:
    return lambda n_unique: k


def graph_from_arrays(distances: Any, indices: Any, *, rtol: float = DEFAULT_RTOL) -> KNNGraph:
    """A :class:`KNNGraph` from raw ``(distances, indices)`` arrays, duplicates removed.

    The arrays describe a graph over their own rows (``indices`` are row numbers
    ``0 .. n-1``). Rows are sorted by distance if they are not. Entries pointing at the row
    itself are dropped. Neighbours at a distance ``<= rtol`` times the median last-column
    distance (or exactly 0) are copies: copies are merged (first row of each group kept),
    each kept row loses its copies and repeated copies of one neighbour from its list, and
    the graph is cut to the fewest distinct neighbours any kept row still has.

    Parameters
    ----------
    distances : array-like, shape (n, k)
    indices : array-like of int, shape (n, k)
    rtol : float, default :data:`DEFAULT_RTOL`

    Returns
    -------
    KNNGraph
        ``keep`` and ``inverse`` map the kept rows back to the input rows.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    >>> i = np.array([[1, 2], [0, 2], [0, 1]])
    >>> g = graph_from_arrays(d, i)
    >>> g.keep.tolist(), g.inverse.tolist(), g.distances.tolist()
    ([0, 2], [0, 0, 1], [[1.0], [1.0]])
    """
    try:
        dist = np.asarray(distances, dtype=np.float64)
        idx_raw = np.asarray(indices)
    except (TypeError, ValueError) as exc:
        raise TokendimError(f"knn must be a (distances, indices) pair of arrays: {exc}") from None
    if dist.ndim != 2 or idx_raw.shape != dist.shape:
        raise TokendimError(
            "knn must be a (distances, indices) pair of 2-D arrays of one shape, got "
            f"{dist.shape} and {idx_raw.shape}."
        )
    n, k = dist.shape
    if n < 2 or k < 1:
        raise TokendimError(f"The kNN graph is too small (shape {dist.shape}).")
    if not np.issubdtype(idx_raw.dtype, np.integer) and (
        not np.issubdtype(idx_raw.dtype, np.number)
        or not np.all(np.isfinite(idx_raw))
        or not np.all(np.mod(idx_raw, 1) == 0)
    ):
        raise TokendimError("knn indices must be integers.")
    idx = idx_raw.astype(np.int64)
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise TokendimError("knn distances must be finite and non-negative.")
    if idx.min() < 0 or idx.max() >= n:
        raise TokendimError(
            f"knn indices must be rows of the graph itself (0..{n - 1}); got values in "
            f"[{idx.min()}, {idx.max()}]."
        )
    rtol = check_float(rtol, "rtol", 0.0, math.inf, high_open=True)
    if np.any(np.diff(dist, axis=1) < 0):
        order = np.argsort(dist, axis=1, kind="stable")
        dist = np.take_along_axis(dist, order, axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
    rows = np.arange(n)[:, None]
    is_self = idx == rows
    thr = float(rtol) * float(np.median(dist[:, -1]))
    copy = (dist <= thr) & ~is_self
    a = np.broadcast_to(rows, idx.shape)[copy]
    label = _components(n, a, idx[copy])
    keep = np.unique(label)
    inverse = np.searchsorted(keep, label)
    if keep.size == n and not is_self.any():
        return KNNGraph(dist, idx, keep.astype(np.int64), inverse.astype(np.int64), thr)
    # Rows of the representatives; neighbour entries become group positions.
    d_r, g_r = dist[keep], inverse[idx[keep]]
    own = np.arange(keep.size)[:, None]
    valid = g_r != own
    # A group seen twice in one row (two copies of one neighbour): keep its nearest entry.
    order = np.argsort(g_r, axis=1, kind="stable")
    sorted_g = np.take_along_axis(g_r, order, axis=1)
    repeat_sorted = np.zeros_like(sorted_g, dtype=bool)
    repeat_sorted[:, 1:] = sorted_g[:, 1:] == sorted_g[:, :-1]
    repeat = np.zeros_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    valid &= ~repeat
    counts = valid.sum(axis=1)
    k_eff = int(counts.min())
    if k_eff < 1:
        worst = int(keep[np.argmin(counts)])
        raise TokendimError(
            f"Row {worst} of the kNN graph has no neighbour that is not a copy of itself: "
            "the graph has too many duplicates. Build it from the points with "
            "build_graph(X, k), which removes copies before searching."
        )
    # Move the valid entries to the front of each row, keeping their (ascending) order.
    front = np.argsort(~valid, axis=1, kind="stable")[:, :k_eff]
    return KNNGraph(
        np.take_along_axis(d_r, front, axis=1),
        np.take_along_axis(g_r, front, axis=1).astype(np.int64),
        keep.astype(np.int64),
        inverse.astype(np.int64),
        thr,
    )
