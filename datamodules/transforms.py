"""TorchIO transforms: preprocessing every subject gets, and augmentation presets.

Intensity augmentations that assume positive MR intensities (bias field, gamma)
run before normalisation; noise is added after it, on the normalised scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torchio as tio

Augmentation = Literal["none", "light", "mri"]
AUGMENTATIONS: tuple[str, ...] = ("none", "light", "mri")


def foreground(tensor: torch.Tensor) -> torch.Tensor:
    """Voxels brighter than the image mean: the head, not the air around it."""
    return tensor > tensor.mean()


def remap_labels(to_index: Mapping[int, int]) -> tio.Transform:
    """Map file label values to consecutive class indices of the task."""
    return tio.RemapLabels(dict(to_index), include=["label"])


def normalise(channels: Sequence[str]) -> tio.Transform:
    """Per-channel z-score over the head, so contrasts on any scanner scale agree."""
    return tio.ZNormalization(masking_method=foreground, include=list(channels))


def augmentation(
    preset: Augmentation, *, spatial_dims: int, channels: Sequence[str]
) -> tuple[list, list]:
    """The preset's transforms as ``(before_normalisation, after_normalisation)``.

    Spatial transforms move every image of a subject together (label and
    distance maps included); intensity transforms touch only the ``channels``.
    In 2D mode, rotations stay in-plane so slices are not mixed across the
    slice axis.
    """
    if preset not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {preset!r}; choose one of {list(AUGMENTATIONS)}")
    if preset == "none":
        return [], []
    in_plane = (0, 0, 10) if spatial_dims == 2 else 10
    flip = tio.RandomFlip(axes=("LR",))
    if preset == "light":
        small = (0, 0, 5) if spatial_dims == 2 else 5
        return [flip, tio.RandomAffine(scales=0.05, degrees=small, p=0.5)], []
    spatial = [
        flip,
        tio.RandomAffine(scales=0.1, degrees=in_plane, p=0.5),
        tio.RandomElasticDeformation(num_control_points=7, max_displacement=4, p=0.25),
    ]
    include = list(channels)
    intensity = [
        tio.RandomBiasField(coefficients=0.3, p=0.3, include=include),
        tio.RandomGamma(log_gamma=0.2, p=0.3, include=include),
    ]
    return spatial + intensity, [tio.RandomNoise(std=(0, 0.05), p=0.3, include=include)]


def subject_transform(
    to_index: Mapping[int, int],
    *,
    channels: Sequence[str],
    preset: Augmentation = "none",
    spatial_dims: int = 3,
    has_label: bool = True,
) -> tio.Compose:
    """Preprocessing plus the augmentation preset, in the order TorchIO applies them."""
    before, after = augmentation(preset, spatial_dims=spatial_dims, channels=channels)
    transforms: Sequence[tio.Transform] = [
        *([remap_labels(to_index)] if has_label else []),
        *before,
        normalise(channels),
        *after,
    ]
    return tio.Compose(list(transforms))
