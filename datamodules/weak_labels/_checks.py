"""Checks and small helpers shared by the weak-label modes.

Option checks raise a ValueError that names the mode, the field and the bad value, so a
wrong spec in a config fails before any volume is touched.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

SLICE_AXIS = 2  # axial slices along the last axis of (x, y, z)


def integer(owner: str, name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise a ValueError naming the field and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner} {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner} {name} must be >= {minimum}, got {value!r}")
    return int(value)


def number(owner: str, name: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
    """Return ``value`` as a float in ``[low, high]``, or raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner} {name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{owner} {name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def labels(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """Return ``value`` (one label or a sequence of them) as a tuple of distinct labels >= 1.

    Example:
        >>> labels("noisy", "thin_labels", [2, 5])
        (2, 5)
    """
    items = (value,) if isinstance(value, numbers.Integral) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ValueError(f"{owner} {name} must be integers, got {value!r}")
    checked = tuple(integer(owner, name, item, minimum=1) for item in items)
    if len(set(checked)) != len(checked):
        raise ValueError(f"{owner} {name} must not repeat a label, got {value!r}")
    return checked


def scalar(text: str) -> Any:
    """Parse one value of a string spec: an int, a float, ``none`` or the text itself."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return None if text.lower() == "none" else text


def slice_axis(axis: int, ndim: int) -> int:
    """Return ``axis`` made non-negative for a volume of ``ndim`` axes."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a label with {ndim} axes")
    return axis % ndim


def checked_label(label: np.ndarray) -> np.ndarray:
    """Return ``label`` as an array, or raise a ValueError if it is no 3D integer volume."""
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"label must be a 3D volume, got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must hold integer classes, got dtype {label.dtype}")
    if label.size and label.min() < 0:
        raise ValueError(f"label classes must be >= 0, got {label.min()}")
    return label


def slice_view(array: np.ndarray, axis: int) -> np.ndarray:
    """A view of ``array`` with the slice axis last, so ``view[..., s]`` is slice ``s``."""
    return np.moveaxis(array, axis, -1)
