"""Grids of the phantom: checks, the voxel-to-world affine and each subject's coordinates.

Each subject draws one deformed coordinate grid (random affine plus a smooth elastic field) and
evaluates the template's shapes there, which is much faster than building and resampling
volumes. The template is scaled isotropically so that the whole head fits the field of view of
any grid; `spacing` therefore sets the voxel size and the head's physical size, never how much
of the head is visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from datamodules.phantom.anatomy import TEMPLATE_HALF_EXTENT_MM, SubjectVariability

DEFAULT_SHAPE: tuple[int, int, int] = (96, 96, 64)
DEFAULT_SPACING: tuple[float, float, float] = (2.0, 2.0, 2.0)
MIN_AXIS_VOXELS = 16


def validated_geometry(
    shape: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Check and normalise a grid; raise ValueError naming the bad argument."""
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"shape and spacing need 3 values each, got {shape!r} and {spacing!r}")
    if any(int(n) != n or n < MIN_AXIS_VOXELS for n in shape):
        raise ValueError(
            f"shape must be 3 integers of at least {MIN_AXIS_VOXELS} voxels, got {shape!r}"
        )
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be 3 positive finite numbers (mm), got {spacing!r}")
    nx, ny, nz = (int(n) for n in shape)
    sx, sy, sz = (float(s) for s in spacing)
    return (nx, ny, nz), (sx, sy, sz)


def phantom_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Return the 4x4 RAS+ voxel-to-world affine: diagonal `spacing`, volume centre at (0, 0, 0)."""
    shape, spacing = validated_geometry(shape, spacing)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)
    return affine


def _template_scale(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """Template mm per world mm, chosen so the template box just fits inside the field of view."""
    half_fov = np.array(shape) * np.array(spacing) / 2
    return float(np.max(TEMPLATE_HALF_EXTENT_MM / half_fov))


def smooth_random_field(
    rng: np.random.Generator, shape: tuple[int, ...], n_control: int
) -> np.ndarray:
    """Return a smooth zero-mean, unit-std random field of `shape` (float32).

    Random coefficients on a coarse lattice are interpolated with separable Gaussian kernels:
    three small matrix products, far cheaper than filtering or zooming a full-size volume.
    """
    field = rng.standard_normal((n_control,) * len(shape))
    centres = np.linspace(0.0, 1.0, n_control)
    for n in shape:
        positions = (np.arange(n) + 0.5) / n
        kernel = np.exp(-0.5 * ((positions[:, None] - centres[None]) * (n_control - 1)) ** 2)
        kernel /= kernel.sum(axis=1, keepdims=True)
        # Contracting the leading axis and appending the new one cycles through all three axes.
        field = np.tensordot(field, kernel, axes=(0, 1))
    field = field.astype(np.float32)
    return (field - field.mean()) / field.std()


def _random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """Return a rotation matrix composed of uniform rotations about x, y and z."""
    rotation = np.eye(3)
    for axis, angle in enumerate(np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = r @ rotation
    return rotation


def subject_coordinates(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    variability: SubjectVariability,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Return the template coordinates (mm) seen by each voxel, and the voxel size in template mm.

    The subject's head is the template moved by a random affine and warped by a smooth elastic
    field; evaluating the template at the inverse-mapped voxel positions draws that head.
    """
    voxel_mm = _template_scale(shape, spacing) * np.array(spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel_mm, strict=True)]
    grid = np.meshgrid(*[a.astype(np.float32) for a in axes], indexing="ij")

    rotation = _random_rotation(rng, variability.max_rotation_deg)
    scale = 1 + rng.uniform(-variability.max_scale_change, variability.max_scale_change, size=3)
    translation = rng.uniform(-variability.max_translation_mm, variability.max_translation_mm, 3)
    # Forward map: template -> subject is p -> rotation @ (scale * p) + translation; invert it.
    # Written out element-wise rather than as a matrix product, which BLAS may round differently
    # from one CPU to another.
    inverse = np.diag(1 / scale) @ rotation.T
    shifted = [g - np.float32(t) for g, t in zip(grid, translation, strict=True)]
    coords = []
    for row in inverse:
        elastic = smooth_random_field(rng, shape, variability.elastic_control_points)
        template = sum(np.float32(w) * g for w, g in zip(row, shifted, strict=True))
        coords.append(template + np.float32(variability.elastic_std_mm) * elastic)
    return coords, voxel_mm
