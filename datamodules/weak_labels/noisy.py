"""The ``noisy`` mode: per-slice boundary noise of region growing plus manual correction.

Structures too thin to erode (a dataset's thin structures, ``thin_labels``, e.g. vessels)
lose whole thin segments instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from datamodules.weak_labels._checks import (
    SLICE_AXIS,
    checked_label,
    integer,
    labels,
    number,
    scalar,
    slice_axis,
    slice_view,
)


def _disk(radius: int) -> np.ndarray:
    """2D footprint of the voxels within ``radius`` of the centre (a cross for radius 1)."""
    grid = np.arange(-radius, radius + 1)
    return grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2


@dataclass(frozen=True)
class NoisyDraw:
    """What one `NoisyBoundaries` draw changes, as tuples of plain ints per slice.

    Attributes:
        axis: the slice axis.
        thin_labels: the classes of thin structures that are dropped, not eroded, in order.
        boundary: ``(slice, class, radius)``: the class's boundary with the background moves
            out (dilation, ``radius > 0``) or in (erosion, ``radius < 0``) by ``|radius|``.
        dropped_vessels: ``(slice, i, j)``: the thin segment through in-slice voxel ``(i, j)``
            is dropped and takes the label of the nearest voxel of another class.
        blobs: ``(slice, i, j, radius, class)``: a disk of ``class`` painted over the slice.
        shifts: ``(slice, di, dj)``: the slice's labels move by ``(di, dj)``; background fills.
    """

    name: ClassVar[str] = "noisy"

    axis: int
    thin_labels: tuple[int, ...]
    boundary: tuple[tuple[int, int, int], ...]
    dropped_vessels: tuple[tuple[int, int, int], ...]
    blobs: tuple[tuple[int, int, int, int, int], ...]
    shifts: tuple[tuple[int, int, int], ...]

    def apply(self, label: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return new ``(label, mask)``; per slice: boundaries, thin segments, blobs, shift."""
        label = label.copy()
        view = slice_view(label, self.axis)
        touched = (*self.boundary, *self.dropped_vessels, *self.blobs, *self.shifts)
        for index in sorted({entry[0] for entry in touched}):
            view[..., index] = self._apply_to_slice(view[..., index], index)
        return label, mask.copy()

    def _apply_to_slice(self, plane: np.ndarray, index: int) -> np.ndarray:
        plane = plane.copy()
        for _, cls, radius in (entry for entry in self.boundary if entry[0] == index):
            footprint = _disk(abs(radius))
            if radius > 0:  # grow into the background only: structures never overwrite others
                grown = ndimage.binary_dilation(plane == cls, structure=footprint)
                plane[grown & (plane == 0)] = cls
            else:  # shrink from the background only: borders with other structures stay put
                kept = ndimage.binary_erosion(plane > 0, structure=footprint)
                plane[(plane == cls) & ~kept] = 0
        dropped = [entry[1:] for entry in self.dropped_vessels if entry[0] == index]
        if dropped:
            # Which thin class a dropped voxel belongs to, before any segment is relabelled.
            before = plane.copy()
            for thin in self.thin_labels:
                _drop_segments(plane, before, thin, dropped)
        for _, i, j, radius, cls in (entry for entry in self.blobs if entry[0] == index):
            rows = np.arange(plane.shape[0])[:, None] - i
            cols = np.arange(plane.shape[1])[None, :] - j
            plane[rows**2 + cols**2 <= radius**2] = cls
        for _, di, dj in (entry for entry in self.shifts if entry[0] == index):
            plane = _shifted(plane, di, dj)
        return plane


def _drop_segments(
    plane: np.ndarray, before: np.ndarray, thin: int, dropped: list[tuple[int, int]]
) -> None:
    """Relabel, in place, each ``thin`` segment through a dropped voxel as its surroundings.

    A segment takes the label of the nearest voxel of another class; ``before`` (the plane
    before any segment was dropped) says which thin class a dropped voxel belongs to.
    """
    segments = plane == thin
    if segments.all():
        return
    components, _ = ndimage.label(segments, structure=np.ones((3, 3), dtype=bool))
    _, nearest = ndimage.distance_transform_edt(segments, return_indices=True)
    for i, j in dropped:
        if before[i, j] == thin and components[i, j]:
            segment = components == components[i, j]
            plane[segment] = plane[nearest[0][segment], nearest[1][segment]]


def _shifted(plane: np.ndarray, di: int, dj: int) -> np.ndarray:
    """Return ``plane`` moved by ``(di, dj)`` voxels, background where nothing moved in."""
    out = np.zeros_like(plane)
    rows, cols = plane.shape
    out[max(di, 0) : rows + min(di, 0), max(dj, 0) : cols + min(dj, 0)] = plane[
        max(-di, 0) : rows + min(-di, 0), max(-dj, 0) : cols + min(-dj, 0)
    ]
    return out


@dataclass(frozen=True)
class NoisyBoundaries:
    """Per-slice label noise of region growing plus manual correction (defaults: ``mild``).

    Every draw is independent per slice, which is what makes boundaries jump from slice to
    slice. Thin structures (``thin_labels``) are too thin to erode; their thin segments are
    dropped instead (relabelled as the surrounding tissue).

    Attributes:
        max_radius: boundary erosion or dilation radius, drawn from 1 to ``max_radius`` voxels.
        boundary_probability: chance that a structure's boundary moves in a slice.
        max_shift: largest in-plane shift of a slice, voxels per axis.
        shift_probability: chance that a slice is shifted.
        blobs_per_slice: mean number (Poisson) of spurious blobs per slice; each is a disk of a
            random class of the volume, centred within ``max_blob_radius`` of the slice's
            structures.
        max_blob_radius: blob radius, drawn from 1 to ``max_blob_radius`` voxels.
        vessel_drop_probability: chance that a thin segment of a slice is dropped.
        thin_vessel_radius: a segment is thin if no voxel of it lies deeper than this
            (in-slice distance to its edge, voxels).
        axis: the slice axis.
        thin_labels: classes dropped instead of eroded, handled in this order; ``()`` treats
            every class alike; None means not given: `resolve_modes` fills in the dataset's
            thin structures, and `sample` treats it as ``()``.

    Example:
        >>> NoisyBoundaries.severity("severe")["max_radius"]
        2
        >>> NoisyBoundaries(thin_labels=4).thin_labels
        (4,)
    """

    name: ClassVar[str] = "noisy"
    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "mild": {
            "max_radius": 1,
            "boundary_probability": 0.5,
            "max_shift": 1,
            "shift_probability": 0.2,
            "blobs_per_slice": 0.2,
            "max_blob_radius": 1,
            "vessel_drop_probability": 0.2,
        },
        "severe": {
            "max_radius": 2,
            "boundary_probability": 1.0,
            "max_shift": 2,
            "shift_probability": 0.5,
            "blobs_per_slice": 1.0,
            "max_blob_radius": 3,
            "vessel_drop_probability": 0.5,
        },
    }

    max_radius: int = 1
    boundary_probability: float = 0.5
    max_shift: int = 1
    shift_probability: float = 0.2
    blobs_per_slice: float = 0.2
    max_blob_radius: int = 1
    vessel_drop_probability: float = 0.2
    thin_vessel_radius: float = 1.5
    axis: int = SLICE_AXIS
    thin_labels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        integer("noisy", "max_radius", self.max_radius, minimum=1)
        integer("noisy", "max_shift", self.max_shift, minimum=0)
        integer("noisy", "max_blob_radius", self.max_blob_radius, minimum=1)
        for name in ("boundary_probability", "shift_probability", "vessel_drop_probability"):
            number("noisy", name, getattr(self, name), 0.0, 1.0)
        number("noisy", "blobs_per_slice", self.blobs_per_slice)
        number("noisy", "thin_vessel_radius", self.thin_vessel_radius)
        integer("noisy", "axis", self.axis)
        if self.thin_labels is not None:
            object.__setattr__(
                self, "thin_labels", labels("noisy", "thin_labels", self.thin_labels)
            )

    @classmethod
    def severity(cls, value: Any) -> dict[str, Any]:
        """Fields of a preset: ``mild`` or ``severe``."""
        if value not in cls.PRESETS:
            raise ValueError(f"noisy severity must be one of {list(cls.PRESETS)}, got {value!r}")
        return dict(cls.PRESETS[value])

    @classmethod
    def text_value(cls, field: str, text: str) -> Any:
        """Parse a string spec's value: ``thin_labels`` are ``4``, ``2+5`` or ``none`` (``()``).

        Example:
            >>> NoisyBoundaries.text_value("thin_labels", "2+5")
            (2, 5)
        """
        if field != "thin_labels":
            return scalar(text)
        if text.lower() == "none":
            return ()
        return tuple(scalar(part.strip()) for part in text.split("+"))

    def sample(self, label: np.ndarray, rng: np.random.Generator) -> NoisyDraw:
        """Draw every slice's boundary moves, dropped segments, blobs and shift for ``label``."""
        label = checked_label(label)
        axis = slice_axis(self.axis, label.ndim)
        view = slice_view(label, axis)
        n_slices = view.shape[-1]
        thin_labels = self.thin_labels or ()
        classes = [int(c) for c in np.unique(label) if c > 0]
        shaped = [c for c in classes if c not in thin_labels]
        # Fixed-shape draws first, so that what one slice shows never shifts another's numbers.
        moves = rng.random((n_slices, len(shaped))) < self.boundary_probability
        radii = rng.integers(1, self.max_radius + 1, (n_slices, len(shaped)))
        signs = rng.choice(np.array([-1, 1]), (n_slices, len(shaped)))
        shifted = rng.random(n_slices) < self.shift_probability
        n_blobs = rng.poisson(self.blobs_per_slice, n_slices)
        offsets = [
            (di, dj)
            for di in range(-self.max_shift, self.max_shift + 1)
            for dj in range(-self.max_shift, self.max_shift + 1)
            if (di, dj) != (0, 0)
        ]
        boundary, dropped, blobs, shifts = [], [], [], []
        for index in range(n_slices):
            plane = view[..., index]
            present = set(np.unique(plane).tolist())
            for column, cls in enumerate(shaped):
                if moves[index, column] and cls in present:
                    boundary.append((index, cls, int(signs[index, column] * radii[index, column])))
            for thin in thin_labels:
                if thin in present:
                    dropped.extend((index, *ij) for ij in self._thin_segments(plane, thin, rng))
            if n_blobs[index] and present - {0}:
                near = ndimage.binary_dilation(plane > 0, structure=_disk(self.max_blob_radius))
                candidates = np.argwhere(near)
                picks = rng.choice(len(candidates), n_blobs[index])
                blob_radii = rng.integers(1, self.max_blob_radius + 1, n_blobs[index])
                blob_classes = rng.choice(np.array(classes), n_blobs[index])
                for pick, radius, cls in zip(picks, blob_radii, blob_classes, strict=True):
                    i, j = candidates[pick]
                    blobs.append((index, int(i), int(j), int(radius), int(cls)))
            if shifted[index] and offsets:
                di, dj = offsets[rng.integers(len(offsets))]
                shifts.append((index, di, dj))
        return NoisyDraw(
            axis, thin_labels, tuple(boundary), tuple(dropped), tuple(blobs), tuple(shifts)
        )

    def _thin_segments(
        self, plane: np.ndarray, thin: int, rng: np.random.Generator
    ) -> list[tuple[int, int]]:
        """One voxel ``(i, j)`` of each thin segment of class ``thin`` chosen for dropping."""
        segments = plane == thin
        components, count = ndimage.label(segments, structure=np.ones((3, 3), dtype=bool))
        depth = ndimage.distance_transform_edt(segments)
        deepest = ndimage.maximum(depth, components, np.arange(1, count + 1))
        drop = rng.random(count) < self.vessel_drop_probability
        chosen = []
        for component in np.flatnonzero(drop & (np.asarray(deepest) <= self.thin_vessel_radius)):
            i, j = np.argwhere(components == component + 1)[0]
            chosen.append((int(i), int(j)))
        return chosen
