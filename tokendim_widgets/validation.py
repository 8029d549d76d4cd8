"""Checks of user-given values, written once: each raises TokendimError saying what to pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import TokendimError

__all__ = ["check_choice", "check_float", "check_int", "check_int_or_auto", "check_optional_int"]


def _is_int(value: Any, minimum: int | None) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        and (minimum is None or bool(value >= minimum))
    )


def _int_wanted(minimum: int | None) -> str:
    return "an integer" if minimum is None else f"an integer >= {minimum}"


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """``value`` as an int, if it is an integer (not a bool) of at least ``minimum`` (if given).

    Examples
    --------
    >>> check_int(5, "k", 1), check_int(-3, "seed")
    (5, -3)
    """
    if not _is_int(value, minimum):
        raise TokendimError(f"{name} must be {_int_wanted(minimum)}, got {value!r}.")
    return int(value)


def check_optional_int(value: Any, name: str, minimum: int = 1) -> int | None:
    """``value`` as an int (see :func:`check_int`), or None when it is None (no limit).

    Examples
    --------
    >>> check_optional_int(None, "max_length") is None, check_optional_int(8, "max_length")
    (True, 8)
    """
    if value is None:
        return None
    if not _is_int(value, minimum):
        raise TokendimError(f"{name} must be {_int_wanted(minimum)} or None, got {value!r}.")
    return int(value)


def check_int_or_auto(value: Any, name: str, minimum: int = 1) -> int | str:
    """``"auto"`` as is, else ``value`` as an int (see :func:`check_int`).

    Examples
    --------
    >>> check_int_or_auto("auto", "n_epochs"), check_int_or_auto(200, "n_epochs")
    ('auto', 200)
    """
    if isinstance(value, str) and value == "auto":
        return value
    if not _is_int(value, minimum):
        raise TokendimError(f"{name} must be {_int_wanted(minimum)} or 'auto', got {value!r}.")
    return int(value)


def check_float(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float, if it is a finite real number in the given range.

    An infinite ``high`` means no upper limit (the value must still be finite).

    Examples
    --------
    >>> check_float(0.5, "min_dist", 0.0, 1.0)
    0.5
    >>> check_float(0, "timeout", 0.0, math.inf, low_open=True)
    Traceback (most recent call last):
    ...
    tokendim_widgets.errors.TokendimError: timeout must be a finite number > 0, got 0.
    """
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
    )
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        if math.isinf(high):
            wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            wanted = f"a number in {lo}{low}, {high}{hi}"
        raise TokendimError(f"{name} must be {wanted}, got {value!r}.")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value``, if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise TokendimError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}."
        )
    return value
