"""The one exception type that errors a user can cause are raised with."""

from __future__ import annotations


class TokendimError(Exception):
    """A problem the user can fix: the message says what happened and what to do.

    Every error a user can cause (an unknown model, an empty prompt set, too few tokens for
    the requested number of neighbours, running out of memory) is raised as this type, so
    that notebooks and widgets can catch one class, show the message and stay usable.

    Examples
    --------
    >>> import tokendim_widgets as td
    >>> try:
    ...     td.make_estimator("twonm")
    ... except td.TokendimError as exc:
    ...     print(exc)
    Unknown estimator 'twonm': choose one of correlation, twonn, mle, gride, pca.
    """


class Cancelled(TokendimError):
    """Raised inside long work when the user asked for it to stop.

    Examples
    --------
    >>> import tokendim_widgets as td
    >>> issubclass(td.Cancelled, td.TokendimError)  # catch Cancelled first to tell it apart
    True
    """


class SupportWarning(UserWarning):
    """An estimate rests on too few distinct points to be read (see ``support``).

    Examples
    --------
    >>> from tokendim_widgets.errors import SupportWarning
    >>> issubclass(SupportWarning, UserWarning)  # warnings.simplefilter("error", ...) works
    True
    """
