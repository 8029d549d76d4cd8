"""On-disk cache of computed results: content-addressed, atomic, verified, memory-mapped.

A :class:`Store` is a folder of entries, one per ``(namespace, key)``, the key a hash of
everything that determines the content (:func:`make_key`). Entries are published whole by one
rename, checked against their checksums when read (a damaged one is removed, never served),
and arrays have their disk space reserved when created. :class:`ResumableWriter` keeps the work
of an interrupted writer for the next one. Layout and guarantees: ``docs/extraction.md``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import platformdirs

from .errors import TokendimError

#: Version of the on-disk layout. Part of every key: bumping it orphans old entries instead of
#: misreading them.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENV_VAR = "TOKENDIM_CACHE_DIR"
#: The application's name in the user cache folder.
APP_NAME = "tokendim-widgets"
_TMP_PREFIX = ".tmp-"
_PARTIAL_PREFIX = ".partial-"
#: A partial (resumable) result untouched this long is abandoned work.
_PARTIAL_STALE_SECONDS = 7 * 24 * 3600
#: A temporary folder older than this is an abandoned write whatever its writer.
_STALE_SECONDS = 24 * 3600
_HASH_CHUNK = 1 << 22

# Entries whose checksums were verified in this process: entry folder -> identity of its files
# (name, size, mtime, ctime, inode) when they were verified. A later read with the same
# identities skips the checksums; any change (a rewrite, a copy, a touch) checks them again.
_verified: dict[str, tuple[tuple[str, int, int, int, int], ...]] = {}
_verified_lock = threading.Lock()


def default_cache_dir() -> Path:
    """The cache root used when none is given.

    Returns
    -------
    pathlib.Path
        ``$TOKENDIM_CACHE_DIR`` if set, else the platform's user cache folder (from
        platformdirs: ``~/.cache/tokendim-widgets`` or ``$XDG_CACHE_HOME/...`` on Linux,
        ``~/Library/Caches/tokendim-widgets`` on macOS,
        ``%LOCALAPPDATA%\\tokendim-widgets\\Cache`` on Windows).

    Examples
    --------
    >>> isinstance(default_cache_dir(), Path)
    True
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def _canonical(obj: Any) -> Any:
    """JSON-ready form of ``obj`` with a single spelling for equal values."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        value = float(obj)
        if not math.isfinite(value):
            return repr(value)
        return value
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    raise TypeError(f"Cannot use a {type(obj).__name__} in a cache key.")


def make_key(*parts: Any) -> str:
    """A content key: hex SHA-256 of the canonical JSON of ``parts`` and the format version.

    Parameters
    ----------
    *parts
        JSON-like values (dicts, lists, str, numbers, None); dict order does not matter.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> make_key({"a": 1, "b": 2}) == make_key({"b": 2, "a": 1})
    True
    >>> make_key({"a": 1}) == make_key({"a": 2})
    False
    """
    text = json.dumps(
        [FORMAT_VERSION, *(_canonical(p) for p in parts)], separators=(",", ":"), sort_keys=True
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name == "manifest":
        raise ValueError(f"Invalid entry file name {name!r}.")
    return name


def _check_part(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value.startswith(".") or "/" in value:
        raise ValueError(f"Invalid store {what} {value!r}.")
    if "\\" in value or ".." in value:
        raise ValueError(f"Invalid store {what} {value!r}.")
    return value


class Entry:
    """A complete, verified entry of a :class:`Store` (read-only).

    Attributes
    ----------
    path : pathlib.Path
        Its folder.
    namespace, key : str
        Where it lives in the store.
    meta : dict
        The metadata given when it was written.
    files : dict
        Manifest record (size, sha256) of each file, by file name.
    """

    def __init__(self, path: Path, namespace: str, key: str, manifest: dict[str, Any]) -> None:
        self.path = path
        self.namespace = namespace
        self.key = key
        self.meta: dict[str, Any] = manifest.get("meta", {})
        self.files: dict[str, dict[str, Any]] = manifest["files"]
        self._tables: dict[str, dict[str, Any]] = manifest.get("tables", {})

    def __repr__(self) -> str:
        return f"Entry({self.namespace}/{self.key[:12]}, {len(self.files)} files)"

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """Array ``name``: a read-only memory map (or an in-memory copy with ``mmap=False``)."""
        path = self.path / f"{_check_name(name)}.npy"
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

    def json(self, name: str) -> Any:
        """JSON document ``name``."""
        return json.loads((self.path / f"{_check_name(name)}.json").read_text(encoding="utf-8"))

    def table(self, name: str) -> pd.DataFrame:
        """Table ``name`` as a DataFrame."""
        info = self._tables.get(name)
        if info is None:
            raise KeyError(f"No table {name!r} in {self!r}.")
        if info["format"] == "parquet":
            return pd.read_parquet(self.path / f"{name}.parquet")
        with np.load(self.path / f"{name}.npz", allow_pickle=False) as data:
            columns: dict[str, Any] = {c: data[c] for c in data.files}
        columns.update(json.loads((self.path / f"{name}.json").read_text(encoding="utf-8")))
        return pd.DataFrame({c: columns[c] for c in info["columns"]})


class EntryWriter:
    """Writes one entry into a temporary folder; :meth:`commit` publishes it atomically.

    Use it as a context manager (from :meth:`Store.writer`): leaving the block normally
    commits, leaving it with an exception (including :class:`~tokendim_widgets.Cancelled`)
    removes everything written.

    Attributes
    ----------
    path : pathlib.Path
        The temporary folder being written.
    meta : dict
        Metadata stored in the manifest; fill it before the commit.
    """

    def __init__(self, store: Store, namespace: str, key: str) -> None:
        self.store = store
        self.namespace = namespace
        self.key = key
        self.meta: dict[str, Any] = {}
        parent = store.root / namespace
        parent.mkdir(parents=True, exist_ok=True)
        store._clean_stale(parent)
        host = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
        # Same parent as the final folder, so the final os.replace is a rename on one
        # filesystem (atomic), never a copy.
        self.path = parent / (
            f"{_TMP_PREFIX}{key[:16]}-{host}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        self.path.mkdir()
        self._tables: dict[str, dict[str, Any]] = {}
        self._open: list[np.memmap] = []
        self._done = False
        #: Bytes the whole entry is expected to take (from :meth:`reserve`), for messages.
        self.expected_bytes = 0
        #: Whether earlier work was found (always False here; see :class:`ResumableWriter`).
        self.resumed = False
        #: What the work needs to resume identically (empty here).
        self.state: dict[str, Any] = {}

    def done_items(self) -> list[Any]:
        """Items done by earlier work: none for a plain writer."""
        return []

    def mark_done(self, item: Any) -> None:
        """Record an item as done; a plain writer keeps nothing across interruptions."""

    def checkpoint(self) -> None:
        """Make the items marked done durable; nothing to do for a plain writer."""

    def save_state(self, **values: Any) -> None:
        """Record values needed to resume the work identically."""
        self.state.update(values)

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def reserve(self, n_bytes: int) -> None:
        """Check that about ``n_bytes`` more can be written, before long work starts.

        Raises
        ------
        TokendimError
            When the cache folder's disk has less free space; nothing is left behind.
        """
        self.expected_bytes = max(self.expected_bytes, int(n_bytes))
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:  # pragma: no cover - no statistics: the writes will tell
            return
        if free < n_bytes:
            self.discard()
            raise self._no_space(None, int(n_bytes), free)

    def create_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A writable ``.npy`` memory map to fill in place (e.g. batch by batch).

        Its disk space is allocated now: writing through the map can then not meet a full
        disk (which would kill the process with SIGBUS).
        """
        path = self.path / f"{_check_name(name)}.npy"
        dtype = np.dtype(dtype)
        with self._guard(math.prod(shape) * dtype.itemsize):
            array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            try:
                _allocate(path, path.stat().st_size)
            except BaseException:
                del array
                raise
        self._open.append(array)
        return array

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Write a whole array as ``<name>.npy``."""
        with self._guard():
            np.save(self.path / f"{_check_name(name)}.npy", np.asarray(array), allow_pickle=False)

    def write_json(self, name: str, obj: Any) -> None:
        """Write a JSON document as ``<name>.json``."""
        text = json.dumps(obj, ensure_ascii=False)
        with self._guard():
            (self.path / f"{_check_name(name)}.json").write_text(text, encoding="utf-8")

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        """Write a DataFrame as Parquet (pyarrow), else as ``.npz`` + ``.json`` for strings."""
        with self._guard():
            self._write_table(name, frame)

    @contextlib.contextmanager
    def _guard(self, n_bytes: int | None = None) -> Iterator[None]:
        """Turn a failed write into a TokendimError and remove the partial entry (discard)."""
        try:
            yield
        except OSError as exc:
            self.discard()
            if exc.errno in _NO_SPACE:
                raise self._no_space(exc, n_bytes, None) from exc
            raise TokendimError(
                f"Cannot write to the cache folder {self.store.root}: {exc.strerror or exc}. "
                f"Set {ENV_VAR} or pass cache_dir= to use another folder, or cache=False."
            ) from exc

    def _no_space(self, exc: OSError | None, needed: int | None, free: int | None) -> TokendimError:
        if free is None:
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(self.store.root).free
        needed = max(needed or 0, self.expected_bytes) or None
        what = f"this result needs about {_megabytes(needed)}" if needed else "it is full"
        room = f", {_megabytes(free)} free" if free is not None else ""
        cause = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
        return TokendimError(
            f"Not enough disk space in the cache folder {self.store.root}{cause}: {what}"
            f"{room}. Free some space, point {ENV_VAR} (or cache_dir=) to a larger disk, or "
            "pass cache=False to keep the results in memory only. Nothing was cached."
        )

    def _write_table(self, name: str, frame: pd.DataFrame) -> None:
        _check_name(name)
        frame = frame.reset_index(drop=True)
        columns = [str(c) for c in frame.columns]
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            plain = {
                c
                for c in columns
                if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
            }
            numeric = {c: frame[c].to_numpy() for c in columns if c in plain}
            text = {c: frame[c].astype(str).tolist() for c in columns if c not in plain}
            np.savez(self.path / f"{name}.npz", **numeric)  # type: ignore[arg-type]
            self.write_json(name, text)
            self._tables[name] = {"format": "npz", "columns": columns}
        else:
            frame.to_parquet(self.path / f"{name}.parquet", index=False)
            self._tables[name] = {"format": "parquet", "columns": columns}

    def commit(self) -> Entry:
        """Checksum every file, write the manifest last and move the folder into place."""
        if self._done:
            raise RuntimeError("This entry was already committed or aborted.")
        with self._guard():
            return self._commit()

    def _commit(self) -> Entry:
        for array in self._open:
            array.flush()
        self._open.clear()
        files = {}
        for path in sorted(self.path.iterdir()):
            files[path.name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        manifest = {
            "format": FORMAT_VERSION,
            "namespace": self.namespace,
            "key": self.key,
            "created": time.time(),
            "meta": self.meta,
            "tables": self._tables,
            "files": files,
        }
        tmp_manifest = self.path / (MANIFEST + ".part")
        tmp_manifest.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_manifest, self.path / MANIFEST)
        final = self.store.path(self.namespace, self.key)
        try:
            os.replace(self.path, final)
        except OSError:
            # Another writer published the same key first (same content by construction):
            # keep theirs if it is valid, else replace it.
            if self.store.get(self.namespace, self.key) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(self.path, final)
            else:
                shutil.rmtree(self.path, ignore_errors=True)
        self._done = True
        entry = self.store.get(self.namespace, self.key, verify=False)
        if entry is None:  # pragma: no cover - only if the folder vanished under us
            raise TokendimError(f"The cache entry {final} disappeared while it was written.")
        with contextlib.suppress(OSError), _verified_lock:
            _verified[str(entry.path)] = _identity(entry.path, entry.files)
        return entry

    def abort(self) -> None:
        """Remove everything written; nothing is published."""
        if self._done:
            return
        self._open.clear()
        self._done = True
        shutil.rmtree(self.path, ignore_errors=True)

    def discard(self) -> None:
        """Remove everything written, resumable or not (the work failed)."""
        self.abort()


class ResumableWriter(EntryWriter):
    """An :class:`EntryWriter` whose work survives an interruption (Ctrl-C, a kill, a crash).

    It writes in ``<namespace>/.partial-<key>/`` (a name :meth:`Store.get` never reads)
    instead of a temporary folder, and keeps that folder when the work stops before the
    commit. A later writer of the same key reopens the arrays and reads which items are
    done from an append-only log, so the caller resumes where the last checkpoint left off.

    The log records an item only after the arrays holding its results are flushed to disk
    (:meth:`checkpoint`), so a recorded item is never lost, even to a power cut; a torn last
    line is ignored. ``state`` describes the work (shapes, batch plan): a partial folder
    whose state differs from the one asked for is discarded, never mixed in. One process at
    a time owns a partial folder (an ``owner`` file with its host and pid); while a live
    process owns it, :meth:`Store.resumable_writer` returns a plain writer instead.

    Attributes
    ----------
    resumed : bool
        True when earlier work was found and kept.
    state : dict
        The state given, with what the caller saved in it (see :meth:`save_state`).
    """

    LOG = "done.log"
    STATE = "state.json"
    OWNER = "owner"

    def __init__(self, store: Store, namespace: str, key: str, state: Mapping[str, Any]) -> None:
        self.store = store
        self.namespace = namespace
        self.key = key
        self.meta = {}
        self._tables = {}
        self._open = []
        self._done = False
        self.expected_bytes = 0
        self.resumed = False
        parent = store.root / namespace
        parent.mkdir(parents=True, exist_ok=True)
        store._clean_stale(parent)
        self.path = parent / f"{_PARTIAL_PREFIX}{key}"
        self._pending: list[Any] = []
        self._log: Any = None
        self.path.mkdir(exist_ok=True)
        if not self._take_ownership():
            raise _Busy(self.path)
        wanted = _canonical(dict(state))
        try:
            found = json.loads((self.path / self.STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        self.resumed = isinstance(found, dict) and found.get("request") == wanted
        if not self.resumed:
            for child in self.path.iterdir():
                if child.name != self.OWNER:
                    child.unlink()
            found = {"request": wanted, "saved": {}}
            self._write_state(found)
        assert isinstance(found, dict)
        self._request = wanted
        self._saved: dict[str, Any] = dict(found.get("saved", {}))
        self.state = {**found["request"], **self._saved}

    def _take_ownership(self) -> bool:
        owner = self.path / self.OWNER
        me = f"{_host()}-{os.getpid()}"
        try:
            fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                text = owner.read_text(encoding="utf-8").strip()
            except OSError:
                text = ""
            host, _, pid = text.rpartition("-")
            alive = host == _host() and pid.isdigit() and _pid_alive(int(pid))
            if alive and int(pid) != os.getpid():
                return False
            if host != _host() and host:
                with contextlib.suppress(OSError):
                    if time.time() - owner.stat().st_mtime < _STALE_SECONDS:
                        return False  # another machine's writer, maybe alive
            tmp = owner.with_name(f".owner-{secrets.token_hex(4)}")
            tmp.write_text(me, encoding="utf-8")
            os.replace(tmp, owner)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(me)
        return owner.read_text(encoding="utf-8").strip() == me

    def _write_state(self, state: Mapping[str, Any]) -> None:
        tmp = self.path / (self.STATE + ".part")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path / self.STATE)

    def save_state(self, **values: Any) -> None:
        """Record values the work needs to resume identically (e.g. the batch size)."""
        self._saved.update(_canonical(values))
        self.state.update(self._saved)
        with self._guard():
            self._write_state({"request": self._request, "saved": self._saved})

    def create_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """As :meth:`EntryWriter.create_array`, reopening the array of earlier work."""
        path = self.path / f"{_check_name(name)}.npy"
        if self.resumed and path.exists():
            try:
                array = np.load(path, mmap_mode="r+", allow_pickle=False)
            except (OSError, ValueError):
                array = None
            if array is not None and array.shape == tuple(shape) and array.dtype == dtype:
                self._open.append(array)
                return array
            self.discard()
            raise TokendimError(
                f"The partial result {path} does not match its state; it was removed. Run "
                "again to start afresh."
            )
        return super().create_array(name, shape, dtype)

    def done_items(self) -> list[Any]:
        """Items recorded done by earlier work, in the order they were recorded."""
        try:
            text = (self.path / self.LOG).read_text(encoding="utf-8")
        except OSError:
            return []
        items = []
        for line in text.split("\n"):
            try:
                items.append(json.loads(line))
            except ValueError:
                continue  # a torn line (the writer died while writing it)
        return items

    def mark_done(self, item: Any) -> None:
        """Record ``item`` as done at the next :meth:`checkpoint`."""
        self._pending.append(item)

    def checkpoint(self) -> None:
        """Flush the arrays, then append the items marked done since the last checkpoint."""
        if not self._pending or self._done:
            return
        with self._guard():
            for array in self._open:
                array.flush()
            if self._log is None:
                self._log = open(self.path / self.LOG, "a", encoding="utf-8")  # noqa: SIM115
            self._log.write("".join(json.dumps(item) + "\n" for item in self._pending))
            self._log.flush()
            os.fsync(self._log.fileno())
        self._pending.clear()

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def _commit(self) -> Entry:
        self._close_log()
        for path in list(self.path.iterdir()):
            if path.name in (self.LOG, self.STATE, self.OWNER) or path.name.startswith("."):
                path.unlink(missing_ok=True)
        return super()._commit()

    def abort(self) -> None:
        """Keep the work done so far (checkpointed) for a later writer, and release it."""
        if self._done:
            return
        with contextlib.suppress(TokendimError, OSError):
            self.checkpoint()
        self._close_log()
        self._open.clear()
        self._done = True
        with contextlib.suppress(OSError):
            (self.path / self.OWNER).unlink()

    def discard(self) -> None:
        """Remove the folder and everything in it (the work cannot be resumed)."""
        self._close_log()
        self._open.clear()
        self._done = True
        shutil.rmtree(self.path, ignore_errors=True)


class _Busy(Exception):
    """A live process owns the partial folder."""


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _megabytes(n_bytes: int | None) -> str:
    return "an unknown amount" if n_bytes is None else f"{n_bytes / 1e6:,.1f} MB"


def _allocate(path: Path, size: int) -> None:
    """Give ``path`` real disk blocks for its first ``size`` bytes (no sparse holes)."""
    with open(path, "r+b") as f:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(f.fileno(), 0, size)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
        # No fallocate here: write the zeros ourselves (the memory map sees the same bytes).
        chunk = b"\0" * min(size, _HASH_CHUNK)
        written = 0
        while written < size:
            n = min(len(chunk), size - written)
            f.write(chunk[:n])
            written += n
        f.flush()
        os.fsync(f.fileno())


def _identity(path: Path, files: Mapping[str, Any]) -> tuple[tuple[str, int, int, int, int], ...]:
    """Size, mtime, ctime and inode of the manifest and every file of an entry."""
    out = []
    for name in (MANIFEST, *sorted(files)):
        st = (path / name).stat()
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(out)


class Store:
    """A folder of cache entries addressed by ``(namespace, key)``.

    Parameters
    ----------
    root : str or path, optional
        The cache folder. Default: ``$TOKENDIM_CACHE_DIR``, else the platform's user cache
        folder (see :func:`default_cache_dir`).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> key = make_key("demo", 1)
    >>> with store.writer("demo", key) as w:
    ...     w.write_array("x", np.arange(3.0))
    ...     w.meta["note"] = "hello"
    >>> entry = store.get("demo", key)
    >>> entry.array("x").tolist(), entry.meta["note"]
    ([0.0, 1.0, 2.0], 'hello')
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def path(self, namespace: str, key: str) -> Path:
        """Folder of entry ``(namespace, key)`` (it may not exist)."""
        return self.root / _check_part(namespace, "namespace") / _check_part(key, "key")

    def writer(self, namespace: str, key: str) -> EntryWriter:
        """Start writing entry ``(namespace, key)``; see :class:`EntryWriter`."""
        try:
            return EntryWriter(self, namespace, key)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise TokendimError(
                    f"Not enough disk space in the cache folder {self.root} to start a new "
                    f"entry ({exc.strerror}). Free some space, point {ENV_VAR} (or cache_dir=) "
                    "to a larger disk, or pass cache=False to keep the results in memory only."
                ) from exc
            raise TokendimError(
                f"Cannot write to the cache folder {self.root}: {exc}. Set the "
                f"{ENV_VAR} environment variable or pass cache_dir= to use another folder, "
                "or cache=False."
            ) from exc

    def resumable_writer(self, namespace: str, key: str, state: Mapping[str, Any]) -> EntryWriter:
        """A writer that keeps its work across interruptions; see :class:`ResumableWriter`.

        ``state`` (JSON-like) describes the work; earlier work is resumed only when it was
        started with an equal state. While another live process works on the same key, a
        plain :class:`EntryWriter` is returned (its ``resumed`` is False and nothing it does
        survives an interruption).
        """
        try:
            return ResumableWriter(self, namespace, key, state)
        except _Busy:
            return self.writer(namespace, key)
        except OSError as exc:
            raise TokendimError(
                f"Cannot write to the cache folder {self.root}: {exc}. Set the "
                f"{ENV_VAR} environment variable or pass cache_dir= to use another folder, "
                "or cache=False."
            ) from exc

    def get(self, namespace: str, key: str, *, verify: bool = True) -> Entry | None:
        """The entry if it exists and is intact, else None.

        Parameters
        ----------
        namespace, key : str
            Which entry.
        verify : bool, default True
            Check file checksums against the manifest: in full the first time, again
            whenever a file's size, times or inode changed since (sizes are always checked).
            A damaged entry is removed and None is returned.

        Returns
        -------
        Entry or None
        """
        path = self.path(namespace, key)
        if not path.is_dir():
            return None
        problem = self._problem(path, namespace, key, verify)
        if problem is not None:
            import logging

            logging.getLogger(__name__).warning(
                "Removing damaged cache entry %s (%s); it will be recomputed.", path, problem
            )
            self._discard(path)
            return None
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return Entry(path, namespace, key, manifest)

    def put(
        self,
        namespace: str,
        key: str,
        *,
        arrays: Mapping[str, np.ndarray] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        documents: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Write a whole entry at once (arrays, tables, JSON documents, metadata).

        Returns
        -------
        Entry
            The committed entry.
        """
        with self.writer(namespace, key) as writer:
            for name, array in (arrays or {}).items():
                writer.write_array(name, array)
            for name, frame in (tables or {}).items():
                writer.write_table(name, frame)
            for name, doc in (documents or {}).items():
                writer.write_json(name, doc)
            writer.meta.update(meta or {})
        entry = self.get(namespace, key, verify=False)
        assert entry is not None
        return entry

    def remove(self, namespace: str, key: str) -> None:
        """Delete an entry if present."""
        path = self.path(namespace, key)
        if path.exists():
            self._discard(path)

    def keys(self, namespace: str) -> list[str]:
        """Keys of the published entries of a namespace (not checked)."""
        folder = self.root / _check_part(namespace, "namespace")
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")

    # ---- internals ---------------------------------------------------------------------
    def _problem(self, path: Path, namespace: str, key: str, verify: bool) -> str | None:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no manifest"
        except (OSError, ValueError) as exc:
            return f"unreadable manifest: {exc}"
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            return "malformed manifest"
        if manifest.get("format") != FORMAT_VERSION:
            return f"format {manifest.get('format')!r}, expected {FORMAT_VERSION}"
        if manifest.get("key") != key or manifest.get("namespace") != namespace:
            return "manifest of another entry"
        files: dict[str, Any] = manifest["files"]
        for name, info in files.items():
            file = path / name
            try:
                size = file.stat().st_size
            except OSError:
                return f"missing file {name}"
            if not isinstance(info, dict) or size != info.get("size"):
                return f"file {name} has {size} bytes, expected {info.get('size')}"
        if not verify:
            return None
        try:
            identity = _identity(path, files)
        except OSError:
            return "a file vanished"
        with _verified_lock:
            if _verified.get(str(path)) == identity:
                return None
        for name, info in files.items():
            if file_sha256(path / name) != info.get("sha256"):
                return f"checksum mismatch in {name}"
        with _verified_lock:
            _verified[str(path)] = identity
        return None

    def _discard(self, path: Path) -> None:
        # Rename first so that a concurrent reader never sees a half-deleted entry.
        trash = path.with_name(f"{_TMP_PREFIX}trash-{path.name[:16]}-{secrets.token_hex(4)}")
        try:
            os.replace(path, trash)
        except OSError:
            trash = path
        shutil.rmtree(trash, ignore_errors=True)

    def _clean_stale(self, parent: Path) -> None:
        """Remove temporary folders of writers that died (same host) or are a day old."""
        host = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
        now = time.time()
        for path in parent.glob(f"{_TMP_PREFIX}*"):
            parts = path.name[len(_TMP_PREFIX) :].split("-")
            stale = False
            with contextlib.suppress(OSError):
                stale = now - path.stat().st_mtime > _STALE_SECONDS
            if not stale and len(parts) == 4 and parts[1] == host and parts[2].isdigit():
                stale = not _pid_alive(int(parts[2]))
            if stale or parts[0] == "trash":
                shutil.rmtree(path, ignore_errors=True)
        for path in parent.glob(f"{_PARTIAL_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - _newest_mtime(path) > _PARTIAL_STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of a folder and its files."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())])


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
