"""Paper tables: the rank score on hand-made per-case tables, summaries, files and figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.tables import (
    COLUMNS,
    complexity_table,
    dice_boxplot_figure,
    dice_vs_labelled_figure,
    format_latex,
    format_markdown,
    latex_escape,
    per_case_long,
    plot_val_curves,
    rank_scores,
    significance_scores,
    summary_grid,
    summary_table,
    supervision_table,
    val_curves_figure,
    write_tables,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUBJECTS = [f"s{i}" for i in range(8)]
# Per-subject base values that vary, so that differences between variants are
# not all equal and the test statistic is not degenerate.
BASE = np.array([0.61, 0.74, 0.58, 0.69, 0.72, 0.65, 0.63, 0.70])


def cases(task: str, class_name: str, metric: str, values: dict[str, list[float]]) -> pd.DataFrame:
    """Long per-case rows: one per variant and subject."""
    return pd.DataFrame(
        [
            {
                "variant": variant,
                "task": task,
                "subject": subject,
                "class": class_name,
                "metric": metric,
                "value": value,
            }
            for variant, column in values.items()
            for subject, value in zip(SUBJECTS, column, strict=True)
        ],
        columns=list(COLUMNS),
    )


def ordered(best: str, middle: str, worst: str, *, step: float = 0.1) -> dict[str, list[float]]:
    """Higher values for ``best`` than ``middle`` than ``worst`` on every subject."""
    noise = np.array([0.0, 0.01, -0.01, 0.02, 0.0, -0.02, 0.01, 0.0])
    return {
        best: list(BASE + 2 * step - noise),
        middle: list(BASE + step + noise),
        worst: list(BASE),
    }


@pytest.fixture
def study() -> pd.DataFrame:
    """Binary vessels: A > B > C in Dice, and A lowest in HD95; binary cerebrum: all tied;
    multiclass: the reverse order, C > B > A in Dice."""
    hd95 = {v: [10 * (1 - x) for x in column] for v, column in ordered("A", "B", "C").items()}
    tied = {v: list(BASE) for v in "ABC"}
    return pd.concat(
        [
            cases("binary:vessels", "vessels", "dice", ordered("A", "B", "C")),
            cases("binary:vessels", "vessels", "hd95", hd95),
            cases("binary:cerebrum", "cerebrum", "dice", tied),
            cases("binary:cerebrum", "cerebrum", "hd95", tied),
            cases("multiclass", "vessels", "dice", ordered("C", "B", "A")),
        ],
        ignore_index=True,
    )


# ---------------------------------------------------------------- ranking
def test_significance_scores_count_the_variants_significantly_worse(study):
    scores = significance_scores(study).set_index(["task", "metric", "variant"])["significance"]
    scores = scores.sort_index()
    for metric in ("dice", "hd95"):  # hd95: lower is better, and A has the lowest
        assert scores.loc["binary:vessels", metric].to_dict() == {"A": 2, "B": 1, "C": 0}
    assert scores.loc["binary:cerebrum"].eq(0).all()
    assert scores.loc["multiclass", "dice"].to_dict() == {"A": 0, "B": 1, "C": 2}


def test_rank_score_is_the_mean_per_group_sorted_best_first(study):
    ranking = rank_scores(study)
    assert list(ranking.columns) == ["group", "rank", "variant", "rank_score", "n_scores"]
    binary = ranking[ranking["group"] == "binary"]
    # vessels (dice 2, hd95 2) and the tied cerebrum (0, 0): A = 4 / 4, B = 2 / 4, C = 0
    assert list(binary["variant"]) == ["A", "B", "C"]
    assert list(binary["rank_score"]) == [1.0, 0.5, 0.0]
    assert list(binary["rank"]) == [1, 2, 3]
    assert list(binary["n_scores"]) == [4, 4, 4]
    multiclass = ranking[ranking["group"] == "multiclass"]
    assert list(multiclass["variant"]) == ["C", "B", "A"]
    assert list(multiclass["rank_score"]) == [2.0, 1.0, 0.0]
    assert list(ranking["group"]) == ["binary"] * 3 + ["multiclass"] * 3


def test_identical_values_give_no_significance_and_a_shared_rank():
    tied = cases("multiclass", "brainstem", "dice", {v: list(BASE) for v in "ABC"})
    ranking = rank_scores(tied)
    assert list(ranking["rank_score"]) == [0.0, 0.0, 0.0]
    assert list(ranking["rank"]) == [1, 1, 1]
    assert list(ranking["variant"]) == ["A", "B", "C"]  # input order among ties


@pytest.mark.parametrize(
    ("metric", "lower_is_better", "winner"),
    [("dice", ("hd95", "assd"), "A"), ("hd95", ("hd95", "assd"), "C"), ("hd95", (), "A")],
)
def test_the_better_direction_follows_the_metric(metric, lower_is_better, winner):
    # A has the highest values: best for Dice, worst for a distance
    results = cases("multiclass", "vessels", metric, ordered("A", "B", "C"))
    ranking = rank_scores(results, lower_is_better=lower_is_better)
    assert ranking["variant"].iloc[0] == winner
    assert ranking["rank_score"].iloc[0] == 2.0


def test_summary_best_follows_the_same_direction():
    results = cases("multiclass", "vessels", "assd", ordered("A", "B", "C"))
    summary = summary_table(results)
    assert list(summary.loc[summary["best"], "variant"]) == ["C"]
    summary = summary_table(results, lower_is_better=())
    assert list(summary.loc[summary["best"], "variant"]) == ["A"]


@pytest.mark.parametrize(("missing", "pairs", "a_score"), [(2, 6, 1), (3, 5, 0)])
def test_pairs_with_a_nan_are_dropped(missing, pairs, a_score):
    values = {"A": list(BASE + 0.2), "B": list(BASE)}
    values["B"][:missing] = [math.nan] * missing
    scores = significance_scores(cases("multiclass", "vessels", "dice", values))
    # six positive differences give the exact two-sided p = 2 / 64 < 0.05; five
    # cannot go below 2 / 32 > 0.05, so they never separate variants
    assert list(scores["pairs"]) == [pairs, pairs]
    assert list(scores["significance"]) == [a_score, 0]


def test_a_subject_missing_for_one_variant_is_dropped_from_the_pairs():
    results = cases("multiclass", "vessels", "dice", {"A": list(BASE + 0.2), "B": list(BASE)})
    results = results.drop(results.index[(results.variant == "B") & (results.subject == "s0")])
    scores = significance_scores(results)
    assert list(scores["pairs"]) == [7, 7]
    assert list(scores["significance"]) == [1, 0]


def test_all_nan_and_single_variant_cells_score_zero_without_raising():
    all_nan = cases("multiclass", "vessels", "hd95", {"A": [math.nan] * 8, "B": list(BASE)})
    assert list(significance_scores(all_nan)["significance"]) == [0, 0]
    single = rank_scores(cases("binary:vessels", "vessels", "dice", {"A": list(BASE)}))
    assert single.to_dict("records") == [
        {"group": "binary", "rank": 1, "variant": "A", "rank_score": 0.0, "n_scores": 1}
    ]


def test_duplicated_cases_and_missing_columns_are_refused(study):
    with pytest.raises(ValueError, match="duplicated"):
        rank_scores(pd.concat([study, study.head(1)]))
    with pytest.raises(ValueError, match="subject"):
        rank_scores(study.drop(columns="subject"))
    with pytest.raises(ValueError, match="alpha"):
        rank_scores(study, alpha=0.0)


# ---------------------------------------------------------------- summary
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


# ------------------------------------------------------------ files, figures
@pytest.fixture
def curves() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"variant": v, "task": t, "epoch": e, "val_dice": e / 4 - i / 10}
            for i, v in enumerate("ABC")
            for t in ("binary:vessels", "multiclass")
            for e in range(1, 5)
        ]
    )


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
    paths = write_tables(study, stability, tmp_path / "report", title="Loss study", curves=curves)
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
    assert "| 1 | A | 1.000 | 4 |" in paths["ranking.md"].read_text()
    stability_md = paths["stability.md"].read_text()
    assert "| multiclass | C | 2 | - |" in stability_md
    assert "seed" not in stability_md
    assert paths["summary.tex"].read_text().count("\\begin{tabular}") == 2  # dice, hd95
    pd.testing.assert_frame_equal(
        pd.read_csv(paths["ranking.csv"]), rank_scores(study), check_dtype=False
    )
    for name in ("dice_boxplot.png", "val_curves.png"):
        assert paths[name].read_bytes()[:8] == PNG_MAGIC


def test_write_tables_without_stability_or_curves_writes_no_such_files(study, tmp_path):
    paths = write_tables(study, None, tmp_path, title="t")
    assert not any(name.startswith(("stability", "val_curves")) for name in paths)
    assert not (tmp_path / "stability.md").exists()
    assert "Training stability" not in paths["report.md"].read_text()


def test_dice_boxplot_has_one_panel_per_task_and_a_box_per_variant_and_class(study):
    figure = dice_boxplot_figure(study)
    axes = figure.get_axes()
    assert [axis.get_title() for axis in axes] == [
        "binary:vessels",
        "binary:cerebrum",
        "multiclass",
    ]
    # each box's median line is one Line2D among whiskers and caps; count patches instead
    assert all(len(axis.patches) == 3 for axis in axes)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["A", "B", "C"]


def test_val_curves_have_one_panel_per_task_and_a_line_per_variant(curves, tmp_path):
    figure = val_curves_figure(curves)
    visible = [axis for axis in figure.get_axes() if axis.get_visible()]
    assert [axis.get_title() for axis in visible] == ["binary:vessels", "multiclass"]
    assert all(len(axis.get_lines()) == 3 for axis in visible)
    line = visible[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4]
    path = plot_val_curves(curves.sample(frac=1, random_state=0), tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------- label conditions
@pytest.fixture
def conditions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-case Dice of networks N1 > N2 under three label conditions, and the runs'
    weak-label metrics (the full condition logs none)."""
    results = pd.concat(
        [
            cases(condition, structure, "dice", ordered("N1", "N2", "N3", step=shift))
            for condition, shift in (("full", 0.1), ("sparse_k2", 0.05), ("noisy", 0.02))
            for structure in ("cerebrum", "vessels")
        ],
        ignore_index=True,
    )
    supervision = pd.DataFrame(
        [{"variant": v, "task": "full", "weak_labels": False} for v in ("N1", "N2", "N3")]
        + [
            {
                "variant": v,
                "task": "sparse_k2",
                "weak_labels": True,
                "weak_label/labelled_fraction": 0.5,
                "weak_label/dice_cerebrum": 1.0,
                "weak_label/dice_vessels": 1.0,
            }
            for v in ("N1", "N2", "N3")
        ]
        + [
            {
                "variant": v,
                "task": "noisy",
                "weak_labels": True,
                "weak_label/labelled_fraction": 1.0,
                "weak_label/dice_cerebrum": 0.9,
                "weak_label/dice_vessels": dice,
            }
            for v, dice in (("N1", 0.5), ("N2", 0.7), ("N3", 0.6))
        ]
    )
    return results, supervision


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


def test_dice_vs_labelled_plots_each_network_at_its_conditions_fraction(conditions):
    results, supervision = conditions
    figure = dice_vs_labelled_figure(results, supervision, ["full", "sparse_k2"])
    axes = figure.get_axes()
    assert [axis.get_title() for axis in axes] == ["mean over structures", "cerebrum", "vessels"]
    # One error-bar line per network, at fractions 0.5 and 1 (sorted), in the mean panel.
    containers = axes[0].containers
    assert len(containers) == 3
    line = containers[0].lines[0]
    assert list(line.get_xdata()) == [0.5, 1.0]
    full_mean = results[(results.variant == "N1") & (results.task == "full")]["value"].mean()
    assert line.get_ydata()[1] == pytest.approx(full_mean)
    with pytest.raises(ValueError, match="no supervision rows"):
        dice_vs_labelled_figure(results, supervision, ["sparse_k8"])


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
    with pytest.raises(ValueError, match="sparsity needs supervision"):
        write_tables(results, None, tmp_path, title="t", sparsity=["full"])
