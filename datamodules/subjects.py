"""TorchIO subjects from manifest records, and the batches the LightningModules receive.

A record becomes a ``tio.Subject`` with one ``ScalarImage`` per channel and a
``label`` map read as integers (``torchio_label_reader``); weakly supervised
training subjects swap in their weak label plus ``mask`` and ``sampling`` maps.
``Collate`` stacks patches or one whole volume into the dict batches every
thread's ``training_step`` / ``validation_step`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchio as tio
from torchio.data.io import read_image

from datamodules.labels import torchio_label_reader
from datamodules.manifest import SubjectRecord
from datamodules.shared_volumes import SharedVolumeReader
from datamodules.weak_supervision import WeakSupervision


def attach_weak_label(subject: tio.Subject, weak: WeakSupervision) -> None:
    """Swap the subject's label for its weak label; add its ``mask`` and ``sampling`` maps."""
    drawn = weak.labels[subject["subject"]]
    affine = subject["label"].affine
    subject.remove_image("label")
    subject.add_image(tio.LabelMap(tensor=drawn.label[None], affine=affine), "label")
    subject.add_image(tio.LabelMap(tensor=drawn.mask[None], affine=affine), "mask")
    subject.add_image(tio.LabelMap(tensor=drawn.sampling[None], affine=affine), "sampling")


def to_subject(record: SubjectRecord, *, shared: bool = False) -> tio.Subject:
    """A ``tio.Subject`` with one ``ScalarImage`` per channel and a ``label`` map.

    Labels are read through ``torchio_label_reader``: integers, whatever the file's type.
    ``shared`` reads through ``SharedVolumeReader``: each settled file is decoded once
    per process, for subjects that are loaded up front (``cache_subjects``); TorchIO
    decodes an image with a custom reader even to answer a shape query.
    """
    image_reader, label_reader = read_image, torchio_label_reader
    if shared:
        image_reader, label_reader = (
            SharedVolumeReader(read_image),
            SharedVolumeReader(label_reader),
        )
    images: dict[str, Any] = {
        name: tio.ScalarImage(path, reader=image_reader) for name, path in record.channels.items()
    }
    if record.label is not None:
        images["label"] = tio.LabelMap(record.label, reader=label_reader)
    return tio.Subject(subject=record.subject, **images)


class Collate:
    """Batches of one data module's channels, 2D (squeezed) or 3D.

    Args:
        channels: the channels stacked into ``image``, in this order.
        spatial_dims: 2 squeezes the one-voxel-thick last axis of patches.
    """

    def __init__(self, channels: Sequence[str], spatial_dims: int) -> None:
        self.channels = tuple(channels)
        self.spatial_dims = spatial_dims

    def patches(self, patches: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack TorchIO patches into ``image (B, C, *spatial)``, ``label (B, *spatial)``.

        With distance maps, also ``distance (B, K, *spatial)``; with weak labels,
        ``mask (B, *spatial)`` (1 = labelled). ``subject`` (names) and ``location``
        (``(B, 6)``: first and past-last voxel of each patch in its volume) say where
        each patch came from, for modules that treat slices differently.
        """
        batch = {
            "image": torch.stack([self.image(patch) for patch in patches]),
            "label": torch.stack([patch["label"][tio.DATA][0] for patch in patches]).long(),
        }
        if "distance" in patches[0]:
            batch["distance"] = torch.stack([patch["distance"][tio.DATA] for patch in patches])
        if "mask" in patches[0]:
            batch["mask"] = torch.stack([patch["mask"][tio.DATA][0] for patch in patches]).float()
        if self.spatial_dims == 2:
            batch = {key: value.squeeze(-1) for key, value in batch.items()}
        batch["subject"] = [patch["subject"] for patch in patches]
        batch["location"] = torch.stack([torch.as_tensor(patch[tio.LOCATION]) for patch in patches])
        return batch

    def volume(self, subjects: list[tio.Subject]) -> dict[str, Any]:
        """One whole volume: ``image (1, C, H, W, D)``, ``label (1, H, W, D)`` and metadata."""
        (subject,) = subjects
        reference = subject[self.channels[0]]
        batch: dict[str, Any] = {
            "image": self.image(subject).unsqueeze(0),
            "subject": subject["subject"],
            "affine": torch.as_tensor(reference.affine),
            "spacing": tuple(float(s) for s in reference.spacing),
        }
        if "label" in subject:
            batch["label"] = subject["label"][tio.DATA][0].long().unsqueeze(0)
        if "distance" in subject:
            batch["distance"] = subject["distance"][tio.DATA].unsqueeze(0)
        return batch

    def image(self, subject: dict[str, Any]) -> torch.Tensor:
        """The channels of a subject or patch, stacked: ``(C, *spatial)`` float."""
        return torch.cat([subject[channel][tio.DATA] for channel in self.channels]).float()
