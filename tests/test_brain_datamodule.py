"""BrainDataModule: splits, batch shapes in 2D and 3D, tasks, determinism, inference."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.brain import BrainDataModule
from datamodules.manifest import ManifestError
from lightning_modules.inference import predict_volume
from tests.conftest import TINY_SHAPE


def make_data(manifest: Path, **options: object) -> BrainDataModule:
    settings: dict[str, object] = {
        "patch_size": (32, 32),
        "samples_per_volume": 4,
        "queue_length": 8,
        "batch_size": 4,
        "augmentation": "none",
    }
    settings.update(options)
    data = BrainDataModule(str(manifest), **settings)
    data.setup("fit")
    return data


def first_batch(data: BrainDataModule) -> dict[str, torch.Tensor]:
    return next(iter(data.train_dataloader()))


@pytest.mark.parametrize(
    ("options", "image_shape", "label_shape"),
    [
        ({}, (4, 2, 32, 32), (4, 32, 32)),
        ({"channels": ["angiography"]}, (4, 1, 32, 32), (4, 32, 32)),
        ({"spatial_dims": 3, "patch_size": (24, 24, 16)}, (4, 2, 24, 24, 16), (4, 24, 24, 16)),
        ({"sampler": "uniform", "patch_size": (16, 40)}, (4, 2, 16, 40), (4, 16, 40)),
    ],
)
def test_training_batch_shapes(phantom_manifest, options, image_shape, label_shape):
    batch = first_batch(make_data(phantom_manifest, **options))
    assert tuple(batch["image"].shape) == image_shape
    assert tuple(batch["label"].shape) == label_shape
    assert batch["label"].dtype == torch.long
    assert batch["image"].dtype == torch.float32


def test_volume_batches_are_whole_normalised_subjects(phantom_manifest):
    data = make_data(phantom_manifest)
    batch = next(iter(data.val_dataloader()))
    assert tuple(batch["image"].shape) == (1, 2, *TINY_SHAPE)
    assert tuple(batch["label"].shape) == (1, *TINY_SHAPE)
    assert batch["spacing"] == (2.0, 2.0, 2.0)
    assert batch["affine"].shape == (4, 4)
    record = next(r for r in data.records["val"] if r.subject == batch["subject"])
    for index, channel in enumerate(data.channels):
        raw = np.asarray(nib.load(record.channels[channel]).dataobj, dtype=np.float64)
        head = raw > raw.mean()  # the mask ZNormalization uses: brighter than the mean
        normalised = batch["image"][0, index].double().numpy()[head]
        # z-scored over the head: mean 0 and standard deviation 1 there, per channel
        assert abs(normalised.mean()) < 1e-4
        assert normalised.std() == pytest.approx(1.0, abs=1e-3)


def test_seeded_split_is_disjoint_and_stable(phantom_manifest):
    first = make_data(phantom_manifest, split_seed=3).records
    again = make_data(phantom_manifest, split_seed=3).records
    other = make_data(phantom_manifest, split_seed=4).records
    names = {split: [r.subject for r in first[split]] for split in ("train", "val", "test")}
    assert [len(names[s]) for s in ("train", "val", "test")] == [4, 1, 1]
    assert len({*names["train"], *names["val"], *names["test"]}) == 6
    assert names == {s: [r.subject for r in again[s]] for s in names}
    assert names != {s: [r.subject for r in other[s]] for s in names}


def test_split_column_is_respected(phantom_manifest, tmp_path):
    table = pd.read_csv(phantom_manifest)
    for column in ("cisternography", "angiography", "label"):
        table[column] = [str(phantom_manifest.parent / p) for p in table[column]]
    table["split"] = ["test", "train", "train", "val", "train", "train"]
    manifest = tmp_path / "with_split.csv"
    table.to_csv(manifest, index=False)
    shutil.copy(phantom_manifest.parent / "dataset.yaml", tmp_path)
    records = make_data(manifest).records
    assert [r.subject for r in records["test"]] == ["phantom_000"]
    assert [r.subject for r in records["val"]] == ["phantom_003"]
    assert "phantom_000" not in [r.subject for r in records["train"]]


def test_binary_task_has_two_classes_and_binary_labels(phantom_manifest):
    data = make_data(phantom_manifest, task="binary:brainstem")
    assert data.num_classes == 2
    assert data.class_names == ("background", "brainstem")
    label = next(iter(data.val_dataloader()))["label"]
    assert set(torch.unique(label).tolist()) == {0, 1}


def test_multiclass_labels_are_class_indices(phantom_manifest):
    data = make_data(phantom_manifest)
    label = next(iter(data.val_dataloader()))["label"]
    assert set(torch.unique(label).tolist()) == {0, 1, 2, 3, 4}


def test_label_sampler_favours_requested_class(phantom_manifest):
    vessels = {"background": 0.0, "vessels": 1.0}
    batch = first_batch(make_data(phantom_manifest, label_probabilities=vessels, batch_size=4))
    centre = batch["label"][:, 16, 16]
    assert bool((centre == 4).all())


@pytest.mark.parametrize("num_workers", [0, 1])
def test_same_seed_gives_same_batches(phantom_manifest, num_workers):
    batches = []
    for _ in range(2):
        pl.seed_everything(7)
        data = make_data(phantom_manifest, augmentation="mri", num_workers=num_workers)
        batches.append(first_batch(data))
    assert torch.equal(batches[0]["image"], batches[1]["image"])
    assert torch.equal(batches[0]["label"], batches[1]["label"])
    pl.seed_everything(8)
    other = first_batch(make_data(phantom_manifest, augmentation="mri", num_workers=num_workers))
    assert not torch.equal(batches[0]["image"], other["image"])


@pytest.mark.parametrize("preset", ["none", "light", "mri"])
def test_augmentation_presets_keep_shapes_and_labels(phantom_manifest, preset):
    dataset = make_data(phantom_manifest, augmentation=preset).subjects_dataset(
        "train", augment=True
    )
    subject = dataset[0]
    assert tuple(subject["cisternography"].shape) == (1, *TINY_SHAPE)
    assert set(torch.unique(subject["label"].data).tolist()) <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "binary:thalamus"}, "unknown structure 'thalamus'"),
        ({"spatial_dims": 2, "patch_size": (32, 32, 8)}, "patch_size must be 2 positive sizes"),
        ({"label_probabilities": {"pons": 1.0}}, "not classes of task"),
        ({"sampler": "weighted"}, "sampler must be 'label' or 'uniform'"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"channels": []}, "channels must be a non-empty list"),
        ({"channels": ["a", "a"]}, "channels must not repeat a name"),
        ({"samples_per_volume": 9, "queue_length": 8}, "must not exceed queue_length"),
    ],
)
def test_bad_options_raise_clear_errors(phantom_manifest, options, message):
    with pytest.raises(ValueError, match=message):
        BrainDataModule(str(phantom_manifest), **options)


def test_patch_larger_than_volume_names_subject_and_file(phantom_manifest):
    with pytest.raises(ManifestError, match=r"phantom_\d{3}.*smaller than patch_size"):
        make_data(phantom_manifest, patch_size=(64, 64))


def test_missing_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        make_data(tmp_path / "nowhere.csv")


@pytest.mark.parametrize(
    ("spatial_dims", "patch_size", "overlap"),
    [(2, None, 0), (2, (24, 24), 8), (3, None, 0), (3, (24, 24, 16), 8)],
)
def test_predict_volume_stitches_patches_exactly(spatial_dims, patch_size, overlap):
    """An identity 'network' must give back its input, whatever the patching."""
    image = torch.randn(3, 40, 36, 20)
    output = predict_volume(
        lambda x: x * 1.0,
        image,
        spatial_dims=spatial_dims,
        patch_size=patch_size,
        overlap=overlap,
        batch_size=5,
    )
    assert output.shape == image.shape
    assert torch.allclose(output, image, atol=1e-6)


def test_predict_volume_feeds_2d_tensors_in_2d_mode():
    shapes = []

    def network(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return x

    predict_volume(network, torch.zeros(2, 16, 12, 5), spatial_dims=2, batch_size=8)
    assert shapes == [(5, 2, 16, 12)]


def test_distance_maps_travel_with_patches_and_volumes(phantom_manifest):
    data = make_data(phantom_manifest, distance_maps=True, augmentation="mri")
    batch = first_batch(data)
    assert tuple(batch["distance"].shape) == (4, 5, 32, 32)
    # The label inside a patch lies where its own class's distance is <= 0 ...
    own = batch["distance"].gather(1, batch["label"].unsqueeze(1)).squeeze(1)
    assert float((own <= 0.5).float().mean()) > 0.95
    volume = next(iter(data.val_dataloader()))
    assert tuple(volume["distance"].shape) == (1, 5, *TINY_SHAPE)
    # ... and, without augmentation, exactly there.
    own = volume["distance"][0].gather(0, volume["label"]).squeeze(0)
    assert bool((own <= 0).all())


def test_no_distance_maps_unless_asked(phantom_manifest):
    assert "distance" not in first_batch(make_data(phantom_manifest))


def test_class_frequencies_are_training_voxel_shares(phantom_manifest):
    data = make_data(phantom_manifest)
    frequencies = data.class_frequencies
    assert len(frequencies) == 5
    assert sum(frequencies) == pytest.approx(1.0)
    assert frequencies[0] > frequencies[1] > frequencies[4] > 0
    binary = make_data(phantom_manifest, task="binary:vessels").class_frequencies
    assert binary[1] == pytest.approx(frequencies[4])


def test_cached_subjects_give_the_same_batches(phantom_manifest):
    batches = []
    for cache in (False, True):
        pl.seed_everything(5)
        batches.append(first_batch(make_data(phantom_manifest, cache_subjects=cache)))
    assert torch.equal(batches[0]["image"], batches[1]["image"])
    assert torch.equal(batches[0]["label"], batches[1]["label"])


def test_test_subjects_carry_no_distance_maps(phantom_manifest):
    data = make_data(phantom_manifest, distance_maps=True)
    assert "distance" not in next(iter(data.test_dataloader()))


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (["train"] * 5 + ["val"], r"no \['test'\] subjects"),
        (None, "too few"),
    ],
)
def test_unusable_splits_are_manifest_errors(phantom_manifest, tmp_path, splits, message):
    table = pd.read_csv(phantom_manifest)
    for column in ("cisternography", "angiography", "label"):
        table[column] = [str(phantom_manifest.parent / p) for p in table[column]]
    if splits is None:
        table = table.iloc[:2]
    else:
        table["split"] = splits
    manifest = tmp_path / "splits.csv"
    shutil.copy(phantom_manifest.parent / "dataset.yaml", tmp_path)
    table.to_csv(manifest, index=False)
    with pytest.raises(ManifestError, match=message):
        make_data(manifest)
