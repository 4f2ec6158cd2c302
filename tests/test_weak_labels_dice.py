"""`label_dice`: the project's one Dice rule (both empty 1, one empty 0) on labelled voxels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datamodules.weak_labels import label_dice
from lightning_modules.metrics import dice_per_class

NAMES = {1: "a", 2: "b", 3: "c", 4: "d"}
TRUTH = np.array([0, 1, 1, 1, 2, 2, 0, 0]).reshape(2, 2, 2)
WEAK = np.array([0, 1, 1, 0, 2, 0, 0, 3]).reshape(2, 2, 2)


def test_label_dice_by_hand() -> None:
    scores = label_dice(WEAK, TRUTH, num_classes=5, class_names=NAMES)
    assert scores["dice_a"] == pytest.approx(2 * 2 / 5)
    assert scores["dice_b"] == pytest.approx(2 * 1 / 3)
    assert scores["dice_c"] == 0.0  # only in the weak label
    assert scores["dice_d"] == 1.0  # in neither: a correct "absent", not NaN
    assert scores["dice_mean"] == pytest.approx((0.8 + 2 / 3 + 0.0 + 1.0) / 4)
    assert scores["labelled_fraction"] == 1.0
    assert list(scores) == [
        "dice_a",
        "dice_b",
        "dice_c",
        "dice_d",
        "dice_mean",
        "labelled_fraction",
    ]


def test_label_dice_on_labelled_voxels_only() -> None:
    mask = np.array([1, 1, 1, 0, 1, 0, 1, 0]).reshape(2, 2, 2)
    scores = label_dice(WEAK, TRUTH, mask=mask, num_classes=5, class_names=NAMES)
    assert scores["dice_a"] == scores["dice_b"] == 1.0
    assert scores["dice_c"] == 1.0  # its one weak voxel is unlabelled: absent from both
    assert scores["dice_d"] == 1.0
    assert scores["dice_mean"] == 1.0  # a plain mean: every class counts
    assert scores["labelled_fraction"] == 0.625
    with pytest.raises(ValueError, match="mask shape"):
        label_dice(WEAK, TRUTH, mask=mask[0], num_classes=5, class_names=NAMES)


def test_a_class_only_in_the_truth_scores_zero() -> None:
    scores = label_dice(np.zeros_like(TRUTH), TRUTH, num_classes=3, class_names=NAMES)
    assert (scores["dice_a"], scores["dice_b"], scores["dice_mean"]) == (0.0, 0.0, 0.0)


def test_label_dice_is_the_metrics_dice() -> None:
    rng = np.random.default_rng(0)
    weak, truth = rng.integers(0, 4, (2, 6, 6, 5))
    mask = rng.random(truth.shape) < 0.5
    scores = label_dice(weak, truth, mask=mask, num_classes=6, class_names=NAMES)
    expected = dice_per_class(torch.from_numpy(weak[mask]), torch.from_numpy(truth[mask]), 6)
    got = [scores[f"dice_{name}"] for name in ("a", "b", "c", "d", "class_5")]
    assert got == expected.tolist() and got[-1] == 1.0  # class 5 is in neither
    assert scores["dice_mean"] == pytest.approx(float(expected.mean()))


def test_class_names_as_a_sequence_or_with_gaps() -> None:
    scores = label_dice(WEAK, TRUTH, num_classes=4, class_names=("background", "x", "y"))
    assert [key for key in scores if key.startswith("dice_")][:3] == [
        "dice_x",
        "dice_y",
        "dice_class_3",
    ]


def test_empty_volume_and_empty_mask() -> None:
    empty = np.zeros((0, 2, 2), dtype=np.uint8)
    scores = label_dice(empty, empty, num_classes=2, class_names={1: "a"})
    assert scores["dice_a"] == scores["dice_mean"] == 1.0
    assert math.isnan(scores["labelled_fraction"])  # NaN only for an empty volume
    nothing = label_dice(WEAK, TRUTH, mask=np.zeros_like(TRUTH), num_classes=5, class_names=NAMES)
    assert nothing["labelled_fraction"] == 0.0 and nothing["dice_mean"] == 1.0


def test_num_classes_and_class_names_are_required() -> None:
    with pytest.raises(TypeError, match="num_classes"):
        label_dice(WEAK, TRUTH, class_names=NAMES)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="class_names"):
        label_dice(WEAK, TRUTH, num_classes=5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("weak", "num_classes", "match"),
    [
        (WEAK, 3, r"weak holds classes 0..3, outside 0..2 \(num_classes=3\)"),
        (WEAK.astype(np.float32), 5, "weak must hold integer classes, got dtype float32"),
        (WEAK - 1, 5, "weak holds classes -1..2, outside 0..4"),
        (WEAK, 1, "label_dice num_classes must be >= 2, got 1"),
        (WEAK, 4.0, "label_dice num_classes must be an integer, got 4.0"),
        (WEAK[0], 5, "weak shape"),
    ],
)
def test_bad_inputs_raise_value_error(weak: np.ndarray, num_classes: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        label_dice(weak, TRUTH, num_classes=num_classes, class_names=NAMES)
