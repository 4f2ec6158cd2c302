"""The steadiest-entry test on hand-made stability tables."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.stability_test import _holm, most_stable


def table(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"task": f"t{block}", "weighting": name, "stability/val_dice_std_last_quarter": v}
        for name, column in values.items()
        for block, v in enumerate(column)
    ]
    return pd.DataFrame(rows)


def test_an_entry_steadier_in_every_block_is_named_and_significant():
    steady = [0.01, 0.02, 0.01, 0.015, 0.012, 0.011, 0.013, 0.014]
    stability = table(
        {
            "none": [v + 0.05 for v in steady],
            "focal": steady,
            "inverse": [v + 0.03 for v in steady],
        }
    )
    ranked, sentence = most_stable(stability, "weighting")
    assert list(ranked["weighting"]) == ["focal", "inverse", "none"]
    assert list(ranked["mean_rank"]) == [1.0, 2.0, 3.0]
    # 8 blocks all one way: exact p = 2 / 2**8; Holm doubles the smaller one.
    assert ranked["p_vs_steadiest"].iloc[1] == pytest.approx(2 * 2 / 256)
    assert "**focal**" in sentence and "significantly steadier" in sentence


def test_identical_entries_are_not_told_apart():
    same = [0.01, 0.02, 0.03, 0.04]
    ranked, sentence = most_stable(table({"a": same, "b": same, "c": same}), "weighting")
    assert set(ranked["mean_rank"]) == {2.0}
    # No entry is named steadiest when all tie (a smoke run's curves that never left 0).
    assert sentence == (
        "No weighting is steadier than another by val_dice_std_last_quarter: "
        "all 3 have mean rank 2.00 over 4 blocks."
    )
    assert "**" not in sentence


def test_holm_adjustment_by_hand():
    assert _holm({"x": 0.01, "y": 0.04, "z": 0.03}) == pytest.approx(
        {"x": 0.03, "z": 0.06, "y": 0.06}
    )


def test_too_few_blocks_or_a_missing_column_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        most_stable(table({"a": [0.1], "b": [0.2]}), "weighting")
    with pytest.raises(ValueError, match="needs columns"):
        most_stable(table({"a": [0.1, 0.2]}), "base")


def test_write_tables_reports_the_steadiest_entry_when_asked(study, tmp_path):
    from experiments.tables import write_tables

    steady = [0.01, 0.02, 0.015, 0.012, 0.011, 0.013]
    stability = table({"none": [v + 0.04 for v in steady], "focal": steady})
    stability = stability.rename(columns={"weighting": "axis.weighting"})
    stability["variant"] = "ce+" + stability["axis.weighting"]
    paths = write_tables(
        study,
        stability,
        tmp_path,
        title="t",
        stability_axis="weighting",
        rank_resamples=5,
        rank_seed=0,
    )
    report = paths["report.md"].read_text()
    assert "### Steadiest weighting" in report and "**focal**" in report
    # The sentence names the axis as the ablation file does, not by its column.
    assert "Steadiest weighting by val_dice_std_last_quarter: **focal**" in report
    assert list(pd.read_csv(paths["stability_test.csv"])["weighting"]) == ["focal", "none"]
