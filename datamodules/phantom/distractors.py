"""Opt-in distractors: blobs of brain-like tissue in fluid sheaths outside the skull, background.

On real head MRI a segmentation network's worst errors are scattered false positives far from
the brain, on tissue that looks like brain in both contrasts; these blobs give the phantom such
tissue, each wrapped in fluid as the brain is in CSF (see
`datamodules.phantom.anatomy.DistractorShape`). They only replace scalp and bone, so every
labelled structure, the CSF and the vessels stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from datamodules.phantom.anatomy import TISSUE_LABEL, DistractorShape, Tissue
from datamodules.phantom.shapes import Ellipsoid
from datamodules.phantom.vessels import VesselField

# Tissues a distractor may replace: outside the brain and its CSF, inside the head.
HOST_TISSUES = (Tissue.SCALP, Tissue.SKULL)


def distractor_rng(rng: np.random.Generator) -> np.random.Generator:
    """Return the distractors' generator: the subject's stream jumped far ahead.

    Jumping reads the subject's generator without advancing it, so that a subject with
    distractors has the same anatomy, intensities and noise as without them, yet all its
    randomness still comes from the subject's seed.
    """
    return np.random.Generator(rng.bit_generator.jumped())


def _host_mask(
    tissue: np.ndarray, vessels: VesselField, voxel_mm: np.ndarray, shape: DistractorShape
) -> np.ndarray:
    """Return where a distractor may lie: scalp or bone clear of brain and vessels, in view."""
    brain_distance = ndimage.distance_transform_edt(TISSUE_LABEL[tissue] == 0, sampling=voxel_mm)
    host = (
        np.isin(tissue, HOST_TISSUES)
        & (brain_distance > shape.brain_clearance_mm)
        & (vessels.surface > shape.vessel_clearance_mm)
    )
    # The grid's faces count as walls, so that blobs are seen whole rather than cut off.
    for axis in range(host.ndim):
        index = [slice(None)] * host.ndim
        index[axis] = [0, -1]
        host[tuple(index)] = False
    return host


def _sample_blob(
    rng: np.random.Generator,
    coords: Sequence[np.ndarray],
    room: np.ndarray,
    shape: DistractorShape,
) -> Ellipsoid:
    """Draw one blob: a radius, then a centre with at least that much `room` (mm) around it."""
    radius = min(rng.uniform(*shape.radius_mm), float(room.max()))
    candidates = np.flatnonzero(room >= radius)
    centre = candidates[rng.integers(len(candidates))]
    semi_axes = radius * np.concatenate([[1.0], rng.uniform(*shape.aspect, size=2)])
    return Ellipsoid(
        tuple(float(c.flat[centre]) for c in coords),
        tuple(float(a) for a in rng.permutation(semi_axes)),
    )


def distractor_mask(
    rng: np.random.Generator,
    coords: Sequence[np.ndarray],
    tissue: np.ndarray,
    vessels: VesselField,
    roughness: np.ndarray,
    *,
    count: int,
    voxel_mm: np.ndarray,
    shape: DistractorShape,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the voxels of `count` separate blobs placed at random in the scalp and bone, and of
    their fluid sheaths, as two boolean maps.

    Blobs are placed one by one where the free host tissue is deep enough for them and their
    sheath (a distance transform in template mm), so that they rarely touch its borders; blobs
    and sheaths are clipped to it so that they never cover anything else. The sheath is
    `shape.sheath_mm` thick, or one voxel on grids coarser than that. Where there is too little
    room (coarse grids) a blob shrinks to what fits; where there is none it is left out.

    Args:
        rng: the distractors' generator (`distractor_rng`).
        coords: template coordinates (mm) of every voxel.
        tissue: the subject's `Tissue` map.
        vessels: distances to the subject's vessel tree.
        roughness: the subject's surface perturbation, added to each blob's ellipsoid level.
        count: number of blobs, at least 0.
        voxel_mm: voxel size in template mm, per axis.
        shape: sizes and clearances of the blobs.
    """
    free = _host_mask(tissue, vessels, voxel_mm, shape)
    # At least one voxel thick, so that coarse grids keep a sheath too.
    sheath_mm = max(shape.sheath_mm, float(voxel_mm.max()))
    blobs = np.zeros(tissue.shape, dtype=bool)
    sheaths = np.zeros(tissue.shape, dtype=bool)
    for _ in range(count):
        room = ndimage.distance_transform_edt(free, sampling=voxel_mm) - sheath_mm
        if room.max() <= 0:
            break
        blob = _sample_blob(rng, coords, room, shape)
        inside = (blob.level(coords) + roughness < 1) & free
        gap = ndimage.distance_transform_edt(~inside, sampling=voxel_mm)
        sheath = (gap <= sheath_mm) & free & ~inside
        blobs |= inside
        sheaths |= sheath
        # A voxel's gap to the next sheath keeps the blobs apart, so that `count` of them show.
        free &= ~ndimage.binary_dilation(inside | sheath)
    return blobs, sheaths
