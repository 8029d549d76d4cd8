"""Progress reporting shared by every long step: a tqdm bar, a callback, or nothing.

Every public function that takes ``progress=`` (model loading, extraction, sweeps...) hands
it to :class:`Progress`, so the meaning of ``True``, ``None``, ``False`` and a callable is the
same everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

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
    file : text stream, optional
        Where the bar is drawn (tqdm's default: stderr).
    leave : bool, default True
        Keep the finished bar on screen.
    bar_format : str, optional
        tqdm's ``bar_format``.

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
        file: IO[str] | None = None,
        leave: bool = True,
        bar_format: str | None = None,
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
                leave=leave,
                file=file,
                bar_format=bar_format,
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


class StageProgress(Progress):
    """The stages of a command-line run, each with the fraction of it done.

    On a terminal ``stream``: one bar, ``stage  [bar]  42%``, redrawn in place and removed
    at the end. Otherwise (a log file, CI): one line ``... stage`` on stdout per new stage,
    so that ``stream`` (stderr) keeps only errors.

    Parameters
    ----------
    stream : text stream
        Where the bar is drawn, if it is a terminal.
    ends : collection of str, default ()
        Stages that end a followed run (``"done"``): shown on the bar, never as a line.

    Examples
    --------
    >>> import contextlib, io
    >>> lines = io.StringIO()
    >>> with contextlib.redirect_stdout(lines):
    ...     p = StageProgress(io.StringIO())  # not a terminal: a line per stage on stdout
    ...     p.update("extracting", 0.0)
    ...     p.update("extracting", 0.5, " 1,200 tokens/s")  # the same stage: no new line
    ...     p.show("extracting, batch 3/4", 0.75)  # the bar only
    ...     p.stage("writing")
    ...     p.close()
    >>> lines.getvalue()
    '... extracting\\n... writing\\n'
    """

    BAR_FORMAT = "{desc} {bar} {percentage:3.0f}%"

    def __init__(self, stream: IO[str], *, ends: Collection[str] = ()) -> None:
        super().__init__(
            stream.isatty(), 100, "", file=stream, leave=False, bar_format=self.BAR_FORMAT
        )
        self._ends = frozenset(ends)
        self._stage: str | None = ""
        self._unfollow: Callable[[], None] | None = None

    def show(self, text: str, fraction: float) -> None:
        """Put ``text`` and ``fraction`` (0 to 1) done on the bar; no line without a bar."""
        self.done = round(self.total * max(0.0, min(1.0, fraction)))
        if self._bar is not None:
            self._bar.set_description_str(f"{text:<28}", refresh=False)
            self._bar.n = self.done
            self._bar.refresh()

    def update(self, stage: str, fraction: float, detail: str = "") -> None:
        """Report ``stage`` with ``fraction`` done: on the bar with ``detail``, or a line if new."""
        if self._bar is not None:
            self.show(f"{stage}{detail}", fraction)
        elif stage != self._stage and stage not in self._ends:
            print(f"... {stage}", flush=True)
        self._stage = stage

    def stage(self, text: str) -> None:
        """Start a stage of the caller's own (a followed source is no longer followed)."""
        self.unfollow()
        self._stage = None
        self.update(text, 0.0)

    def follow(
        self, source: Any, names: list[str], read: Callable[[], tuple[str, float, str]]
    ) -> None:
        """Call :meth:`update` with ``read()`` whenever a trait ``names`` of ``source`` changes.

        ``source`` is a traitlets ``HasTraits`` (a session); ``read`` returns
        ``(stage, fraction, detail)``. The observer may be called from the source's worker
        thread.
        """
        self.unfollow()
        following = [True]

        def changed(change: Any = None) -> None:
            if following[0]:
                self.update(*read())

        def unfollow() -> None:
            following[0] = False  # a change already on its way is not shown
            with contextlib.suppress(ValueError):
                source.unobserve(changed, names=names)

        source.observe(changed, names=names)
        self._unfollow = unfollow

    def unfollow(self) -> None:
        """Stop following the source (its later changes are not ours to show)."""
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None

    def close(self) -> None:
        self.unfollow()
        super().close()
