"""Progress reporting shared by every long step: a tqdm bar, a callback, or nothing.

Every public function that takes ``progress=`` (model loading, extraction, sweeps...) hands
it to :class:`Progress`, so the meaning of ``True``, ``None``, ``False`` and a callable is the
same everywhere.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

#: A progress callback: ``callback(done, total, rate)`` (``rate`` in units per second).
ProgressCallback = Callable[[int, int, float], Any]
#: What a ``progress=`` argument accepts.
ProgressLike = bool | Callable[..., Any] | None

T = TypeVar("T")


def interactive() -> bool:
    """True when a bar drawn now would be seen where the work was asked for.

    That is a terminal on stderr or a notebook kernel, *and* the main thread: a tqdm bar
    drawn from a worker thread of a notebook lands in whichever cell runs at that moment.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    stderr = sys.stderr
    return stderr is not None and (stderr.isatty() or _in_kernel())


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (not merely with ipykernel imported, as under pytest)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def throttled(interval: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a ``callback(done, total, ...)`` to run at most once per ``interval`` seconds.

    The first call and the last (``done >= total``) always run, so a display starts at once
    and ends complete.

    Examples
    --------
    >>> seen = []
    >>> @throttled(60.0)
    ... def show(done, total, rate):
    ...     seen.append(done)
    >>> for done in range(5):
    ...     show(done, 4, 0.0)
    >>> seen
    [0, 4]
    """

    def decorate(callback: Callable[..., Any]) -> Callable[..., Any]:
        last = [-math.inf]

        @functools.wraps(callback)
        def call(done: int, total: int, *rest: Any) -> Any:
            now = time.perf_counter()
            if now - last[0] < interval and done < total:
                return None
            last[0] = now
            return callback(done, total, *rest)

        return call

    return decorate


class Progress:
    """Reports units of work done to a tqdm bar, a callback, or nothing.

    Parameters
    ----------
    progress : bool, callable or None
        True: a ``tqdm.auto`` bar. None: a bar only when :func:`interactive`. False: nothing.
        A callable is called as ``progress(done, total, rate)`` after every step (or
        ``progress(done, total, note)`` with ``notes=True``).
    total : int
        Units of work in all.
    desc : str
        Label of the bar.
    unit : str, default "it"
        Unit shown on the bar.
    unit_scale : bool, default False
        Show large counts as 1.2k, 3.4M.
    notes : bool, default False
        Pass each step's note to the callback instead of the rate (and show it on the bar).
    initial : int, default 0
        Units already done before this run (resumed work): counted as done, not in the rate.

    Examples
    --------
    >>> seen = []
    >>> with Progress(lambda done, total, rate: seen.append((done, total)), 3, "demo") as p:
    ...     for _ in p.wrap("abc"):
    ...         pass
    >>> seen
    [(0, 3), (1, 3), (2, 3), (3, 3)]
    """

    def __init__(
        self,
        progress: ProgressLike,
        total: int,
        desc: str,
        *,
        unit: str = "it",
        unit_scale: bool = False,
        notes: bool = False,
        initial: int = 0,
    ) -> None:
        self.total = int(total)
        self.initial = int(initial)
        self.done = self.initial
        self.started = time.perf_counter()
        self._notes = notes
        self._bar: Any = None
        self._callback: Callable[..., Any] | None = None
        if callable(progress):
            self._callback = progress
        elif progress or (progress is None and interactive()):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.initial,
                desc=desc,
                unit=unit,
                unit_scale=unit_scale,
                leave=True,
            )
        if not notes:
            self._report(None)

    @property
    def rate(self) -> float:
        """Units per second since the start (resumed units not counted)."""
        elapsed = time.perf_counter() - self.started
        return (self.done - self.initial) / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int = 1, note: Any = None, *, postfix: str | None = None) -> None:
        """Record ``n`` more units done.

        ``note`` (e.g. the item finished) goes to a ``notes`` callback and, unless
        ``postfix`` gives other text, after the bar.
        """
        self.done += int(n)
        if self._bar is not None:
            text = postfix if postfix is not None else note
            if text is not None:
                self._bar.set_postfix_str(str(text), refresh=False)
            self._bar.update(n)
        self._report(note)

    def wrap(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield the items of ``iterable``, advancing by one after each."""
        for item in iterable:
            yield item
            self.advance(1)

    def close(self) -> None:
        """Close the bar (the callback needs no closing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _report(self, note: Any) -> None:
        if self._callback is not None:
            self._callback(self.done, self.total, note if self._notes else self.rate)


class TokenProgress(Progress):
    """A :class:`Progress` counting tokens (``1.2k tok``): extraction and model quality."""

    def __init__(self, progress: ProgressLike, total: int, desc: str, *, initial: int = 0) -> None:
        super().__init__(progress, total, desc, unit="tok", unit_scale=True, initial=initial)
