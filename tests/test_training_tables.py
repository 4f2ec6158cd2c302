"""Run-level tables: training labels and network size."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.training_tables import complexity_table, supervision_table


def test_supervision_table_averages_runs_and_shows_full_labels_as_one(conditions):
    _, supervision = conditions
    table = supervision_table(supervision)
    assert list(table.index) == ["full", "sparse_k2", "noisy"]
    assert list(table.columns) == ["labelled_fraction", "dice_cerebrum", "dice_vessels"]
    assert table.loc["full"].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["sparse_k2", "labelled_fraction"] == 0.5
    assert table.loc["noisy", "dice_vessels"] == pytest.approx(0.6)
    # A weak run that logged no weak-label metrics is unknown, not full.
    unknown = supervision.assign(weak_labels=True)
    assert supervision_table(unknown).loc["full"].isna().all()
    with pytest.raises(ValueError, match="weak_labels"):
        supervision_table(supervision.drop(columns="weak_labels"))


def test_complexity_table_keeps_one_row_per_variant():
    complexity = pd.DataFrame(
        {
            "variant": ["unet", "unet", "frrn"],
            "task": ["full", "sparse", "full"],
            "parameters": [482661.0, 482661.0, 483575.0],
            "macs": [144.6e6, 144.6e6, 163.2e6],
        }
    )
    table = complexity_table(complexity)
    assert table.to_dict("index") == {
        "unet": {"parameters": 482661, "macs": 144600000},
        "frrn": {"parameters": 483575, "macs": 163200000},
    }
    with pytest.raises(ValueError, match="lacks column"):
        complexity_table(complexity.drop(columns="macs"))
