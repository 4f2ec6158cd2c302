"""The long per-case layout: a run's per-case CSV melted, task groups."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.per_case import COLUMNS, per_case_long, task_group, validated_results


def test_per_case_long_melts_a_runs_per_case_csv():
    per_case = pd.DataFrame(
        {
            "subject": ["s0", "s0"],
            "class": ["a", "b"],
            "dice": [0.9, 0.8],
            "hd95": [1.0, 2.0],
            "note": ["x", "y"],  # not numeric: not a metric
        }
    )
    long = per_case_long(per_case, variant="ce+none", task="multiclass")
    assert list(long.columns) == list(COLUMNS)
    assert len(long) == 4
    assert long.set_index(["class", "metric"])["value"].to_dict() == {
        ("a", "dice"): 0.9,
        ("b", "dice"): 0.8,
        ("a", "hd95"): 1.0,
        ("b", "hd95"): 2.0,
    }


def test_every_binary_task_is_one_ranking_group():
    assert [task_group(t) for t in ("binary:vessels", "binary", "multiclass", "full")] == [
        "binary",
        "binary",
        "multiclass",
        "full",
    ]


def test_validated_results_refuses_missing_columns_and_empty_frames():
    with pytest.raises(ValueError, match="subject"):
        validated_results(pd.DataFrame(columns=[c for c in COLUMNS if c != "subject"]))
    with pytest.raises(ValueError, match="empty"):
        validated_results(pd.DataFrame(columns=list(COLUMNS)))
