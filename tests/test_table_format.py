"""Table text: the one mean ± std, its cell, Markdown and LaTeX."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.table_format import (
    format_count,
    format_latex,
    format_markdown,
    format_mean_std,
    latex_escape,
    mean_std,
    mean_std_by,
)


# ------------------------------------------------------------ mean ± std
def test_mean_std_is_the_sample_std_computed_by_hand():
    mean, std = mean_std([1, 2, 3, 4])
    # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
    assert mean == 2.5
    assert std == pytest.approx(math.sqrt(5 / 3)) and std == pytest.approx(1.2909944, abs=1e-7)
    assert mean_std(np.array([0.5, 0.5])) == (0.5, 0.0)
    assert mean_std(pd.Series([2.0, 4.0])) == pytest.approx((3.0, math.sqrt(2)))


def test_mean_std_of_one_value_has_no_spread_and_of_none_no_mean():
    mean, std = mean_std([0.9])
    assert mean == 0.9 and math.isnan(std)
    for empty in ([], [math.nan, math.nan]):
        assert all(math.isnan(x) for x in mean_std(empty))


def test_mean_std_ignores_nan():
    assert mean_std([1, math.nan, 2, 3, 4, math.nan]) == mean_std([1, 2, 3, 4])
    mean, std = mean_std([math.nan, 7.0])  # one value left: no std
    assert mean == 7.0 and math.isnan(std)


def test_mean_std_keeps_infinities_and_refuses_two_dimensions():
    mean, std = mean_std([1.0, math.inf])
    assert mean == math.inf and math.isnan(std)
    with pytest.raises(ValueError, match="one-dimensional"):
        mean_std(np.ones((2, 2)))


def test_mean_std_by_equals_mean_std_per_group_to_the_last_bit():
    rng = np.random.default_rng(0)
    values = rng.normal(0.7, 0.1, 60)
    values[[3, 17, 40, 41, 42, 43, 44]] = math.nan
    frame = pd.DataFrame({"g": np.repeat(["b", "a", "c", "d"], 15), "value": values})
    frame.loc[frame["g"] == "d", "value"] = [5.0] + [math.nan] * 14  # one value: no std
    stats = mean_std_by(frame, ["g"])
    assert list(stats.columns) == ["g", "n", "mean", "std"]
    assert list(stats["g"]) == ["b", "a", "c", "d"]  # order of first appearance
    assert list(stats["n"]) == [14, 14, 10, 1]
    for row in stats.itertuples():
        mean, std = mean_std(frame.loc[frame["g"] == row.g, "value"])
        assert mean == row.mean
        assert std == row.std or (math.isnan(std) and math.isnan(row.std))


def test_format_mean_std_renders_each_style():
    assert format_mean_std(0.91234, 0.01267) == "0.912 ± 0.013"
    assert format_mean_std(0.91234, 0.01267, decimals=2, style="markdown", bold=True) == (
        "**0.91 ± 0.01**"
    )
    assert format_mean_std(0.9, 0.1, style="latex", bold=True) == "\\textbf{0.900 $\\pm$ 0.100}"
    assert format_mean_std(0.9, math.nan) == "0.900"  # one case: the mean alone
    assert format_mean_std(math.nan, math.nan, bold=True) == "-"
    with pytest.raises(ValueError, match="style"):
        format_mean_std(0.9, 0.1, style="html")


def test_format_count_reads_like_a_table():
    assert [format_count(v) for v in (7, 1500, 2_500_000, 3e9)] == [
        "7",
        "1.50 k",
        "2.50 M",
        "3.00 G",
    ]


# -------------------------------------------------------------- rendering
def test_format_markdown_needs_no_tabulate():
    frame = pd.DataFrame({"loss": ["ce|none", "dice"], "dice": [0.91234, math.nan]})
    text = format_markdown(frame.set_index("loss"), decimals=2)
    assert text.splitlines() == [
        "| loss | dice |",
        "| :--- | ---: |",
        "| ce\\|none | 0.91 |",
        "| dice | - |",
    ]
    assert format_markdown(frame).splitlines()[0] == "| loss | dice |"  # RangeIndex hidden


def test_latex_escapes_labels_but_not_cells():
    assert latex_escape("ce_dtm & 50% #1") == "ce\\_dtm \\& 50\\% \\#1"
    cells = pd.DataFrame({"dice_mean": ["\\textbf{0.9}"]}, index=pd.Index(["ce_dtm"], name="loss"))
    text = format_latex(cells, caption="Dice & more", label="tab:x")
    assert "loss & dice\\_mean \\\\" in text
    assert "ce\\_dtm & \\textbf{0.9} \\\\" in text
    assert "\\caption{Dice \\& more}" in text
    assert "\\begin{tabular}{lr}" in text
