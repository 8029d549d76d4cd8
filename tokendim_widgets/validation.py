"""Checks of user-given values, written once: each raises TokendimError saying what to pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import TokendimError

__all__ = ["check_choice", "check_float", "check_int", "check_optional_int"]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, if it is an integer (not a bool) of at least ``minimum``.

    Examples
    --------
    >>> check_int(5, "k", 1)
    5
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise TokendimError(f"{name} must be an integer >= {minimum}, got {value!r}.")
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
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise TokendimError(f"{name} must be an integer >= {minimum} or None, got {value!r}.")
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
    """``value`` as a float, if it is a finite real number in the given range."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
    )
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise TokendimError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}.")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value``, if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise TokendimError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}."
        )
    return value
