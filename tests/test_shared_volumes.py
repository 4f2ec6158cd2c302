"""Volumes decoded once per process and shared by its fits (``cache_subjects``)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import pytest
import torch
from torchio.data.io import read_image

from datamodules.brain import BrainDataModule
from datamodules.labels import torchio_label_reader
from datamodules.manifest_records import SETTLED_SECONDS
from datamodules.shared_volumes import (
    SharedVolumeReader,
    forget_shared_volumes,
    shared_volume_count,
)


def settle(path: Path) -> None:
    """Date a file back past ``SETTLED_SECONDS``, as a file written before the run is."""
    past = time.time() - 10 * SETTLED_SECONDS
    os.utime(path, (past, past))


def write_volume(path: Path, value: float, *, settled: bool = True) -> Path:
    nib.save(nib.Nifti1Image(np.full((4, 5, 6), value, dtype=np.float32), np.eye(4)), path)
    if settled:
        settle(path)
    return path


class CountingReader:
    """TorchIO's reader, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.__module__, self.__qualname__ = "tests", f"CountingReader{id(self)}"

    def __call__(self, path):
        self.calls += 1
        return read_image(path)


@pytest.fixture(autouse=True)
def no_shared_volumes():
    forget_shared_volumes()
    yield
    forget_shared_volumes()


def test_a_settled_file_is_decoded_once_and_again_when_rewritten(tmp_path):
    path = write_volume(tmp_path / "scan.nii.gz", 1.0)
    counting = CountingReader()
    reader = SharedVolumeReader(counting)
    first, affine = reader(path)
    second, _ = reader(str(path))
    assert counting.calls == 1
    assert second is first  # shared, not copied
    affine[0, 0] = 7.0  # the affine is the caller's own
    assert reader(path)[1][0, 0] == 1.0
    write_volume(path, 2.0)  # written anew: another modification time
    assert float(reader(path)[0].max()) == 2.0
    assert counting.calls == 2


def test_a_file_written_seconds_ago_is_read_every_time(tmp_path):
    path = write_volume(tmp_path / "scan.nii.gz", 1.0, settled=False)
    counting = CountingReader()
    reader = SharedVolumeReader(counting)
    reader(path)
    reader(path)
    assert counting.calls == 2
    assert shared_volume_count() == 0


def test_fits_share_the_volumes_and_leave_them_as_the_files_hold_them(phantom_manifest, tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(phantom_manifest.parent, folder)
    volumes = sorted(folder.glob("*/*.nii.gz"))
    for path in volumes:
        settle(path)
    manifest = folder / phantom_manifest.name
    options = {
        "patch_size": (32, 32),
        "samples_per_volume": 4,
        "queue_length": 8,
        "batch_size": 4,
        "augmentation": "mri",  # every in-place step of the transforms
        "val_fraction": 0.2,
        "test_fraction": 0.2,
    }

    def batches(cache: bool) -> list[dict[str, torch.Tensor]]:
        pl.seed_everything(3)
        data = BrainDataModule(str(manifest), cache_subjects=cache, **options)
        data.setup("fit")
        loaders = (data.train_dataloader(), data.val_dataloader(), data.test_dataloader())
        return [batch for loader in loaders for batch in loader]

    shared = batches(True)
    assert shared_volume_count() == len(volumes)  # every split's files, once each
    again = batches(True)
    assert shared_volume_count() == len(volumes)
    for path in volumes:  # what the fits left kept is what the files hold
        label = path.name == "label.nii.gz"
        kept, _ = SharedVolumeReader(torchio_label_reader if label else read_image)(path)
        fresh, _ = (torchio_label_reader if label else read_image)(path)
        assert torch.equal(kept, fresh), path
    for batch_list in (again, batches(False)):
        assert len(batch_list) == len(shared)
        for mine, theirs in zip(shared, batch_list, strict=True):
            assert torch.equal(mine["image"], theirs["image"])
            assert torch.equal(mine["label"], theirs["label"])
