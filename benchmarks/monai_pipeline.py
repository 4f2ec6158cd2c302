"""The MONAI peer of ``benchmarks/time_to_dice.py``: a tutorial-style 2D slice pipeline.

As MONAI's tutorials train a 2D network on slices of 3D volumes: ``LoadImaged``,
``EnsureChannelFirstd``, the channels concatenated, ``NormalizeIntensityd`` (non-zero
voxels, per channel) in a ``CacheDataset``; then ``RandCropByPosNegLabeld`` (foreground
and background centres equally often) of one-slice-thick patches, ``SqueezeDimd`` to
2D and a left-right ``RandFlipd``; ``BasicUNet(spatial_dims=2)`` with its default
features, ``DiceCELoss(to_onehot_y=True, softmax=True)``, Adam at 1e-3, and whole-volume
evaluation by ``SliceInferer``. Patch size, patches per step and loader workers are the
project's profile's, so that the two pipelines see the same amount of data per step.
Not run alone: ``time_to_dice.py`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import CacheDataset, DataLoader
from monai.inferers import SliceInferer
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from monai.transforms import (
    Compose,
    ConcatItemsd,
    DeleteItemsd,
    EnsureChannelFirstd,
    LoadImaged,
    NormalizeIntensityd,
    RandCropByPosNegLabeld,
    RandFlipd,
    SqueezeDimd,
)
from monai.utils import set_determinism

from benchmarks.training_clock import TrainingClock, test_dice
from datamodules.brain import BrainDataModule
from datamodules.manifest import SubjectRecord

LEARNING_RATE = 1e-3  # the tutorials' Adam
SAMPLES_PER_VOLUME = 4  # RandCropByPosNegLabeld's num_samples in the tutorials


def loading(channels: Sequence[str], *, with_label: bool) -> list:
    """The deterministic transforms: load, channels first, concatenate, normalise."""
    keys = [*channels, "label"] if with_label else list(channels)
    return [
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        ConcatItemsd(keys=list(channels), name="image"),
        DeleteItemsd(keys=list(channels)),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ]


def records_as_dicts(records: Sequence[SubjectRecord], *, with_label: bool) -> list[dict]:
    """MONAI's data list: one dict of file paths per subject."""
    items = []
    for record in records:
        item = {name: str(path) for name, path in record.channels.items()}
        if with_label:
            item["label"] = str(record.label)
        items.append(item)
    return items


class MonaiPipeline:
    """The tutorial pipeline on a data module's training subjects, at its patch sizes.

    Args:
        data: the project's data module, loaded (its split, channels and sizes).
        seed: ``monai.utils.set_determinism``'s seed.
        inference_batch_size: slices per forward pass at evaluation.
    """

    def __init__(self, data: BrainDataModule, *, seed: int, inference_batch_size: int) -> None:
        set_determinism(seed=seed)
        self.data = data
        self.inference_batch_size = inference_batch_size
        self.num_classes = data.num_classes
        self.network = BasicUNet(
            spatial_dims=2, in_channels=data.in_channels, out_channels=self.num_classes
        )
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.optimiser = torch.optim.Adam(self.network.parameters(), lr=LEARNING_RATE)

    def loader(self) -> DataLoader:
        """Cached volumes, then random one-slice patches squeezed to 2D."""
        keys = ["image", "label"]
        transform = Compose(
            [
                *loading(self.data.channels, with_label=True),
                RandCropByPosNegLabeld(
                    keys=keys,
                    label_key="label",
                    spatial_size=(*self.data.patch_size, 1),
                    pos=1,
                    neg=1,
                    num_samples=SAMPLES_PER_VOLUME,
                ),
                SqueezeDimd(keys=keys, dim=-1),
                RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            ]
        )
        items = records_as_dicts(self.data.records["train"], with_label=True)
        dataset = CacheDataset(items, transform, cache_rate=1.0, progress=False)
        return DataLoader(
            dataset,
            batch_size=max(1, self.data.batch_size // SAMPLES_PER_VOLUME),
            shuffle=True,
            num_workers=self.data.num_workers,
        )

    def test_images(self) -> list[torch.Tensor]:
        """The test subjects' images ``(C, H, W, D)`` through the deterministic transforms."""
        transform = Compose(loading(self.data.channels, with_label=False))
        items = records_as_dicts(self.data.records["test"], with_label=False)
        return [torch.as_tensor(transform(item)["image"]) for item in items]

    def evaluate(self, cases: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """Test Dice of whole volumes, slice by slice along the last axis."""
        inferer = SliceInferer(
            roi_size=tuple(cases[0][0].shape[1:3]),
            sw_batch_size=self.inference_batch_size,
            spatial_dim=2,
            overlap=0.0,
        )
        self.network.eval()
        dice = test_dice(
            lambda image: inferer(image.unsqueeze(0), self.network)[0], cases, self.num_classes
        )
        self.network.train()
        return dice

    def train(self, clock: TrainingClock) -> None:
        """The tutorial's loop, epoch after epoch, until the clock's budget is spent."""
        loader = self.loader()  # inside the clock: caching is part of this pipeline's time
        self.network.train()
        while True:
            for batch in loader:
                self.optimiser.zero_grad()
                value = self.loss(self.network(batch["image"]), batch["label"])
                value.backward()
                self.optimiser.step()
                if clock.tick():
                    return
