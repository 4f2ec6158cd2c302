"""Signed distance maps of ground-truth structures, for distance-weighted losses.

Computed once per subject (and cached in the process, so the variants of an
ablation run with ``--jobs 1`` share them), never per training step: the data module
attaches them to each subject as a ``distance`` image that the spatial
augmentations move together with the label.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from datamodules.labels import read_label
from datamodules.process_cache import ByteBoundedCache
from datamodules.tasks import index_volume


def signed_distance_maps(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class, the signed Euclidean distance (voxels) to the structure's boundary.

    Negative inside the structure, 0 on its inner boundary, positive outside. A
    class absent from the volume is ``diagonal`` (the volume diagonal) everywhere,
    farther than any real distance.

    Args:
        labels: class indices, any number of spatial dims.
        num_classes: classes, background included.

    Returns:
        ``float32`` array of shape ``(num_classes, *labels.shape)``.
    """
    diagonal = float(np.sqrt(np.sum(np.square(labels.shape))))
    maps = np.full((num_classes, *labels.shape), diagonal, dtype=np.float32)
    for index in range(num_classes):
        inside = labels == index
        if not inside.any():
            continue
        if inside.all():
            maps[index] = (
                -ndimage.distance_transform_edt(np.pad(inside, 1))[(slice(1, -1),) * labels.ndim]
                + 1
            )
            continue
        outside_distance = ndimage.distance_transform_edt(~inside)
        inside_distance = ndimage.distance_transform_edt(inside)
        maps[index] = np.where(inside, 1 - inside_distance, outside_distance)
    return maps


# Phantom ablations (5 tasks x 27 subjects) fit in about 1 GB.
CACHE_BYTES = 2 * 2**30
_cache: ByteBoundedCache[torch.Tensor] = ByteBoundedCache(CACHE_BYTES)


def distance_maps_for(
    label_path: Path, to_index: Mapping[int, int], num_classes: int
) -> torch.Tensor:
    """Distance maps ``(C, H, W, D)`` of a label file under a task's class indices.

    Kept in a process-wide cache (``ByteBoundedCache`` of ``CACHE_BYTES``), so that
    the variants of an ablation run in one process share them.
    """
    path = Path(label_path).resolve()
    key = (str(path), path.stat().st_mtime, tuple(sorted(to_index.items())), num_classes)

    def make() -> torch.Tensor:
        labels = index_volume(read_label(path), to_index)
        return torch.from_numpy(signed_distance_maps(labels, num_classes))

    return _cache.get_or_make(key, make)
