"""The ``missing`` mode: structures an annotator skipped in some slices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from datamodules.weak_labels._checks import (
    SLICE_AXIS,
    checked_label,
    integer,
    number,
    slice_axis,
    slice_view,
)

Fill = Literal["unlabelled", "background"]
FILLS: tuple[str, ...] = ("unlabelled", "background")


@dataclass(frozen=True)
class MissingDraw:
    """The ``(slice, class)`` pairs of one `MissingStructures` draw that lose their labels."""

    name: ClassVar[str] = "missing"

    axis: int
    fill: Fill
    dropped: tuple[tuple[int, int], ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)``: dropped structures background, unlabelled if so set."""
        label, mask = label.copy(), mask.copy()
        label_view, mask_view = slice_view(label, self.axis), slice_view(mask, self.axis)
        for index, cls in self.dropped:
            where = label_view[..., index] == cls
            label_view[..., index][where] = 0
            if self.fill == "unlabelled":
                mask_view[..., index][where] = 0
        return label, mask


@dataclass(frozen=True)
class MissingStructures:
    """Leave structures out of some slices, as an annotator who skipped them would.

    Attributes:
        fraction: chance that a structure is missing from a slice that shows it. For one seed
            the missing sets are nested: a larger fraction drops a superset.
        axis: the slice axis.
        classes: the classes that can go missing; None means every foreground class.
        fill: ``"unlabelled"`` (default): the structure's voxels leave the mask, the natural
            choice for masked losses; ``"background"``: they stay labelled, as background (a
            wrong label, harder on the network).

    Example:
        >>> MissingStructures.severity(0.3)
        {'fraction': 0.3}
    """

    name: ClassVar[str] = "missing"

    fraction: float = 0.25
    axis: int = SLICE_AXIS
    classes: tuple[int, ...] | None = None
    fill: Fill = "unlabelled"

    def __post_init__(self) -> None:
        number("missing", "fraction", self.fraction, 0.0, 1.0)
        integer("missing", "axis", self.axis)
        if self.classes is not None:
            classes = (self.classes,) if isinstance(self.classes, int) else self.classes
            if isinstance(classes, str) or not isinstance(classes, Sequence):
                raise ValueError(f"missing classes must be integers, got {self.classes!r}")
            checked = tuple(integer("missing", "classes", c, minimum=1) for c in classes)
            object.__setattr__(self, "classes", checked)
        if self.fill not in FILLS:
            raise ValueError(f"missing fill must be one of {list(FILLS)}, got {self.fill!r}")

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields for a severity shorthand: the fraction."""
        return {"fraction": value}

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> MissingDraw:
        """Draw which structures go missing from which slices of ``label``."""
        label = checked_label(label)
        axis = slice_axis(self.axis, label.ndim)
        view = slice_view(label, axis)
        top = int(label.max(initial=0))
        # One uniform per (slice, class), classes 1..top, whatever the slice shows, so that the
        # draws of a seed are nested across fractions.
        chance = rng.random((view.shape[-1], top))
        eligible = range(1, top + 1) if self.classes is None else self.classes
        dropped = [
            (index, cls)
            for index in range(view.shape[-1])
            for cls in eligible
            if cls <= top
            and chance[index, cls - 1] < self.fraction
            and (view[..., index] == cls).any()
        ]
        return MissingDraw(axis, self.fill, tuple(dropped))
