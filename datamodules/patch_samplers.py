"""TorchIO's patch samplers with a cheaper cut: the same patches at a tenth of the cost.

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

import numpy as np
import torch
import torchio as tio


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
