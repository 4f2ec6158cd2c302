"""Training-curve stability on hand-computed curves."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from experiments.stability import curve_stability, stability_table

VAL_8 = [0.5, 0.9, 0.8, 0.82, 0.9, 0.7, 0.88, 0.9]
LOSS_8 = [1.0, 0.6, 0.5, 0.45, 0.4, 0.42, 0.38, 0.36]


@pytest.mark.parametrize(
    ("val_dice", "expected"),
    [
        # changes +0.4 -0.1 +0.3; last quarter = [0.8]; 0.95 * 0.8 = 0.76 first reached at 4
        ([0.2, 0.6, 0.5, 0.8], {"std": 0.0, "change": 0.8 / 3, "drops": 1, "epochs": 4}),
        # last quarter = [0.88, 0.9]; changes .4 .1 .02 .08 .2 .18 .02; drops 0.1 and 0.2;
        # 0.95 * 0.9 = 0.855 first reached at epoch 2
        (VAL_8, {"std": 0.01, "change": 1.0 / 7, "drops": 2, "epochs": 2}),
        # five epochs: the last quarter is ceil(5 / 4) = 2 epochs, std of [0.2, 0.4]
        ([0.0, 0.0, 0.0, 0.2, 0.4], {"std": 0.1, "change": 0.1, "drops": 0, "epochs": 5}),
        # one epoch: nothing changes
        ([0.7], {"std": 0.0, "change": 0.0, "drops": 0, "epochs": 1}),
    ],
)
def test_val_dice_metrics_match_hand_computed_values(val_dice, expected):
    metrics = curve_stability(val_dice)
    assert metrics["stability/val_dice_std_last_quarter"] == pytest.approx(expected["std"])
    assert metrics["stability/val_dice_mean_abs_change"] == pytest.approx(expected["change"])
    assert metrics["stability/val_dice_drops"] == expected["drops"]
    assert metrics["stability/epochs_to_95pct"] == expected["epochs"]
    assert not any(key.startswith("stability/train_loss") for key in metrics)


def test_train_loss_metrics_match_hand_computed_values():
    metrics = curve_stability(VAL_8, LOSS_8)
    # last quarter [0.38, 0.36]; changes .4 .1 .05 .05 .02 .04 .02 sum to 0.68
    assert metrics["stability/train_loss_std_last_quarter"] == pytest.approx(0.01)
    assert metrics["stability/train_loss_mean_abs_change"] == pytest.approx(0.68 / 7)
    assert set(metrics) == {
        "stability/val_dice_std_last_quarter",
        "stability/val_dice_mean_abs_change",
        "stability/val_dice_drops",
        "stability/epochs_to_95pct",
        "stability/train_loss_std_last_quarter",
        "stability/train_loss_mean_abs_change",
    }


def test_one_epoch_of_training_loss_gives_zeros():
    metrics = curve_stability([0.7], [1.3])
    assert metrics["stability/train_loss_std_last_quarter"] == 0.0
    assert metrics["stability/train_loss_mean_abs_change"] == 0.0


@pytest.mark.parametrize(("threshold", "drops"), [(0.25, 0), (0.2, 1), (0.0, 1)])
def test_a_drop_must_exceed_the_threshold(threshold, drops):
    # a fall of exactly 0.25 (exact in binary floating point); rises never count
    metrics = curve_stability([0.5, 0.25, 0.75], drop_threshold=threshold)
    assert metrics["stability/val_dice_drops"] == drops


@pytest.mark.parametrize(("fraction", "epoch"), [(0.5, 2), (0.95, 4), (1.0, 4), (0.1, 1)])
def test_epochs_to_reach_follow_the_fraction_of_the_final_dice(fraction, epoch):
    metrics = curve_stability([0.1, 0.5, 0.9, 1.0], reach_fraction=fraction)
    assert metrics["stability/epochs_to_95pct"] == epoch


def test_a_non_finite_curve_gives_nan_for_that_curve_only():
    metrics = curve_stability([0.5, 0.6, 0.7], [1.0, math.nan, 0.5])
    assert math.isnan(metrics["stability/train_loss_std_last_quarter"])
    assert math.isnan(metrics["stability/train_loss_mean_abs_change"])
    assert metrics["stability/val_dice_mean_abs_change"] == pytest.approx(0.1)
    diverged = curve_stability([0.5, math.inf, 0.7])
    assert all(math.isnan(value) for value in diverged.values())


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        (([],), {}, "val_dice"),
        (([0.5], []), {}, "train_loss"),
        (([[0.5, 0.6]],), {}, "val_dice"),
        (([0.5],), {"drop_threshold": -0.1}, "drop_threshold"),
        (([0.5],), {"reach_fraction": 0.0}, "reach_fraction"),
        (([0.5],), {"reach_fraction": 1.5}, "reach_fraction"),
    ],
)
def test_bad_input_raises_value_error_naming_it(args, options, match):
    with pytest.raises(ValueError, match=match):
        curve_stability(*args, **options)


def test_stability_table_applies_curve_stability_per_run_in_epoch_order():
    curves = pd.DataFrame(
        {
            "variant": ["a"] * 4 + ["b"] * 4,
            "task": ["multiclass"] * 8,
            "epoch": [3, 1, 4, 2, 1, 2, 3, 4],
            "val_dice": [0.5, 0.2, 0.8, 0.6, 0.1, 0.5, 0.9, 1.0],
            "train_loss": [0.4, 1.0, 0.3, 0.7, 1.0, 0.5, 0.2, 0.1],
        }
    )
    table = stability_table(curves)
    assert list(table["variant"]) == ["a", "b"]
    assert list(table["task"]) == ["multiclass", "multiclass"]
    expected_a = curve_stability([0.2, 0.6, 0.5, 0.8], [1.0, 0.7, 0.4, 0.3])
    expected_b = curve_stability([0.1, 0.5, 0.9, 1.0], [1.0, 0.5, 0.2, 0.1])
    for row, expected in zip(table.to_dict("records"), (expected_a, expected_b), strict=True):
        assert {key: row[key] for key in expected} == pytest.approx(expected)


def test_stability_table_needs_the_curve_columns():
    with pytest.raises(ValueError, match="val_dice"):
        stability_table(pd.DataFrame({"variant": ["a"], "epoch": [1]}))
