"""Which labelled slices the label-cleansing network trains on (thread 1).

The report's label cleansing trains a 2D network on a subset of *non-adjacent* labelled
slices and predicts every slice, so that a slice's noisy or missing label is replaced by
what the network learnt from other slices. `SliceSelection` states the subset:

- ``stride`` and ``offset``: every ``stride``-th labelled slice, from the ``offset``-th on;
- ``fraction``: a seeded random share of the labelled slices;
- ``folds`` >= 2: the labelled slices dealt round-robin into complementary subsets (even and
  odd slices for two folds), one network per subset, so that every labelled slice can be
  predicted by a network that never saw its label.

Whatever the rule, two chosen slices of one subset are never closer than ``min_gap``
(at least 2: never adjacent); a slice too close to the one kept before it is dropped.

>>> selection = SliceSelection(stride=1)
>>> selection.subsets([3, 4, 5, 6, 7, 9], n_slices=12)
[(3, 5, 7, 9)]
>>> SliceSelection(folds=2).subsets(range(6), n_slices=6)
[(0, 2, 4), (1, 3, 5)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


class SliceSelectionError(ValueError):
    """A selection that cannot apply to a volume; the message names the problem."""


@dataclass(frozen=True)
class SliceSelection:
    """A rule choosing non-adjacent labelled slices along ``axis``.

    Attributes:
        stride: keep every ``stride``-th labelled slice (1: all, before the gap rule).
        offset: the first labelled slice kept, in ``[0, stride)``.
        fraction: instead of ``stride``, keep this share (0, 1] of the labelled slices at
            random, drawn with the generator ``subsets`` is given.
        min_gap: the least distance, in slices, between two kept slices of one subset.
        folds: 1 for one subset; 2 or more deals the kept slices into that many
            complementary subsets.
        axis: the slice axis of the ``(x, y, z)`` volume.
    """

    stride: int = 1
    offset: int = 0
    fraction: float | None = None
    min_gap: int = 2
    folds: int = 1
    axis: int = 2

    def __post_init__(self) -> None:
        for name, minimum in (("stride", 1), ("offset", 0), ("min_gap", 2), ("folds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SliceSelectionError(
                    f"slice selection {name} must be an integer >= {minimum}, got {value!r}"
                )
        if self.offset >= self.stride:
            raise SliceSelectionError(
                f"slice selection offset must be < stride={self.stride}, got {self.offset}"
            )
        if self.fraction is not None:
            if not 0 < float(self.fraction) <= 1:
                raise SliceSelectionError(
                    f"slice selection fraction must lie in (0, 1], got {self.fraction!r}"
                )
            if self.stride != 1 or self.folds != 1:
                raise SliceSelectionError(
                    "slice selection fraction draws one random subset: give it without "
                    "stride or folds"
                )
        if self.axis not in (0, 1, 2):
            raise SliceSelectionError(
                f"slice selection axis {self.axis!r} does not exist in an (x, y, z) volume; "
                "use 0, 1 or 2"
            )

    def subsets(
        self,
        labelled: Iterable[int],
        *,
        n_slices: int,
        rng: np.random.Generator | None = None,
    ) -> list[tuple[int, ...]]:
        """The chosen slices, one tuple per fold, each sorted and with gaps >= ``min_gap``.

        Args:
            labelled: indices of the slices that hold a label.
            n_slices: the volume's slices along ``axis``.
            rng: the generator a ``fraction`` draws from.

        Raises:
            SliceSelectionError: a stride larger than the volume, no labelled slice, or
                fewer labelled slices than folds.
        """
        if self.stride > n_slices:
            raise SliceSelectionError(
                f"slice selection stride {self.stride} is larger than the volume's "
                f"{n_slices} slices along axis {self.axis}"
            )
        candidates = sorted({int(index) for index in labelled})
        if not candidates:
            raise SliceSelectionError(f"no labelled slice along axis {self.axis}")
        if candidates[0] < 0 or candidates[-1] >= n_slices:
            raise SliceSelectionError(
                f"labelled slice indices must lie in [0, {n_slices}), got {candidates}"
            )
        if self.fraction is not None:
            if rng is None:
                raise SliceSelectionError("a slice selection fraction needs a seeded generator")
            return [self._random_subset(candidates, rng)]
        kept = candidates[self.offset :: self.stride]
        if self.folds == 1:
            return [self._spread(kept)]
        if len(kept) < self.folds:
            raise SliceSelectionError(
                f"{len(kept)} labelled slices cannot be dealt into {self.folds} folds"
            )
        # Round-robin: members of a fold are >= `folds` places apart in the sorted list.
        return [self._spread(kept[fold :: self.folds]) for fold in range(self.folds)]

    def _spread(self, indices: list[int]) -> tuple[int, ...]:
        """Drop every index closer than ``min_gap`` to the last one kept."""
        kept: list[int] = []
        for index in indices:
            if not kept or index - kept[-1] >= self.min_gap:
                kept.append(index)
        return tuple(kept)

    def _random_subset(self, candidates: list[int], rng: np.random.Generator) -> tuple[int, ...]:
        """A random share of ``candidates``, no two closer than ``min_gap``."""
        wanted = max(1, round(float(self.fraction) * len(candidates)))
        kept: list[int] = []
        for index in rng.permutation(candidates):
            if all(abs(int(index) - other) >= self.min_gap for other in kept):
                kept.append(int(index))
                if len(kept) == wanted:
                    break
        return tuple(sorted(kept))


def labelled_slices(mask: np.ndarray, axis: int) -> list[int]:
    """Indices of the slices along ``axis`` that hold at least one labelled voxel."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    return np.flatnonzero(np.asarray(mask).any(axis=other)).tolist()


def slice_groups(subsets: list[tuple[int, ...]], n_slices: int, first: int = 1) -> np.ndarray:
    """Per slice, the group that trains on it (``first``, ``first + 1``, ...), 0 for none.

    >>> slice_groups([(0, 2), (1, 3)], n_slices=5).tolist()
    [1, 2, 1, 2, 0]
    """
    groups = np.zeros(n_slices, dtype=np.int64)
    for position, subset in enumerate(subsets):
        groups[list(subset)] = first + position
    return groups
