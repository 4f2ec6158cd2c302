"""The parent run's summary metrics and rank-1 tags, from hand-made tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.ablation_parent import leaders_by_group, summary_metrics


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    summary = pd.DataFrame(
        [
            # variant A: Dice 0.8 and 0.6 -> 0.7; B: 0.9 and 0.7 -> 0.8 on multiclass.
            ("multiclass", "a", "dice", "A", 0.8),
            ("multiclass", "b", "dice", "A", 0.6),
            ("multiclass", "a", "dice", "B", 0.9),
            ("multiclass", "b", "dice", "B", 0.7),
            ("multiclass", "a", "hd95", "B", 50.0),  # not Dice: ignored
            ("binary:a", "a", "dice", "A", 0.5),
            ("binary:a", "a", "dice", "B", 0.4),
        ],
        columns=["task", "class", "metric", "variant", "mean"],
    )
    ranking = pd.DataFrame(
        [
            ("multiclass", 1, "B", 1.0),
            ("multiclass", 2, "A", 0.0),
            ("binary", 1, "A", 0.0),
            ("binary", 1, "B", 0.0),
        ],
        columns=["group", "rank", "variant", "rank_score"],
    )
    stability = pd.DataFrame(
        {
            "task": ["multiclass", "multiclass"],
            "variant": ["A", "B"],
            "val_dice_std_last_quarter": [0.02, 0.05],
        }
    )
    complexity = pd.DataFrame({"variant": ["A", "B"], "parameters": [10, 30], "macs": [1, 2]})
    paths = {}
    for name, frame in [
        ("summary", summary),
        ("ranking", ranking),
        ("stability", stability),
        ("complexity", complexity),
    ]:
        paths[f"{name}.csv"] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[f"{name}.csv"], index=False)
    return paths


def test_one_summary_number_per_table_and_group(tables):
    assert summary_metrics(tables) == pytest.approx(
        {
            "summary/multiclass/best_dice_mean": 0.8,
            "summary/binary:a/best_dice_mean": 0.5,
            "ranking/multiclass/top_rank_score": 1.0,
            "ranking/binary/top_rank_score": 0.0,
            "stability/multiclass/lowest_val_dice_std": 0.02,
            "complexity/max_parameters": 30.0,
        }
    )


def test_rank_one_is_named_and_a_group_where_all_tie_says_so(tables):
    assert leaders_by_group(tables) == {"multiclass": ["B"], "binary": ["all 2 tie"]}


def test_tables_that_were_not_written_give_no_numbers(tables):
    assert summary_metrics({"summary.csv": tables["summary.csv"]}).keys() == {
        "summary/multiclass/best_dice_mean",
        "summary/binary:a/best_dice_mean",
    }
    assert leaders_by_group({}) == {}
