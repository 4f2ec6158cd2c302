"""The ``sparse`` mode: an annotator who labels only some slices."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from datamodules.weak_labels._checks import SLICE_AXIS, integer, number, slice_axis, slice_view


@dataclass(frozen=True)
class SparseDraw:
    """The labelled slices of one `SparseSlices` draw."""

    name: ClassVar[str] = "sparse"

    axis: int
    slices: tuple[int, ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)`` with every slice not in ``slices`` unlabelled."""
        keep = np.zeros(label.shape[self.axis], dtype=bool)
        keep[list(self.slices)] = True
        mask = mask.copy()
        slice_view(mask, self.axis)[..., ~keep] = 0
        return label.copy(), mask


@dataclass(frozen=True)
class SparseSlices:
    """Label only some slices: every ``k``-th one, or a random ``fraction`` with none adjacent.

    Give exactly one of ``k`` and ``fraction``.

    Attributes:
        k: label slices ``offset, offset + k, ...``; ``k = 1`` labels every slice.
        fraction: label ``round(fraction * n_slices)`` slices (at least one), drawn uniformly
            among the selections with no two adjacent slices; at most 0.5.
        axis: the slice axis.
        offset: first labelled slice for ``k``, in ``[0, k)``; None draws it at random.

    Example:
        >>> SparseSlices(k=4).sample(np.zeros((4, 4, 8), int), np.random.default_rng(0)).slices
        (3, 7)
    """

    name: ClassVar[str] = "sparse"

    k: int | None = None
    fraction: float | None = None
    axis: int = SLICE_AXIS
    offset: int | None = None

    def __post_init__(self) -> None:
        if (self.k is None) == (self.fraction is None):
            raise ValueError(
                f"sparse needs exactly one of k and fraction, got k={self.k!r}, "
                f"fraction={self.fraction!r}"
            )
        if self.k is not None:
            integer("sparse", "k", self.k, minimum=1)
        if self.fraction is not None:
            value = number("sparse", "fraction", self.fraction, 0.0, 0.5)
            if value == 0:
                raise ValueError(f"sparse fraction must be > 0, got {self.fraction!r}")
        integer("sparse", "axis", self.axis)
        if self.offset is not None:
            if self.k is None:
                raise ValueError(f"sparse offset needs k, got offset={self.offset!r} alone")
            offset = integer("sparse", "offset", self.offset, minimum=0)
            if offset >= self.k:
                raise ValueError(f"sparse offset must be < k={self.k}, got {offset}")

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields for a severity shorthand: an integer is ``k``, a fraction is ``fraction``."""
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return {"k": value}
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return {"fraction": value}
        raise ValueError(f"sparse severity must be k (an integer) or a fraction, got {value!r}")

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> SparseDraw:
        """Draw the labelled slices for a volume shaped like ``label``."""
        axis = slice_axis(self.axis, np.ndim(label))
        n_slices = np.shape(label)[axis]
        if self.k is not None:
            offset = int(rng.integers(self.k)) if self.offset is None else self.offset
            return SparseDraw(axis, tuple(range(offset, n_slices, self.k)))
        # fraction <= 0.5 keeps count <= ceil(n_slices / 2): a non-adjacent selection exists.
        count = max(1, round(self.fraction * n_slices))
        # Uniform over non-adjacent selections: choose `count` of `n - count + 1` positions and
        # spread the i-th chosen one by i (a bijection onto the gapped selections).
        chosen = np.sort(rng.choice(n_slices - count + 1, size=count, replace=False))
        return SparseDraw(axis, tuple(int(c) + i for i, c in enumerate(chosen)))
