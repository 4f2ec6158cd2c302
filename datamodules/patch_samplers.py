"""Training patches: checks of their size, and TorchIO's samplers with a cheaper cut.

The samplers give the same patches as TorchIO's at a tenth of the cost.

TorchIO cuts each patch with its ``Crop`` transform, which builds a transform, parses the
subject, deep-copies its attributes and history and checks its space, about 0.8 ms a
patch on a 2-core CPU; the training queue of a 2D run cuts 16 patches a batch, about a
tenth of the step (``benchmarks/data_wait.py``). These samplers keep TorchIO's choice of
patch centres and slice the tensors directly.

TorchIO's ``Crop`` draws one random number per patch (every transform's probability
check). ``SlicedCrop`` draws it too, so that the positions, the augmentation and the
queue's shuffle, which all come from torch's random stream, stay exactly what they were
with TorchIO's cut, and so do a run's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio

from datamodules.manifest import ManifestError, SubjectRecord


def checked_patch_size(patch_size: Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """``patch_size`` as integers; raise ValueError unless it has ``spatial_dims`` sizes >= 1."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != spatial_dims or min(patch) < 1:
        raise ValueError(
            f"patch_size must be {spatial_dims} positive sizes for spatial_dims="
            f"{spatial_dims}, got {list(patch_size)}"
        )
    return patch


def check_patch_fits(
    records: Sequence[SubjectRecord], patch_size: Sequence[int], manifest: Path
) -> None:
    """Raise ManifestError unless the patch fits inside every volume (headers read only)."""
    for record in records:
        path = next(iter(record.channels.values()))
        shape = nib.load(path).shape[: len(patch_size)]
        if any(p > s for p, s in zip(patch_size, shape, strict=True)):
            raise ManifestError(
                f"Manifest '{manifest}': subject '{record.subject}', file '{path}': "
                f"volume shape {tuple(shape)} is smaller than patch_size "
                f"{list(patch_size)}; lower data.patch_size (or use a smaller profile)"
            )


class SlicedCrop:
    """Mixin for a ``tio`` patch sampler: cut a patch by slicing every image's tensor."""

    def crop(
        self, subject: tio.Subject, index_ini: Sequence[int], patch_size: Sequence[int]
    ) -> tio.Subject:
        """The patch at ``index_ini`` as a new subject: images cut and copied, the rest shared.

        Like TorchIO's cut: each image keeps its type and path, its affine moves to the
        patch's first voxel, and ``tio.LOCATION`` holds the first and past-last voxel.
        """
        torch.rand(1)  # TorchIO's Crop draws this number; see the module docstring
        start = np.asarray(index_ini, dtype=int)
        stop = start + np.asarray(patch_size, dtype=int)
        window = (slice(None), *(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True)))
        values = {}
        for name, value in subject.items():
            if isinstance(value, tio.Image):
                affine = value.affine.copy()
                affine[:3, 3] = value.affine[:3, :3] @ start + value.affine[:3, 3]
                value = type(value)(
                    tensor=value.data[window].clone(), affine=affine, path=value.path
                )
            values[name] = value
        patch = tio.Subject(values)
        patch.applied_transforms = list(subject.applied_transforms)
        patch[tio.LOCATION] = torch.as_tensor([*start.tolist(), *stop.tolist()])
        return patch


class LabelSampler(SlicedCrop, tio.LabelSampler):
    """``tio.LabelSampler`` (patch centres drawn by class) with the sliced cut."""


class UniformSampler(SlicedCrop, tio.UniformSampler):
    """``tio.UniformSampler`` (patch corners drawn anywhere) with the sliced cut."""


class WeightedSampler(SlicedCrop, tio.WeightedSampler):
    """``tio.WeightedSampler`` (patch centres drawn from a probability map) with the sliced cut."""
