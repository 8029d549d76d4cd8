"""Estimators by name, for the session, the widgets and the command line."""

from __future__ import annotations

from typing import Any

from ..errors import TokendimError
from ._base import IDEstimator
from .correlation import CorrelationDimension
from .gride import GRIDE
from .mle import MLE
from .pca import PCADimension
from .twonn import TwoNN

__all__ = ["ESTIMATORS", "make_estimator"]

#: Registry name -> estimator class.
ESTIMATORS: dict[str, type[IDEstimator]] = {
    "correlation": CorrelationDimension,
    "twonn": TwoNN,
    "mle": MLE,
    "gride": GRIDE,
    "pca": PCADimension,
}


def make_estimator(name: str, **params: Any) -> IDEstimator:
    """An unfitted estimator from its registry name and constructor parameters.

    Parameters
    ----------
    name : str
        One of ``"correlation"``, ``"twonn"``, ``"mle"``, ``"gride"``, ``"pca"``
        (case-insensitive).
    **params
        Constructor parameters of that estimator.

    Returns
    -------
    IDEstimator

    Examples
    --------
    >>> make_estimator("mle", k=10)
    MLE(k=10)
    """
    key = name.strip().lower() if isinstance(name, str) else name
    cls = ESTIMATORS.get(key) if isinstance(key, str) else None
    if cls is None:
        raise TokendimError(f"Unknown estimator {name!r}: choose one of {', '.join(ESTIMATORS)}.")
    valid = cls._param_names()
    unknown = [p for p in params if p not in valid]
    if unknown:
        raise TokendimError(
            f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; valid "
            f"parameters: {', '.join(valid)}."
        )
    return cls(**params)
