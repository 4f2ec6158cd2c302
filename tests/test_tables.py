"""Paper tables: the summary on hand-made per-case tables, and the files of a report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from experiments.ranking import rank_scores
from experiments.tables import summary_grid, summary_table, write_tables
from tests.table_data import (
    PNG_MAGIC,
    cases,
    ordered,
)

# Few resamples keep the tests fast; tests/test_rank_intervals.py tests the bootstrap.
BOOTSTRAP = {"rank_resamples": 30, "rank_seed": 0}


def test_summary_best_follows_the_same_direction():
    results = cases("multiclass", "vessels", "assd", ordered("A", "B", "C"))
    summary = summary_table(results)
    assert list(summary.loc[summary["best"], "variant"]) == ["C"]
    summary = summary_table(results, lower_is_better=())
    assert list(summary.loc[summary["best"], "variant"]) == ["A"]


def test_summary_mean_and_std_equal_pandas_and_nan_is_left_out(study):
    results = study.copy()
    results.loc[3, "value"] = math.nan
    summary = summary_table(results).set_index(["task", "class", "metric", "variant"])
    expected = results.groupby(["task", "class", "metric", "variant"])["value"]
    pd.testing.assert_series_equal(
        summary["mean"].sort_index(), expected.mean().sort_index(), check_names=False
    )
    pd.testing.assert_series_equal(
        summary["std"].sort_index(), expected.std().sort_index(), check_names=False
    )
    assert summary.loc[("binary:vessels", "vessels", "dice", results.loc[3, "variant"]), "n"] == 7
    assert summary["n"].sum() == results["value"].notna().sum()


def test_summary_marks_the_best_variant_per_column(study):
    summary = summary_table(study)
    best = summary[summary["best"]].groupby(["task", "metric"])["variant"].apply(list)
    assert best["binary:vessels", "dice"] == ["A"]
    assert best["binary:vessels", "hd95"] == ["A"]  # lowest
    assert best["binary:cerebrum", "dice"] == ["A", "B", "C"]  # ties are all marked
    assert best["multiclass", "dice"] == ["C"]


def test_summary_text_and_grid_render_mean_std_and_bold(study):
    summary = summary_table(study, decimals=2)
    row = summary[(summary["task"] == "multiclass") & (summary["variant"] == "C")].iloc[0]
    assert row["text"] == f"{row['mean']:.2f} ± {row['std']:.2f}"
    grid = summary_grid(summary, "dice")
    assert list(grid.index) == ["A", "B", "C"]
    assert list(grid.columns) == ["binary:vessels", "binary:cerebrum", "multiclass / vessels"]
    assert grid.loc["C", "multiclass / vessels"] == f"**{row['text']}**"
    assert not grid.loc["A", "multiclass / vessels"].startswith("**")
    latex = summary_grid(summary, "dice", style="latex")
    assert latex.loc["A", "binary:vessels"].startswith("\\textbf{")
    assert "$\\pm$" in latex.loc["A", "binary:vessels"]
    assert list(summary_grid(summary, "hd95").columns) == ["binary:vessels", "binary:cerebrum"]
    without_b = study[(study["task"] != "multiclass") | (study["variant"] != "B")]
    grid = summary_grid(summary_table(without_b), "dice")
    assert grid.loc["B", "multiclass / vessels"] == "-"  # B has no multiclass result
    with pytest.raises(ValueError, match="recall"):
        summary_grid(summary, "recall")


# ------------------------------------------------------------ files, figures
def test_write_tables_writes_every_file(study, curves, tmp_path):
    stability = pd.DataFrame(
        {
            "variant": ["A", "B", "C"],
            "task": ["multiclass"] * 3,
            "stability/val_dice_drops": [0.0, 1.0, 2.0],
            "stability/epochs_to_95pct": [3.0, 4.0, math.nan],
            "seed": [0, 0, 0],
        }
    )
    paths = write_tables(
        study, stability, tmp_path / "report", title="Loss study", curves=curves, **BOOTSTRAP
    )
    expected = {
        f"{table}.{ext}"
        for table in ("summary", "ranking", "stability")
        for ext in ("md", "csv", "tex")
    } | {"significance.csv", "dice_boxplot.png", "val_curves.png", "report.md"}
    assert set(paths) == expected
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths.values())
    report = paths["report.md"].read_text()
    assert report.startswith("# Loss study\n")
    for section in ("## Summary", "### dice", "### hd95", "## Ranking", "### binary"):
        assert section in report
    summary_md = paths["summary.md"].read_text()
    assert all(f"| {v} |" in summary_md for v in "ABC")
    ranking_md = paths["ranking.md"].read_text()
    assert "| rank | variant | rank score | rank interval | n scores |" in ranking_md
    assert "| 1 | A | 1.000 | [1, 1] | 4 |" in ranking_md  # A wins on every case
    assert "95 % bootstrap interval of the rank over 30 resamples of the test cases" in ranking_md
    assert "& [1, 1] &" in paths["ranking.tex"].read_text()
    stability_md = paths["stability.md"].read_text()
    assert "| multiclass | C | 2 | - |" in stability_md
    assert "seed" not in stability_md
    assert paths["summary.tex"].read_text().count("\\begin{tabular}") == 2  # dice, hd95
    ranking = pd.read_csv(paths["ranking.csv"])
    assert list(ranking.columns[-2:]) == ["rank_low", "rank_high"]
    assert (ranking["rank_low"] <= ranking["rank"]).all()
    assert (ranking["rank"] <= ranking["rank_high"]).all()
    pd.testing.assert_frame_equal(
        ranking.drop(columns=["rank_low", "rank_high"]), rank_scores(study), check_dtype=False
    )
    for name in ("dice_boxplot.png", "val_curves.png"):
        assert paths[name].read_bytes()[:8] == PNG_MAGIC


def test_write_tables_without_stability_or_curves_writes_no_such_files(study, tmp_path):
    paths = write_tables(study, None, tmp_path, title="t", **BOOTSTRAP)
    assert not any(name.startswith(("stability", "val_curves")) for name in paths)
    assert not (tmp_path / "stability.md").exists()
    assert "Training stability" not in paths["report.md"].read_text()


def test_write_tables_adds_label_and_size_tables_and_the_sparsity_plot(conditions, tmp_path):
    results, supervision = conditions
    complexity = pd.DataFrame(
        {"variant": ["N1", "N2", "N3"], "parameters": [1500, 2_500_000, 7], "macs": [1, 2, 3e9]}
    )
    paths = write_tables(
        results,
        None,
        tmp_path,
        title="Skips",
        supervision=supervision,
        complexity=complexity,
        sparsity=["full", "sparse_k2"],
        **BOOTSTRAP,
    )
    for name in ("supervision", "complexity"):
        assert {f"{name}.md", f"{name}.csv", f"{name}.tex"} <= set(paths)
    assert paths["dice_vs_labelled.png"].read_bytes()[:8] == PNG_MAGIC
    report = paths["report.md"].read_text()
    assert report.index("## Training labels") < report.index("## Summary")
    assert "| noisy | 1.000 | 0.900 | 0.600 |" in report
    assert "| N2 | 2.50 M | 2 |" in report and "| N3 | 7 | 3.00 G |" in report
    # Ranks are per label condition: one ranking section each.
    for condition in ("full", "sparse_k2", "noisy"):
        assert f"### {condition}\n" in paths["ranking.md"].read_text()
    # No weakly supervised variant finished: the tables of what did, without that figure.
    partial = write_tables(
        results, None, tmp_path / "partial", title="t", sparsity=["full"], **BOOTSTRAP
    )
    assert "dice_vs_labelled.png" not in partial
    assert "## Summary" in partial["report.md"].read_text()
