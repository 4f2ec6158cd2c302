"""Weak labels in BrainDataModule: train on weak label and mask, evaluate on the truth."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from datamodules.brain import BrainDataModule
from datamodules.labels import read_label
from datamodules.manifest import ManifestError
from datamodules.weak_labels import apply_weak_label, draws_from_records, label_dice
from tests.test_brain_datamodule import first_batch, make_data


def training_batches(data: BrainDataModule, count: int = 3) -> list[dict[str, torch.Tensor]]:
    loader = iter(data.train_dataloader())
    return [next(loader) for _ in range(count)]


def test_batches_carry_the_mask_and_patches_lie_on_labelled_slices(phantom_manifest):
    data = make_data(phantom_manifest, weak_labels=["sparse:4"], samples_per_volume=8)
    for batch in training_batches(data):
        assert batch["mask"].shape == batch["label"].shape
        assert batch["mask"].dtype == torch.float32
        # 2D patches are single slices: each is wholly labelled (the sampler's doing).
        assert torch.all(batch["mask"] == 1)
    assert "mask" not in first_batch(make_data(phantom_manifest))


def test_uniform_sampler_also_draws_from_labelled_voxels_only(phantom_manifest):
    data = make_data(
        phantom_manifest, weak_labels=["sparse:8"], sampler="uniform", samples_per_volume=8
    )
    for batch in training_batches(data):
        assert torch.all(batch["mask"] == 1)


def test_3d_patches_mix_labelled_and_unlabelled_slices(phantom_manifest):
    data = make_data(
        phantom_manifest, weak_labels=["sparse:4"], spatial_dims=3, patch_size=(24, 24, 16)
    )
    mask = training_batches(data, 1)[0]["mask"]
    assert mask.shape == (4, 24, 24, 16)
    # Every 4th axial slice is labelled: a 16-slice patch holds exactly 4 of them.
    assert torch.all(mask.sum(dim=(1, 2)).gt(0).sum(dim=1) == 4)
    label = training_batches(data, 1)[0]["label"]
    assert label.dtype == torch.int64


def test_training_labels_are_the_simulated_weak_labels(phantom_manifest):
    data = make_data(phantom_manifest, weak_labels=["noisy:severe"], weak_label_seed=5)
    record = data.records["train"][0]
    drawn = data.weak.labels[record.subject]
    weak, mask = drawn.label, drawn.mask
    subject = data.subjects_dataset("train")[0]
    assert subject["subject"] == record.subject
    # Without augmentation the training subject carries the weak label, in class indices.
    np.testing.assert_array_equal(subject["label"].numpy()[0], data.task.index_volume(weak))
    truth = read_label(record.label)
    assert (weak != truth).any()
    np.testing.assert_array_equal(subject["mask"].numpy()[0], mask)


def test_validation_and_test_keep_the_clean_truth(phantom_manifest):
    data = make_data(phantom_manifest, weak_labels=["sparse:8", "noisy:severe"])
    for split in ("val", "test"):
        batch = next(iter(data._volume_loader(split)))
        record = data.records[split][0]
        truth = data.task.index_volume(np.asarray(nib.load(record.label).dataobj))
        np.testing.assert_array_equal(batch["label"][0].numpy(), truth)
        assert "mask" not in batch


def test_quality_is_each_structures_dice_against_the_truth(phantom_manifest):
    modes = ["noisy:mild"]
    data = make_data(phantom_manifest, weak_labels=modes, weak_label_seed=2)
    dice = []
    for record in data.records["train"]:
        drawn = data.weak.labels[record.subject]
        scores = label_dice(
            drawn.label,
            read_label(record.label),
            mask=drawn.mask,
            num_classes=5,
            class_names=data.task.class_names,
        )
        dice.append(scores["dice_vessels"])
    assert data.weak_label_quality["dice_vessels"] == pytest.approx(np.mean(dice))
    assert data.weak_label_quality["labelled_fraction"] == 1.0
    sparse = make_data(phantom_manifest, weak_labels=["sparse:4"]).weak_label_quality
    assert sparse["labelled_fraction"] == pytest.approx(0.25)
    assert sparse["dice_mean"] == 1.0
    severe = make_data(phantom_manifest, weak_labels=["noisy:severe"], weak_label_seed=2)
    assert severe.weak_label_quality["dice_mean"] < data.weak_label_quality["dice_mean"] < 1
    assert make_data(phantom_manifest).weak_label_quality == {}


def test_weak_labels_depend_on_seed_and_subject_not_on_the_split(phantom_manifest):
    first = make_data(phantom_manifest, weak_labels=["noisy:mild"], split_seed=0)
    other_split = make_data(phantom_manifest, weak_labels=["noisy:mild"], split_seed=1)
    other_seed = make_data(phantom_manifest, weak_labels=["noisy:mild"], weak_label_seed=1)
    shared = set(first.weak.labels) & set(other_split.weak.labels)
    assert shared
    for subject in shared:
        np.testing.assert_array_equal(
            first.weak.labels[subject].label, other_split.weak.labels[subject].label
        )
    subject = next(iter(first.weak.labels))
    assert (first.weak.labels[subject].label != other_seed.weak.labels[subject].label).any()
    # The draws are recorded, and replay to the same weak label without re-sampling.
    record = next(r for r in first.records["train"] if r.subject == subject)
    replayed, mask = apply_weak_label(
        read_label(record.label), draws_from_records(first.weak_label_draws[subject])
    )
    np.testing.assert_array_equal(replayed, first.weak.labels[subject].label)
    np.testing.assert_array_equal(mask, first.weak.labels[subject].mask)


def test_class_frequencies_come_from_the_weak_labels(phantom_manifest):
    full = make_data(phantom_manifest).class_frequencies
    weak = make_data(phantom_manifest, weak_labels=["missing:0.9"]).class_frequencies
    assert sum(weak) == pytest.approx(1.0)
    # Most structure slices are unlabelled, so background dominates even more.
    assert weak[1] < full[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weak_labels": ["blurry:3"]}, "unknown mode 'blurry'"),
        ({"weak_labels": ["sparse:0"]}, "sparse"),
        ({"weak_labels": ["sparse:2"], "distance_maps": True}, "cannot be combined"),
        ({"weak_labels": ["sparse:2"], "weak_label_seed": -1}, "weak_label_seed must be"),
        ({"weak_labels": ["sparse:2"], "weak_label_seed": 1.0}, "weak_label_seed must be"),
        ({"weak_labels": ["noisy:mild,thin_labels=9"]}, r"thin_labels \[9\], which are not"),
    ],
)
def test_bad_weak_label_options_are_clear_errors(phantom_manifest, options, message):
    with pytest.raises(ValueError, match=message):
        BrainDataModule(str(phantom_manifest), **options)


def test_a_mode_that_cannot_apply_names_subject_and_file(phantom_manifest):
    # A slice axis the volumes lack is only found once a label is read.
    with pytest.raises(ManifestError, match=r"subject 'phantom_\d{3}'.*label"):
        make_data(phantom_manifest, weak_labels=[{"mode": "sparse", "k": 64, "axis": 5}])


def test_training_step_ignores_the_labels_of_unlabelled_voxels():
    from lightning_modules.segmentation import SegmentationModule

    torch.manual_seed(0)
    module = SegmentationModule(
        network_options={"depth": 2, "base_channels": 4},
        in_channels=2,
        class_names=("background", "a", "b", "c", "d"),
    )
    module.log = lambda *args, **kwargs: None  # no trainer to log to
    image = torch.randn(2, 2, 16, 16)
    label = torch.randint(0, 5, (2, 16, 16))
    mask = torch.zeros(2, 16, 16)
    mask[:, :8] = 1
    other = label.clone()
    other[mask == 0] = (other[mask == 0] + 1) % 5

    def loss_and_gradient(target: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        module.zero_grad()
        loss = module.training_step({"image": image, "label": target, "mask": mask}, 0)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in module.network.parameters()]

    loss, gradients = loss_and_gradient(label)
    other_loss, other_gradients = loss_and_gradient(other)
    assert torch.equal(loss, other_loss)
    assert all(torch.equal(a, b) for a, b in zip(gradients, other_gradients, strict=True))
    unmasked = module.training_step({"image": image, "label": other}, 0)
    assert not torch.isclose(unmasked, loss)


def test_thin_structures_come_from_the_dataset_description(phantom_manifest):
    data = make_data(phantom_manifest, weak_labels=["noisy:severe"], weak_label_seed=3)
    assert data.description.thin_structures == ("vessels",)
    assert data.weak.modes[0].thin_labels == (4,)  # the class map's label of vessels
    # A class map without the thin structure: nothing is treated as thin.
    renamed = {1: "cerebrum", 2: "cerebellum", 3: "brainstem", 4: "tubes"}
    cut = make_data(phantom_manifest, weak_labels=["noisy:severe"], class_map=renamed)
    assert cut.weak.modes[0].thin_labels == ()
    # It changes what is drawn: thin vessel segments are dropped instead of eroded.
    eroded = make_data(
        phantom_manifest, weak_labels=["noisy:severe,thin_labels=none"], weak_label_seed=3
    )
    subject = data.records["train"][0].subject
    assert (data.weak.labels[subject].label != eroded.weak.labels[subject].label).any()


def test_weak_labels_leaving_no_patch_centre_name_the_subject(phantom_manifest):
    # Vessels unlabelled everywhere, and only vessel-centred patches asked for.
    with pytest.raises(ManifestError, match=r"subject 'phantom_\d{3}'.*too few for any"):
        make_data(
            phantom_manifest,
            weak_labels=[{"mode": "missing", "fraction": 1.0, "classes": [4]}],
            label_probabilities={"vessels": 1.0},
        )


def test_3d_uniform_sampling_draws_patches_that_hold_labelled_voxels(phantom_manifest):
    data = make_data(
        phantom_manifest,
        weak_labels=["sparse:8"],
        sampler="uniform",
        spatial_dims=3,
        patch_size=(24, 24, 8),
        samples_per_volume=8,
    )
    for batch in training_batches(data, 2):
        assert batch["mask"].shape == (4, 24, 24, 8)
        # Every 8th slice is labelled: an 8-slice patch holds exactly one.
        assert torch.all(batch["mask"].sum(dim=(1, 2)).gt(0).sum(dim=1) == 1)


def test_weak_labels_are_drawn_when_another_stage_loaded_first(phantom_manifest):
    data = BrainDataModule(
        str(phantom_manifest), patch_size=(32, 32), batch_size=4, weak_labels=["sparse:2"]
    )
    data.load("test")
    assert not data.weak.labels  # testing needs no weak labels
    batch = next(iter(data.train_dataloader()))
    assert "mask" in batch
    assert data.weak_label_quality["labelled_fraction"] == pytest.approx(0.5)
