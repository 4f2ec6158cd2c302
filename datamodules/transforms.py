"""TorchIO transforms: preprocessing every subject gets, and augmentation presets.

Intensity augmentations that assume positive MR intensities (bias field, gamma)
run before normalisation; noise is added after it, on the normalised scale.

Every step is built with ``copy=False``: TorchIO's ``Compose`` (and the
``SubjectsDataset`` before it) already deep-copy the subject, so a deep copy per step
of every volume, distance maps included, only cost time
(``benchmarks/subject_preparation.py``). The steps draw the same random numbers
either way. They therefore change the subject they are given: use them through
``subject_transform``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torchio as tio

Augmentation = Literal["none", "light", "mri"]
AUGMENTATIONS: tuple[str, ...] = ("none", "light", "mri")


def foreground(tensor: torch.Tensor) -> torch.Tensor:
    """Voxels brighter than the image mean: the head, not the air around it."""
    return tensor > tensor.mean()


class LookupRemapLabels(tio.RemapLabels):
    """``tio.RemapLabels`` through a lookup table: the same labels, one pass over the volume.

    TorchIO's version finds the volume's unique values and then masks it once per mapped
    value; a table indexed by label value does it in one gather
    (``benchmarks/subject_preparation.py`` times the two). Values the mapping does not name
    stay as they are, as TorchIO leaves them (``datamodules.tasks.index_volume``, for the
    loss's class frequencies, sends them to 0 instead: the manifest checks reject them). A
    float label map, or negative values (no checked manifest has either), take TorchIO's
    own path.

    Example:
        >>> remap = LookupRemapLabels({4: 1, 1: 4})
        >>> remap(tio.LabelMap(tensor=torch.tensor([[[[0, 1, 4, 7]]]]))).data.flatten().tolist()
        [0, 4, 1, 7]
    """

    def __init__(self, remapping: dict[int, int], **kwargs: Any) -> None:
        if kwargs.get("masking_method") is not None:
            raise TypeError("LookupRemapLabels remaps every voxel: it takes no masking_method")
        kwargs.pop("masking_method", None)
        super().__init__(remapping, **kwargs)
        # What TorchIO records to replay the step (subject.get_applied_transforms()).
        self.args_names = ["remapping"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images(subject)
        if not self.remapping or min(self.remapping) < 0 or not all(map(_indexable, images)):
            return super().apply_transform(subject)
        for image in images:
            data = image.data
            table = torch.arange(max(int(data.max()), *self.remapping) + 1).to(data.dtype)
            mapped = torch.tensor(list(self.remapping.values())).to(data.dtype)
            table[list(self.remapping)] = mapped
            image.set_data(table[data.long()])
        return subject


def _indexable(image: tio.Image) -> bool:
    """Whether a label map's values can index a table: whole numbers >= 0."""
    return not image.data.is_floating_point() and int(image.data.min()) >= 0


def remap_labels(to_index: Mapping[int, int]) -> tio.Transform:
    """Map file label values to consecutive class indices of the task."""
    return LookupRemapLabels(dict(to_index), include=["label"], copy=False)


def normalise(channels: Sequence[str]) -> tio.Transform:
    """Per-channel z-score over the head, so contrasts on any scanner scale agree."""
    return tio.ZNormalization(masking_method=foreground, include=list(channels), copy=False)


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
    flip = tio.RandomFlip(axes=("LR",), copy=False)
    if preset == "light":
        small = (0, 0, 5) if spatial_dims == 2 else 5
        return [flip, tio.RandomAffine(scales=0.05, degrees=small, p=0.5, copy=False)], []
    spatial = [
        flip,
        tio.RandomAffine(scales=0.1, degrees=in_plane, p=0.5, copy=False),
        tio.RandomElasticDeformation(num_control_points=7, max_displacement=4, p=0.25, copy=False),
    ]
    include = list(channels)
    intensity = [
        tio.RandomBiasField(coefficients=0.3, p=0.3, include=include, copy=False),
        tio.RandomGamma(log_gamma=0.2, p=0.3, include=include, copy=False),
    ]
    noise = tio.RandomNoise(std=(0, 0.05), p=0.3, include=include, copy=False)
    return spatial + intensity, [noise]


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
