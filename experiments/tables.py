"""Per-case results -> the paper tables of an ablation, written as Markdown, CSV and LaTeX.

Everything starts from one long frame of per-case results, one row per
measurement (``experiments.per_case``: ``variant``, ``task``, ``subject``,
``class``, ``metric``, ``value``); ``per_case_long`` turns a run's per-case CSV
into that layout. This module holds the summary table and ``write_tables``,
which writes every table and figure of a report; the pieces live in:

- ``experiments.per_case``: the per-case layout, ``per_case_long``, ``task_group``;
- ``experiments.ranking``: ``rank_scores``, the rank score of Sugino et al. 2021
  (Healthcare 9(8):938), pairwise Wilcoxon signed-rank tests as in the Medical
  Segmentation Decathlon;
- ``experiments.rank_intervals``: bootstrap intervals of those ranks over resampled
  test cases, and the ranking section that shows them (``ranking_section``);
- ``experiments.table_format``: ``mean_std`` (the one mean ± std), cell
  formatting, ``format_markdown``, ``format_latex``;
- ``experiments.training_tables``: ``supervision_table`` and ``complexity_table``
  (how weak each label condition's training labels were, each network's
  parameters and multiply-adds) and ``stability_summary``;
- ``experiments.report_figures``: the box plot, validation curves and Dice vs
  labelled fraction.

Example:
    >>> results = pd.DataFrame({
    ...     "variant": ["ce", "ce", "dice", "dice"], "task": "binary:vessels",
    ...     "subject": ["s1", "s2", "s1", "s2"], "class": "vessels",
    ...     "metric": "dice", "value": [0.80, 0.90, 0.85, 0.95],
    ... })
    >>> paths = write_tables(
    ...     results, None, getfixture("tmp_path"), title="Loss study",
    ...     rank_resamples=20, rank_seed=0,
    ... )
    >>> sorted(paths)  # doctest: +NORMALIZE_WHITESPACE
    ['dice_boxplot.png', 'ranking.csv', 'ranking.md', 'ranking.tex', 'report.md',
     'significance.csv', 'summary.csv', 'summary.md', 'summary.tex']
    >>> print(paths["summary.md"].read_text().rstrip())
    ## Summary
    <BLANKLINE>
    Mean ± std per case; **bold**: best per column (lowest for hd95, assd, highest otherwise).
    <BLANKLINE>
    ### dice
    <BLANKLINE>
    | variant | binary:vessels |
    | :--- | ---: |
    | ce | 0.850 ± 0.071 |
    | dice | **0.900 ± 0.071** |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.per_case import (
    CELL_KEYS,
    LOWER_IS_BETTER,
    appearance_sorted,
    validated_results,
)
from experiments.rank_intervals import ranking_section
from experiments.report_figures import (
    dice_vs_labelled_figure,
    plot_dice_boxplot,
    plot_val_curves,
)
from experiments.stability_test import most_stable
from experiments.table_format import (
    MISSING,
    format_count,
    format_latex,
    format_markdown,
    format_mean_std,
    mean_std_by,
)
from experiments.training_tables import (
    complexity_table,
    stability_summary,
    supervision_table,
)


# ---------------------------------------------------------------- summary
def summary_table(
    results: pd.DataFrame,
    *,
    decimals: int = 3,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Mean ± std of each metric per task, class and variant, with the best marked.

    Args:
        results: long per-case results (``experiments.per_case``).
        decimals: digits shown in ``text``; the best is chosen at this precision,
            so cells that look equal are marked alike.
        lower_is_better: metrics whose lowest mean is best; for the others the highest.

    Returns:
        A tidy frame, one row per ``(task, class, metric, variant)``, with the
        columns ``task``, ``class``, ``metric``, ``variant``, ``n`` (cases with
        a value; NaN values are left out), ``mean``, ``std`` (``mean_std``:
        sample std, ddof 1; NaN with one case), ``best`` (bool, per task, class and metric)
        and ``text`` (``"0.912 ± 0.013"``; the mean alone without a std, ``-``
        without a mean). ``summary_grid`` pivots it into the paper layout.
    """
    data = validated_results(results)
    lower = set(lower_is_better)
    summary = mean_std_by(data, [*CELL_KEYS, "variant"])
    summary = appearance_sorted(summary, [*CELL_KEYS, "variant"])
    rounded = summary["mean"].round(decimals)
    cells = rounded.groupby([summary[k] for k in CELL_KEYS], sort=False)
    target = np.where(summary["metric"].isin(lower), cells.transform("min"), cells.transform("max"))
    summary["best"] = (rounded == target) & rounded.notna()
    summary["text"] = [
        format_mean_std(m, s, decimals=decimals)
        for m, s in zip(summary["mean"], summary["std"], strict=True)
    ]
    summary.attrs["decimals"] = decimals
    return summary


def summary_grid(
    summary: pd.DataFrame, metric: str, *, style: str = "markdown", decimals: int | None = None
) -> pd.DataFrame:
    """One metric of a ``summary_table`` in the paper layout, as strings.

    Args:
        summary: the output of ``summary_table``.
        metric: which metric.
        style: ``markdown`` (best in ``**bold**``), ``latex`` (``\\textbf``) or ``plain``.
        decimals: digits shown; ``None`` uses those ``summary_table`` was given.

    Returns:
        Rows: variants (index ``variant``); columns: one per task and class,
        labelled ``binary:vessels`` for a binary task and ``multiclass / cerebrum``
        otherwise.
    """
    if style not in ("markdown", "latex", "plain"):
        raise ValueError(f"style must be 'markdown', 'latex' or 'plain', got {style!r}")
    if decimals is None:
        decimals = summary.attrs.get("decimals", 3)
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"metric {metric!r} not in summary; has {list(pd.unique(summary.metric))}")
    labels = [_column_label(t, c) for t, c in zip(rows["task"], rows["class"], strict=True)]
    cells = [
        format_mean_std(m, s, decimals=decimals, style=style, bold=b)
        for m, s, b in zip(rows["mean"], rows["std"], rows["best"], strict=True)
    ]
    grid = pd.DataFrame({"variant": rows["variant"].to_numpy(), "column": labels, "cell": cells})
    wide = grid.pivot(index="variant", columns="column", values="cell")
    wide = wide.reindex(index=pd.unique(grid["variant"]), columns=pd.unique(grid["column"]))
    wide.index.name, wide.columns.name = "variant", None
    return wide.fillna(MISSING)


def _column_label(task: str, class_name: str) -> str:
    """``binary:vessels`` for a binary task's own class, else ``multiclass / vessels``."""
    return task if task.endswith(f":{class_name}") else f"{task} / {class_name}"


# ------------------------------------------------------------------ write
def write_tables(
    results: pd.DataFrame,
    stability: pd.DataFrame | None,
    out_dir: Path,
    *,
    title: str,
    curves: pd.DataFrame | None = None,
    supervision: pd.DataFrame | None = None,
    complexity: pd.DataFrame | None = None,
    sparsity: Sequence[str] | None = None,
    stability_axis: str | None = None,
    decimals: int = 3,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
    rank_resamples: int,
    rank_seed: int,
    seeded_results: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write every table as Markdown, CSV and LaTeX, and the figures as PNG.

    Files under ``out_dir`` (created), keyed in the returned dict by name:

    - ``summary.{md,csv,tex}``: ``summary_table``; Markdown and LaTeX hold one
      table per metric (``summary_grid``), the CSV the tidy frame;
    - ``ranking.{md,csv,tex}``: ``rank_scores``, one table per task group, with
      each rank's ``bootstrap_rank_intervals`` (``rank_low``, ``rank_high``) over
      ``rank_resamples`` resamples drawn with ``rank_seed`` (of the test cases,
      and of the seeds of ``seeded_results`` where it has several), and
      ``significance.csv``: the per class and metric scores behind them;
    - ``stability.{md,csv,tex}`` when ``stability`` is given (``stability_summary``),
      and ``stability_test.csv`` with a "Steadiest" section when its
      ``axis.<stability_axis>`` column is there (``experiments.stability_test``);
    - ``supervision.{md,csv,tex}`` when ``supervision`` is given
      (``supervision_table``), ``complexity.{md,csv,tex}`` when ``complexity``
      is given (``complexity_table``);
    - ``dice_boxplot.png`` (when there are Dice values), ``val_curves.png``
      when ``curves`` is given, and ``dice_vs_labelled.png`` when ``sparsity``
      names the column groups to plot against their labelled fraction
      (``dice_vs_labelled_figure``; left out without ``supervision``, as when
      no weakly supervised variant finished);
    - ``report.md``: the title and all Markdown tables, ready to print.

    Returns:
        ``{"summary.md": path, ...}``, one entry per file written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lower = tuple(lower_is_better)
    paths: dict[str, Path] = {}

    def write(name: str, text: str) -> None:
        paths[name] = out_dir / name
        paths[name].write_text(text, encoding="utf-8")

    def write_table(name: str, frame: pd.DataFrame, markdown: str, latex: str) -> str:
        """``<name>.csv`` (the tidy ``frame``), ``.md`` and ``.tex``; returns the Markdown."""
        paths[f"{name}.csv"] = out_dir / f"{name}.csv"
        frame.to_csv(paths[f"{name}.csv"], index=False)
        write(f"{name}.md", markdown)
        write(f"{name}.tex", latex)
        return markdown

    summary = summary_table(results, decimals=decimals, lower_is_better=lower)
    metrics = list(pd.unique(summary["metric"]))
    note = (
        f"Mean ± std per case; **bold**: best per column (lowest for {', '.join(lower)}, "
        "highest otherwise)."
    )
    summary_md = [f"## Summary\n\n{note}\n"]
    summary_tex = []
    for metric in metrics:
        summary_md.append(f"### {metric}\n\n{format_markdown(summary_grid(summary, metric))}")
        summary_tex.append(
            format_latex(
                summary_grid(summary, metric, style="latex"),
                caption=f"{title}: {metric}, mean ± std per case (best in bold).",
                label=f"tab:summary-{metric}",
            )
        )
    write("summary.md", "\n".join(summary_md))
    summary.to_csv(out_dir / "summary.csv", index=False)
    paths["summary.csv"] = out_dir / "summary.csv"
    write("summary.tex", "\n".join(summary_tex))

    ranking, scores, ranking_md, ranking_tex = ranking_section(
        results,
        title=title,
        decimals=decimals,
        alpha=alpha,
        lower_is_better=lower,
        resamples=rank_resamples,
        seed=rank_seed,
        seeded=seeded_results,
    )
    write_table("ranking", ranking, ranking_md, ranking_tex)
    paths["significance.csv"] = out_dir / "significance.csv"
    scores.to_csv(paths["significance.csv"], index=False)

    sections = ["\n".join(summary_md), ranking_md]
    if stability is not None:
        table = stability_summary(stability)
        text_columns = [c for c in ("task", "variant") if c in table.columns]
        # Significant digits suit both small spreads (0.0123) and counts (2, 14).
        cells = table.set_index(text_columns).map(
            lambda v: MISSING if math.isnan(v) else f"{v:.{decimals}g}"
        )
        latex_cells = cells.copy()
        latex_cells.columns = [c.replace("_", " ") for c in latex_cells.columns]
        markdown = f"## Training stability\n\n{format_markdown(cells)}"
        latex = format_latex(
            latex_cells, caption=f"{title}: training stability.", label="tab:stability"
        )
        sections.append(write_table("stability", table, markdown, latex))
        if stability_axis and f"axis.{stability_axis}" in stability.columns:
            # Named as in the ablation file, so that the sentence reads "Steadiest weighting".
            named = stability.rename(columns={f"axis.{stability_axis}": stability_axis})
            ranked, sentence = most_stable(named, stability_axis)
            ranked.to_csv(out_dir / "stability_test.csv", index=False)
            paths["stability_test.csv"] = out_dir / "stability_test.csv"
            sections.append(
                f"### Steadiest {stability_axis}\n\n{sentence}\n\n"
                f"{format_markdown(ranked.set_index(stability_axis), decimals=decimals)}"
            )

    if supervision is not None:
        table = supervision_table(supervision)
        markdown = (
            "## Training labels\n\nShare of training voxels labelled, and each structure's "
            "Dice of the weak labels against the truth on the labelled voxels (mean over "
            f"training subjects).\n\n{format_markdown(table, decimals=decimals)}"
        )
        cells = table.map(lambda v: MISSING if math.isnan(v) else f"{v:.{decimals}f}")
        cells.columns = [c.replace("_", " ") for c in cells.columns]
        latex = format_latex(cells, caption=f"{title}: training labels.", label="tab:supervision")
        sections.insert(0, write_table("supervision", table.reset_index(), markdown, latex))
    if complexity is not None:
        table = complexity_table(complexity)
        cells = table.map(format_count).rename(columns={"macs": "multiply-adds"})
        markdown = (
            "## Network size\n\nParameters, and multiply-adds of one forward pass of a "
            f"training patch.\n\n{format_markdown(cells)}"
        )
        latex = format_latex(cells, caption=f"{title}: network size.", label="tab:complexity")
        sections.append(write_table("complexity", table.reset_index(), markdown, latex))

    if (summary["metric"] == "dice").any():
        paths["dice_boxplot.png"] = plot_dice_boxplot(results, out_dir / "dice_boxplot.png")
    # Without supervision facts (no weakly supervised variant finished) there is no x axis.
    if sparsity and supervision is not None:
        figure = dice_vs_labelled_figure(results, supervision, sparsity)
        paths["dice_vs_labelled.png"] = out_dir / "dice_vs_labelled.png"
        figure.savefig(paths["dice_vs_labelled.png"], dpi=120)
    if curves is not None:
        paths["val_curves.png"] = plot_val_curves(curves, out_dir / "val_curves.png")
    write("report.md", f"# {title}\n\n" + "\n".join(sections))
    return paths
