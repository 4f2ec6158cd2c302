"""Tests for lightning_modules.metrics: hand-computed Dice and distances, MONAI equivalence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from torch.nn import functional as F

from lightning_modules.metrics import METRICS, case_metrics, dice_per_class

NAMES_3 = ["background", "cerebrum", "cerebellum"]


# --- dice_per_class --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "truth", "num_classes", "expected"),
    [
        # class 1: |P| = 1, |T| = 2, overlap 1 -> 2/3; class 2: |P| = 3, |T| = 2, overlap 2 -> 4/5;
        # class 3 in neither map -> 1.
        ([[0, 1, 0], [2, 2, 2]], [[0, 1, 1], [2, 2, 0]], 4, [2 / 3, 4 / 5, 1.0]),
        # identical maps
        ([[1, 2], [0, 1]], [[1, 2], [0, 1]], 3, [1.0, 1.0]),
        # swapped labels: no overlap at all
        ([[1, 2], [0, 0]], [[2, 1], [0, 0]], 3, [0.0, 0.0]),
        # class 1 predicted but absent from the truth -> 0; class 2 only in the truth -> 0
        ([[1, 0], [0, 0]], [[0, 0], [0, 2]], 3, [0.0, 0.0]),
        # background is not scored: only one foreground entry
        ([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2, [2 * 2 / (3 + 3)]),
        # 3D map: class 1 |P| = 4, |T| = 2, overlap 2 -> 2/3
        (
            [[[1, 1], [1, 1]], [[0, 0], [0, 0]]],
            [[[1, 1], [0, 0]], [[0, 0], [0, 0]]],
            2,
            [2 / 3],
        ),
    ],
)
def test_dice_per_class_by_hand(
    prediction: list, truth: list, num_classes: int, expected: list[float]
) -> None:
    dice = dice_per_class(torch.tensor(prediction), torch.tensor(truth), num_classes)
    assert dice.shape == (num_classes - 1,)
    torch.testing.assert_close(dice, torch.tensor(expected), atol=1e-6, rtol=0)


def test_dice_per_class_is_symmetric_and_bounded() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 4, (6, 5, 4), generator=generator)
        b = torch.randint(0, 4, (6, 5, 4), generator=generator)
        ab, ba = dice_per_class(a, b, 4), dice_per_class(b, a, 4)
        torch.testing.assert_close(ab, ba)
        assert ((ab >= 0) & (ab <= 1)).all()


# --- distances by hand -----------------------------------------------------------------------


def shifted_cubes(shift_axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 4-voxel cube, and the same cube shifted by one voxel along ``shift_axis``."""
    prediction = torch.zeros(10, 10, 10, dtype=torch.long)
    prediction[2:6, 2:6, 2:6] = 1
    return prediction, prediction.roll(1, dims=shift_axis)


@pytest.mark.parametrize(
    ("spacing", "expected_hd95", "expected_assd"),
    [
        # Each cube has 4^3 - 2^3 = 56 surface voxels. Along the shift axis (spacing 2):
        # the 16 voxels of the trailing face lie one voxel (2 mm) from the other surface;
        # the 4 inner voxels of the leading face lie 2 mm from the far face or one voxel
        # sideways from a side face; the other 36 lie on the other surface (0 mm).
        # Sideways spacing 3: the inner four are 2 mm away -> 20 of 56 at 2 mm, so
        # HD95 = 2 and ASSD = 20 * 2 / 56 = 5/7 (the same both ways round).
        ((2.0, 3.0, 3.0), 2.0, 5 / 7),
        # Sideways spacing 1: the inner four are 1 mm away -> ASSD = (16 * 2 + 4 * 1) / 56.
        ((2.0, 1.0, 1.0), 2.0, 9 / 14),
    ],
)
def test_shifted_cube_distances_by_hand(
    spacing: tuple[float, ...], expected_hd95: float, expected_assd: float
) -> None:
    prediction, truth = shifted_cubes(0)
    row = case_metrics(prediction, truth, class_names=["background", "cube"], spacing=spacing)
    assert row.loc[0, "dice"] == pytest.approx(2 * 48 / 128)  # overlap 3 x 4 x 4 of 64 + 64
    assert row.loc[0, "hd95"] == pytest.approx(expected_hd95, abs=1e-5)
    assert row.loc[0, "assd"] == pytest.approx(expected_assd, abs=1e-5)


@pytest.mark.parametrize(
    ("shift_axis", "spacing", "expected"),
    [
        (0, (2.0, 1.0, 1.0), 2.0),
        (1, (2.0, 1.0, 1.0), 1.0),
        (2, (1.0, 1.0, 3.0), 3.0),
        (1, (1.0, 0.5, 1.0), 0.5),
    ],
)
def test_one_voxel_thick_plates_one_voxel_apart(
    shift_axis: int, spacing: tuple[float, ...], expected: float
) -> None:
    """Every voxel of a plate is a surface voxel, one step (spacing mm) from the other plate."""
    prediction = torch.zeros(8, 8, 8, dtype=torch.long)
    index = [slice(2, 6)] * 3
    index[shift_axis] = slice(3, 4)
    prediction[tuple(index)] = 1
    truth = prediction.roll(1, dims=shift_axis)
    row = case_metrics(prediction, truth, class_names=["background", "plate"], spacing=spacing)
    assert row.loc[0, "dice"] == 0.0
    assert row.loc[0, "hd95"] == pytest.approx(expected, abs=1e-5)
    assert row.loc[0, "assd"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0)])
def test_identical_structures_score_perfectly(spacing: tuple[float, ...]) -> None:
    labels = torch.zeros(12, 12, dtype=torch.long)
    labels[2:7, 3:9] = 1
    labels[8:11, 1:4] = 2
    table = case_metrics(labels, labels.clone(), class_names=NAMES_3, spacing=spacing)
    assert table["dice"].tolist() == [1.0, 1.0]
    assert table["hd95"].tolist() == [0.0, 0.0]
    assert table["assd"].tolist() == [0.0, 0.0]


# --- equivalence with MONAI on random blobs ---------------------------------------------------


def blobs(shape: tuple[int, ...], num_classes: int, seed: int) -> torch.Tensor:
    """A label map of smooth random blobs: argmax of blurred noise, thresholded to background."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, num_classes, *shape, generator=generator)
    pool = F.avg_pool3d if len(shape) == 3 else F.avg_pool2d
    smooth = pool(noise, kernel_size=5, stride=1, padding=2, count_include_pad=False)
    labels = smooth.argmax(dim=1)[0]
    labels[smooth.max(dim=1).values[0] < 0.2] = 0
    return labels


def monai_distances(
    prediction: torch.Tensor, truth: torch.Tensor, num_classes: int, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    predicted = F.one_hot(prediction, num_classes).movedim(-1, 0).unsqueeze(0)
    actual = F.one_hot(truth, num_classes).movedim(-1, 0).unsqueeze(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(predicted, actual, percentile=95, spacing=list(spacing))
        assd = compute_average_surface_distance(
            predicted, actual, symmetric=True, spacing=list(spacing)
        )
    return hd95[0].numpy(), assd[0].numpy()


@pytest.mark.parametrize(
    ("shape", "spacing", "seed"),
    [
        ((16, 14, 12), (1.0, 2.0, 3.0), 0),
        ((16, 14, 12), (1.0, 2.0, 3.0), 1),
        ((12, 16, 10), (3.0, 1.0, 2.0), 2),
        ((24, 20), (1.0, 2.5), 3),
    ],
)
def test_distances_equal_monai_with_anisotropic_spacing(
    shape: tuple[int, ...], spacing: tuple[float, ...], seed: int
) -> None:
    num_classes = 4
    truth = blobs(shape, num_classes, seed)
    prediction = blobs(shape, num_classes, seed + 100)
    for labels in (truth, prediction):  # every class present, so MONAI's numbers are defined
        assert set(labels.unique().tolist()) == set(range(num_classes))
    names = ["background", "a", "b", "c"]
    table = case_metrics(prediction, truth, class_names=names, spacing=spacing)
    hd95, assd = monai_distances(prediction, truth, num_classes, spacing)
    # The same numbers to the last bit: one pass of surface distances for both metrics.
    np.testing.assert_array_equal(table["hd95"].to_numpy(), hd95)
    np.testing.assert_array_equal(table["assd"].to_numpy(), assd)
    assert (table["hd95"] > 0).all()  # the blobs differ, so the comparison is not 0 == 0
    # anisotropy matters: unit spacing gives other numbers
    unit = case_metrics(prediction, truth, class_names=names, spacing=[1.0] * len(shape))
    assert not np.allclose(unit["assd"].to_numpy(), table["assd"].to_numpy())


def test_dice_column_equals_dice_per_class() -> None:
    truth, prediction = blobs((14, 12, 10), 3, 5), blobs((14, 12, 10), 3, 6)
    table = case_metrics(prediction, truth, class_names=NAMES_3, spacing=(1.0, 1.0, 2.0))
    np.testing.assert_allclose(
        table["dice"].to_numpy(), dice_per_class(prediction, truth, 3).numpy(), atol=1e-6
    )


# --- empty structures ---------------------------------------------------------------------------


def two_class_case(prediction_has: bool, truth_has: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 always present in both maps; class 2 present in each map as asked."""
    prediction = torch.zeros(10, 10, 6, dtype=torch.long)
    prediction[1:5, 1:5, 1:4] = 1
    truth = prediction.clone()
    if prediction_has:
        prediction[6:9, 5:9, 2:5] = 2
    if truth_has:
        truth[6:9, 6:9, 2:5] = 2
    return prediction, truth


@pytest.mark.parametrize(
    ("prediction_has", "truth_has", "expected"),
    [
        (False, False, {"dice": 1.0, "hd95": 0.0, "assd": 0.0}),
        (True, False, {"dice": 0.0, "hd95": math.nan, "assd": math.nan}),
        (False, True, {"dice": 0.0, "hd95": math.nan, "assd": math.nan}),
    ],
    ids=["both-empty", "truth-empty", "prediction-empty"],
)
def test_empty_structure_conventions(
    prediction_has: bool, truth_has: bool, expected: dict[str, float]
) -> None:
    prediction, truth = two_class_case(prediction_has, truth_has)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the MONAI warnings about empty classes stay inside
        table = case_metrics(prediction, truth, class_names=NAMES_3, spacing=(1.0, 2.0, 3.0))
    row = table.set_index("class").loc["cerebellum"]
    for metric, value in expected.items():
        if math.isnan(value):
            assert math.isnan(row[metric]), metric
        else:
            assert row[metric] == value, metric
    # the other structure is untouched by the convention
    present = table.set_index("class").loc["cerebrum"]
    assert present["dice"] == 1.0
    assert present["hd95"] == 0.0
    assert present["assd"] == 0.0


def test_both_empty_in_every_class() -> None:
    labels = torch.zeros(6, 6, dtype=torch.long)
    table = case_metrics(labels, labels, class_names=NAMES_3, spacing=(1.0, 1.0))
    assert table[list(METRICS)].to_numpy().tolist() == [[1.0, 0.0, 0.0, 1.0, 1.0]] * 2


# --- table layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "class_names",
    [
        ["background", "cerebrum"],
        ["background", "cerebrum", "cerebellum", "brainstem"],
        ["background", "z_last", "a_first", "m_middle"],
    ],
)
def test_table_columns_and_row_order(class_names: list[str]) -> None:
    num_classes = len(class_names)
    truth = blobs((12, 12, 8), num_classes, 7)
    table = case_metrics(truth.roll(1, 0), truth, class_names=class_names, spacing=(1, 1, 1))
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["class", "dice", "hd95", "assd", "precision", "recall"]
    assert list(table.columns[1:]) == list(METRICS)
    assert table["class"].tolist() == class_names[1:]  # class-index order, background dropped
    assert list(table.index) == list(range(num_classes - 1))
    for metric in METRICS:
        assert table[metric].dtype == np.float64


def test_rows_follow_class_index_not_name() -> None:
    """Row i describes class index i + 1: renaming classes moves no numbers."""
    truth = torch.zeros(8, 8, dtype=torch.long)
    truth[1:4, 1:4] = 1
    truth[5:7, 5:8] = 2
    prediction = truth.clone()
    prediction[1:4, 1] = 0  # damage class 1 only
    table = case_metrics(prediction, truth, class_names=["bg", "zz", "aa"], spacing=(1, 1))
    assert table.loc[0, "class"] == "zz"
    assert table.loc[0, "dice"] == pytest.approx(2 * 6 / (6 + 9))
    assert table.loc[1, "class"] == "aa"
    assert table.loc[1, "dice"] == 1.0


def test_shape_mismatch_raises_value_error() -> None:
    with pytest.raises(ValueError, match="prediction"):
        case_metrics(
            torch.zeros(4, 4, 4, dtype=torch.long),
            torch.zeros(4, 4, 5, dtype=torch.long),
            class_names=NAMES_3,
            spacing=(1, 1, 1),
        )


def test_precision_and_recall_by_hand() -> None:
    """Truth 4 voxels, prediction 3 voxels of which 2 are right: precision 2/3, recall 2/4."""
    truth = torch.zeros(4, 4, 2, dtype=torch.long)
    truth[0, :4, 0] = 1
    prediction = torch.zeros_like(truth)
    prediction[0, :2, 0] = 1
    prediction[3, 3, 1] = 1
    table = case_metrics(prediction, truth, class_names=["background", "a", "b"], spacing=(1, 1, 1))
    row = table.set_index("class").loc["a"]
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["recall"] == pytest.approx(0.5)
    absent = table.set_index("class").loc["b"]  # empty in both: a correct "absent"
    assert (absent["precision"], absent["recall"]) == (1.0, 1.0)


def test_missed_structure_has_zero_precision_and_recall() -> None:
    truth = torch.zeros(4, 4, 2, dtype=torch.long)
    truth[1:3, 1:3, 0] = 1
    table = case_metrics(
        torch.zeros_like(truth), truth, class_names=["background", "a"], spacing=(1, 1, 1)
    )
    assert table.loc[0, "precision"] == 0.0
    assert table.loc[0, "recall"] == 0.0


@pytest.mark.parametrize("bad", [5, -1])
def test_class_index_outside_the_classes_raises(bad: int) -> None:
    truth = torch.zeros(4, 4, 4, dtype=torch.long)
    prediction = truth.clone()
    prediction[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        dice_per_class(prediction, truth, 5)
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        case_metrics(truth, prediction, class_names=list("abcde"), spacing=[1.0] * 3)
