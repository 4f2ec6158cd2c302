"""Analytic shapes of the phantom: ellipsoids and tapered tubes, in template millimetres.

The anatomy is written with these shapes rather than with volumes, so that each subject only
evaluates them at its own deformed coordinates (see `datamodules.phantom.geometry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid in template millimetres."""

    center: Vector
    semi_axes: Vector

    def level(self, coords: Sequence[np.ndarray], grow_mm: float = 0.0) -> np.ndarray:
        """Return sum(((p - c) / (a + grow)) ** 2), below 1 inside; `grow_mm` dilates it."""
        return sum(
            ((p - c) / (a + grow_mm)) ** 2
            for p, c, a in zip(coords, self.center, self.semi_axes, strict=True)
        )

    def mirrored(self) -> Ellipsoid:
        """Return the left-right mirror image (x -> -x)."""
        x, y, z = self.center
        return Ellipsoid((-x, y, z), self.semi_axes)


@dataclass(frozen=True)
class Tube:
    """Straight tube whose radius tapers linearly from `start` to `end` (a capsule if equal)."""

    start: Vector
    end: Vector
    radius_start: float
    radius_end: float


def tube_gaps(
    coords: Sequence[np.ndarray],
    starts: np.ndarray,
    ends: np.ndarray,
    radius_starts: np.ndarray,
    radius_ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (distance to wall, local radius) of points to K tapered tubes, each (..., K).

    `coords` holds the x, y and z arrays of the points; working per component avoids numpy's
    slow reductions over a length-3 axis.
    """
    direction = ends - starts
    length2 = np.maximum((direction**2).sum(axis=1), 1e-12)
    relative = [c[..., None] - starts[:, axis] for axis, c in enumerate(coords)]
    t = sum(r * direction[:, axis] for axis, r in enumerate(relative)) / length2
    t = np.clip(t, 0.0, 1.0)
    distance2 = sum((r - t * direction[:, axis]) ** 2 for axis, r in enumerate(relative))
    radius = radius_starts + t * (radius_ends - radius_starts)
    return np.sqrt(distance2) - radius, radius


def tube_distance(coords: Sequence[np.ndarray], tube: Tube) -> np.ndarray:
    """Return the distance (mm) from every voxel to the wall of one tube, negative inside."""
    gap, _ = tube_gaps(
        coords,
        np.array([tube.start], dtype=np.float32),
        np.array([tube.end], dtype=np.float32),
        np.float32(tube.radius_start),
        np.float32(tube.radius_end),
    )
    return gap[..., 0]
