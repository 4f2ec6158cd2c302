"""LabelCleansingModule: which network trains on which slice, and which predicts it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from datamodules.manifest import SubjectRecord
from datamodules.tasks import parse_task
from datamodules.weak_supervision import WeakLabel
from lightning_modules.cleansing import LabelCleansingModule

CLASS_MAP = {1: "a", 2: "b"}
SHAPE = (8, 8, 12)


class FakeWeak:
    """The part of WeakSupervision the module uses: the drawn labels and `restrict`."""

    def __init__(self, labels: dict[str, WeakLabel]) -> None:
        self.labels = labels
        self.kept: dict[str, np.ndarray] = {}

    def restrict(self, subject: str, keep: np.ndarray) -> None:
        self.kept[subject] = np.array(keep)


def fake_data(labels: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None = None):
    drawn = {
        subject: WeakLabel(
            label,
            np.ones(label.shape, np.uint8) if masks is None else masks[subject],
            np.ones(label.shape, np.uint8),
            [],
        )
        for subject, label in labels.items()
    }
    records = [
        SubjectRecord(s, {"t1": Path(f"{s}.nii.gz")}, Path(f"{s}_l.nii.gz"), None) for s in labels
    ]
    task = parse_task("multiclass", CLASS_MAP)
    return SimpleNamespace(
        weak=FakeWeak(drawn),
        records={"train": records},
        num_classes=task.num_classes,
        class_names=task.class_names,
        task=task,
        distance_maps=False,
    )


def every_slice_labelled(value: int = 1) -> np.ndarray:
    label = np.zeros(SHAPE, np.int64)
    label[2:6, 2:6, :] = value
    label[0, 0, :] = 2
    return label


def module(**options) -> LabelCleansingModule:
    return LabelCleansingModule(
        network="fcn",
        network_options={"depth": 2, "base_channels": 4},
        loss="ce",
        spatial_dims=2,
        in_channels=1,
        class_names=("background", "a", "b"),
        **options,
    )


class ConstantClass(nn.Module):
    """Logits that pick one class everywhere; counts the patches it is given."""

    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls = cls
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[int] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.seen.append(len(image))
        logits = torch.zeros(len(image), 3, *image.shape[2:])
        logits[:, self.cls] = 10.0
        return logits * self.scale


def test_complementary_folds_predict_each_slice_with_the_network_that_did_not_train_on_it():
    data = fake_data({"s1": every_slice_labelled()})
    cleanser = module(selection={"folds": 2})
    cleanser.prepare(data)
    assert len(cleanser.networks) == 2
    cleanser.networks = nn.ModuleList([ConstantClass(1), ConstantClass(2)])
    groups = cleanser.slice_groups["s1"].numpy()
    assert groups.tolist() == [1, 2] * 6  # even slices train network 1, odd ones network 2
    predicted = cleanser.reconstruct("s1", torch.zeros(1, *SHAPE)).numpy()
    # A slice network 1 trained on is predicted by network 2 (class 2), and the reverse.
    assert (predicted[..., groups == 1] == 2).all()
    assert (predicted[..., groups == 2] == 1).all()


def test_without_folds_the_one_network_predicts_every_slice():
    data = fake_data({"s1": every_slice_labelled()})
    cleanser = module()
    cleanser.prepare(data)
    cleanser.networks = nn.ModuleList([ConstantClass(2)])
    assert (cleanser.reconstruct("s1", torch.zeros(1, *SHAPE)) == 2).all()


def test_training_patches_go_to_the_network_of_their_slice_and_unselected_slices_to_none():
    data = fake_data({"s1": every_slice_labelled(), "s2": every_slice_labelled()})
    cleanser = module(selection={"folds": 2}, scope="subject")
    cleanser.prepare(data)
    assert len(cleanser.networks) == 4  # two folds for each of two subjects
    cleanser.networks = nn.ModuleList([ConstantClass(1) for _ in range(4)])
    cleanser.log = lambda *args, **kwargs: None  # no trainer to log to
    # s1 slice 0 -> group 1, s1 slice 3 -> group 2, s2 slice 4 -> group 3 (twice).
    subjects, slices = ["s1", "s1", "s2", "s2"], [0, 3, 4, 4]
    batch = {
        "image": torch.zeros(4, 1, 8, 8),
        "label": torch.ones(4, 8, 8, dtype=torch.long),
        "mask": torch.ones(4, 8, 8),
        "subject": subjects,
        "location": torch.tensor([[0, 0, z, 8, 8, z + 1] for z in slices]),
    }
    loss = cleanser.training_step(batch, 0)
    assert loss.requires_grad
    assert [n.seen for n in cleanser.networks] == [[1], [1], [2], []]


def test_the_masks_are_narrowed_to_the_selected_slices():
    data = fake_data({"s1": every_slice_labelled()})
    module(selection={"stride": 1}).prepare(data)
    kept = data.weak.kept["s1"]
    assert kept.shape == SHAPE
    assert kept.any(axis=(0, 1)).tolist() == [True, False] * 6


def test_a_class_that_no_selected_slice_shows_is_an_error_naming_subject_and_class():
    label = every_slice_labelled()
    label[0, 0, :] = 0
    label[0, 0, 5] = 2  # class b only on slice 5, which stride 1 thins away
    with pytest.raises(ValueError, match=r"subject 's1': classes \['b'\] are labelled in slices"):
        module().prepare(fake_data({"s1": label}))


def test_a_stride_larger_than_the_volume_names_the_subject():
    with pytest.raises(ValueError, match="subject 's1': slice selection stride 20 is larger"):
        module(selection={"stride": 20}).prepare(fake_data({"s1": every_slice_labelled()}))


def test_data_without_weak_labels_is_refused():
    data = fake_data({"s1": every_slice_labelled()})
    data.weak = None
    with pytest.raises(ValueError, match=r"set data\.weak_labels"):
        module().prepare(data)
