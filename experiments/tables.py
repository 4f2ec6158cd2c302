"""Per-case results -> paper tables: summary, statistical ranking, stability, figures.

Everything starts from one long frame of per-case results, one row per
measurement, with the columns ``variant`` (e.g. the loss ``ce+median``),
``task`` (``multiclass``, ``binary:vessels``, ...), ``subject``, ``class``
(the structure), ``metric`` (``dice``, ``hd95``, ``assd``, ``precision``,
``recall``) and ``value``. ``per_case_long`` turns a run's per-case CSV into
that layout.

- ``summary_table``: mean ± std per variant, task, class and metric, best marked;
- ``rank_scores``: the rank score of Sugino et al. 2021 (Healthcare 9(8):938),
  pairwise Wilcoxon signed-rank tests as in the Medical Segmentation Decathlon;
- ``supervision_table`` and ``complexity_table``: how weak each label condition's
  training labels were, and each network's parameters and multiply-adds;
- ``write_tables``: Markdown, CSV and LaTeX of all tables, plus PNG figures.

The ``task`` column is the table's column group: the segmentation task in the
loss study, the label condition (``full``, ``sparse_k4``, ...) in the
skip-connection study. Ranks are computed per group.

Rows keep the order in which variants, tasks, classes and metrics first appear
in the input, so tables follow the ablation grid. Markdown and LaTeX are
rendered here (``format_markdown``, ``format_latex``): pandas' own renderers
need ``tabulate`` (not installed) and ``jinja2`` (only an indirect dependency).

Example:
    >>> paths = write_tables(results, stability, Path("reports/losses"), title="Loss study")
    >>> print(paths["report"].read_text())
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.stats import wilcoxon

from experiments.stability import PREFIX as STABILITY_PREFIX

COLUMNS: tuple[str, ...] = ("variant", "task", "subject", "class", "metric", "value")
LOWER_IS_BETTER: tuple[str, ...] = ("hd95", "assd")
MISSING = "-"
_CELL_KEYS = ["task", "class", "metric"]


# ------------------------------------------------------------------ input
def per_case_long(per_case: pd.DataFrame, *, variant: str, task: str) -> pd.DataFrame:
    """A run's per-case CSV (``subject``, ``class``, one column per metric) -> long rows.

    Every numeric column other than ``subject`` and ``class`` is taken as a metric.
    """
    metrics = [
        c
        for c in per_case.columns
        if c not in ("subject", "class") and pd.api.types.is_numeric_dtype(per_case[c])
    ]
    long = per_case.melt(
        id_vars=["subject", "class"], value_vars=metrics, var_name="metric", value_name="value"
    )
    return long.assign(variant=variant, task=task)[list(COLUMNS)]


def task_group(task: str) -> str:
    """The ranking group of a task: ``binary`` for every ``binary:*`` task, else the task."""
    return "binary" if task == "binary" or task.startswith("binary:") else task


def _validated(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks column(s) {missing}; expected {list(COLUMNS)}")
    if results.empty:
        raise ValueError("results is empty")
    data = results[list(COLUMNS)].copy()
    data["value"] = pd.to_numeric(data["value"]).astype(float)
    return data


def _appearance_sorted(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Sort by each column's order of first appearance (a stable multi-key sort)."""

    def first_seen(column: pd.Series) -> pd.Series:
        return column.map({value: i for i, value in enumerate(pd.unique(column))})

    return frame.sort_values(list(columns), key=first_seen, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- summary
def summary_table(
    results: pd.DataFrame,
    *,
    decimals: int = 3,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Mean ± std of each metric per task, class and variant, with the best marked.

    Args:
        results: long per-case results (module docstring).
        decimals: digits shown in ``text``; the best is chosen at this precision,
            so cells that look equal are marked alike.
        lower_is_better: metrics whose lowest mean is best; for the others the highest.

    Returns:
        A tidy frame, one row per ``(task, class, metric, variant)``, with the
        columns ``task``, ``class``, ``metric``, ``variant``, ``n`` (cases with
        a value; NaN values are left out), ``mean``, ``std`` (sample std,
        ddof 1; NaN with one case), ``best`` (bool, per task, class and metric)
        and ``text`` (``"0.912 ± 0.013"``; the mean alone without a std, ``-``
        without a mean). ``summary_grid`` pivots it into the paper layout.
    """
    data = _validated(results)
    lower = set(lower_is_better)
    summary = (
        data.groupby([*_CELL_KEYS, "variant"], sort=False)["value"]
        .agg(n="count", mean="mean", std="std")
        .reset_index()
    )
    summary = _appearance_sorted(summary, [*_CELL_KEYS, "variant"])
    rounded = summary["mean"].round(decimals)
    cells = rounded.groupby([summary[k] for k in _CELL_KEYS], sort=False)
    target = np.where(summary["metric"].isin(lower), cells.transform("min"), cells.transform("max"))
    summary["best"] = (rounded == target) & rounded.notna()
    summary["text"] = [
        _mean_std(m, s, decimals, "plain")
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
        _mean_std(m, s, decimals, style, bold=b)
        for m, s, b in zip(rows["mean"], rows["std"], rows["best"], strict=True)
    ]
    grid = pd.DataFrame({"variant": rows["variant"].to_numpy(), "column": labels, "cell": cells})
    wide = grid.pivot(index="variant", columns="column", values="cell")
    wide = wide.reindex(index=pd.unique(grid["variant"]), columns=pd.unique(grid["column"]))
    wide.index.name, wide.columns.name = "variant", None
    return wide.fillna(MISSING)


def _column_label(task: str, class_name: str) -> str:
    return task if task.endswith(f":{class_name}") else f"{task} / {class_name}"


def _mean_std(mean: float, std: float, decimals: int, style: str, *, bold: bool = False) -> str:
    if math.isnan(mean):
        return MISSING
    plus_minus = {"plain": "±", "markdown": "±", "latex": "$\\pm$"}[style]
    text = f"{mean:.{decimals}f}"
    if not math.isnan(std):
        text += f" {plus_minus} {std:.{decimals}f}"
    if bold and style == "markdown":
        return f"**{text}**"
    if bold and style == "latex":
        return f"\\textbf{{{text}}}"
    return text


# ---------------------------------------------------------------- ranking
def significance_scores(
    results: pd.DataFrame,
    *,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Significance score of every variant per task, class and metric.

    Variant A is significantly better than B when a two-sided Wilcoxon
    signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped) on
    their per-case values paired by subject gives p < ``alpha`` and the median
    of the paired differences A - B is in the metric's better direction (above
    zero, or below for ``lower_is_better``). A's significance score is the
    number of variants significantly worse than it.

    Edge cases, none of which raise: a pair with a NaN on either side (or a
    subject only one variant has) is dropped; all differences zero, or no pair
    left, is not significant. Fewer pairs still run the test, but the exact
    test cannot reach p < 0.05 with fewer than 6 non-zero differences, so such
    small sets never separate variants. One variant scores 0.

    Returns:
        Columns ``group`` (``task_group``), ``task``, ``class``, ``metric``,
        ``variant``, ``significance`` (int) and ``pairs`` (the fewest pairs
        left in any of its comparisons; 0 without comparisons).

    Raises:
        ValueError: missing columns, or two values for one
            (variant, task, subject, class, metric): average seeds first.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    data = _validated(results)
    keys = ["variant", "task", "subject", "class", "metric"]
    duplicated = data.duplicated(keys)
    if duplicated.any():
        example = data.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{int(duplicated.sum())} duplicated per-case row(s), e.g. {example}: pairing by "
            "subject needs one value per variant, task, subject, class and metric"
        )
    lower = set(lower_is_better)
    rows = []
    for (task, class_name, metric), cell in data.groupby(_CELL_KEYS, sort=False):
        values = cell.pivot(index="subject", columns="variant", values="value")
        variants = list(pd.unique(cell["variant"]))
        score = dict.fromkeys(variants, 0)
        pairs: dict[str, list[int]] = {v: [] for v in variants}
        for a, b in combinations(variants, 2):
            sign, n = _compare(values[a].to_numpy(), values[b].to_numpy(), alpha)
            if metric in lower:
                sign = -sign
            if sign > 0:
                score[a] += 1
            elif sign < 0:
                score[b] += 1
            pairs[a].append(n)
            pairs[b].append(n)
        rows += [
            {
                "group": task_group(task),
                "task": task,
                "class": class_name,
                "metric": metric,
                "variant": v,
                "significance": score[v],
                "pairs": min(pairs[v], default=0),
            }
            for v in variants
        ]
    return pd.DataFrame(rows)


def _compare(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[int, int]:
    """(+1 if ``a`` is significantly larger than ``b``, -1 if smaller, else 0; pairs used)."""
    paired = ~(np.isnan(a) | np.isnan(b))
    difference = a[paired] - b[paired]
    if not difference.any():
        return 0, int(difference.size)
    with warnings.catch_warnings():
        # Small samples, ties and zeros make scipy warn; the result is still usable.
        warnings.simplefilter("ignore")
        try:
            p = wilcoxon(difference).pvalue
        except ValueError:
            return 0, int(difference.size)
    if not p < alpha:  # NaN is not significant
        return 0, int(difference.size)
    return int(np.sign(np.median(difference))), int(difference.size)


def rank_scores(
    results: pd.DataFrame,
    *,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> pd.DataFrame:
    """Rank score per variant, separately for the binary and the multi-class tasks.

    The rank score is the mean of a variant's significance scores
    (``significance_scores``) over the classes and metrics of a group; all
    ``binary:*`` tasks form one group, each contributing its own class. A
    variant missing from some class or metric is averaged over those it has
    (``n_scores`` says how many).

    Returns:
        Columns ``group``, ``rank`` (1 is best; ties share the better rank),
        ``variant``, ``rank_score``, ``n_scores``; sorted by group (``binary``,
        ``multiclass``, then others as they appear) and, within a group, by
        rank score, best first.
    """
    scores = significance_scores(results, alpha=alpha, lower_is_better=lower_is_better)
    return _ranked(scores)


def _ranked(scores: pd.DataFrame) -> pd.DataFrame:
    """``significance_scores`` -> ``rank_scores``."""
    ranked = (
        scores.groupby(["group", "variant"], sort=False)["significance"]
        .agg(rank_score="mean", n_scores="size")
        .reset_index()
    )
    ranked["rank"] = (
        ranked.groupby("group")["rank_score"].rank(method="min", ascending=False).astype(int)
    )
    groups = _group_order(ranked["group"])
    ranked = ranked.assign(_g=ranked["group"].map(groups), _v=range(len(ranked)))
    ranked = ranked.sort_values(["_g", "rank", "_v"]).drop(columns=["_g", "_v"])
    return ranked[["group", "rank", "variant", "rank_score", "n_scores"]].reset_index(drop=True)


def _group_order(groups: pd.Series) -> dict[str, int]:
    first = [g for g in ("binary", "multiclass") if g in set(groups)]
    rest = [g for g in pd.unique(groups) if g not in first]
    return {g: i for i, g in enumerate([*first, *rest])}


# -------------------------------------------------------------- rendering
def format_markdown(df: pd.DataFrame, *, index: bool = True, decimals: int = 3) -> str:
    """A pipe table (GitHub Markdown) of ``df``, without ``tabulate``.

    The index is shown as first column(s) unless ``index`` is false or it is an
    unnamed ``RangeIndex``; floats get ``decimals`` digits, NaN shows as ``-``,
    ``|`` in a cell is escaped. Index columns (or the first column) are
    left-aligned, the others right-aligned.
    """
    frame = df
    if index and not (isinstance(df.index, pd.RangeIndex) and df.index.name is None):
        frame = df.reset_index()
    left = max(1, frame.shape[1] - df.shape[1])
    header = [_label(c) for c in frame.columns]
    body = [[_markdown_cell(v, decimals) for v in row] for row in frame.itertuples(index=False)]
    align = [":---" if i < left else "---:" for i in range(len(header))]
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def _label(column: object) -> str:
    return " / ".join(map(str, column)) if isinstance(column, tuple) else str(column)


def _markdown_cell(value: object, decimals: int) -> str:
    if isinstance(value, float | np.floating):
        text = MISSING if math.isnan(value) else f"{value:.{decimals}f}"
    else:
        text = MISSING if value is None or value is pd.NA else str(value)
    return text.replace("|", "\\|")


def format_latex(cells: pd.DataFrame, *, caption: str, label: str | None = None) -> str:
    """A booktabs ``table`` of string cells that are already LaTeX.

    Column and index labels are escaped here; the cells are not, so they may
    hold ``\\textbf`` or ``$\\pm$``. Needs ``\\usepackage{booktabs}``.
    """
    frame = cells
    if not (isinstance(cells.index, pd.RangeIndex) and cells.index.name is None):
        frame = cells.reset_index()
    header = " & ".join(latex_escape(_label(c)) for c in frame.columns)
    index_columns = frame.shape[1] - cells.shape[1]
    body = [
        " & ".join(latex_escape(str(v)) if i < index_columns else str(v) for i, v in enumerate(r))
        for r in frame.itertuples(index=False)
    ]
    lines = [
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        *([f"\\label{{{label}}}"] if label else []),
        f"\\begin{{tabular}}{{{'l' * index_columns}{'r' * cells.shape[1]}}}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
        *(row + " \\\\" for row in body),
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


# ---------------------------------------------------------------- figures
def _variant_colours(variants: Sequence[str]) -> dict[str, tuple[float, ...]]:
    palette = colormaps["tab20"].colors if len(variants) > 10 else colormaps["tab10"].colors
    return {v: palette[i % len(palette)] for i, v in enumerate(variants)}


def _variant_legend(figure: Figure, colours: dict[str, tuple[float, ...]]) -> None:
    """One legend entry per variant, outside the panels on the right."""
    handles = [Patch(color=colour, label=variant) for variant, colour in colours.items()]
    figure.legend(handles=handles, loc="outside right upper", frameon=False)


def dice_boxplot_figure(results: pd.DataFrame) -> Figure:
    """Box plot of per-case Dice: one panel per task, per class a box per variant."""
    data = _validated(results)
    dice = data[(data["metric"] == "dice") & data["value"].notna()]
    if dice.empty:
        raise ValueError("results has no Dice values to plot")
    variants = list(pd.unique(dice["variant"]))
    colours = _variant_colours(variants)
    tasks = list(pd.unique(dice["task"]))
    most_classes = max(dice.groupby("task")["class"].nunique())
    width = max(6.0, 0.3 * most_classes * len(variants) + 2.5)
    figure = Figure(figsize=(width, 2.8 * len(tasks) + 0.8), layout="constrained")
    axes = figure.subplots(len(tasks), 1, squeeze=False)[:, 0]
    box_width = 0.8 / len(variants)
    for axis, task in zip(axes, tasks, strict=True):
        cases = dice[dice["task"] == task]
        classes = list(pd.unique(cases["class"]))
        for j, variant in enumerate(variants):
            mine = cases[cases["variant"] == variant]
            groups = [(i, mine.loc[mine["class"] == c, "value"]) for i, c in enumerate(classes)]
            groups = [(i, v.to_numpy()) for i, v in groups if len(v)]
            if not groups:
                continue
            positions = [i - 0.4 + box_width * (j + 0.5) for i, _ in groups]
            boxes = axis.boxplot(
                [v for _, v in groups],
                positions=positions,
                widths=0.85 * box_width,
                patch_artist=True,
                manage_ticks=False,
                flierprops={"markersize": 3},
                medianprops={"color": "black"},
            )
            for box in boxes["boxes"]:
                box.set_facecolor(colours[variant])
        axis.set_xticks(range(len(classes)), classes)
        axis.set_xlim(-0.5, len(classes) - 0.5)
        axis.set_ylabel("Dice")
        axis.set_title(task)
        axis.grid(axis="y", alpha=0.3)
    _variant_legend(figure, colours)
    return figure


def plot_dice_boxplot(results: pd.DataFrame, path: Path) -> Path:
    """Save ``dice_boxplot_figure(results)`` as a PNG at ``path``."""
    dice_boxplot_figure(results).savefig(path, dpi=120)
    return Path(path)


def val_curves_figure(curves: pd.DataFrame) -> Figure:
    """Validation Dice per epoch: one panel per task, one line per variant.

    Args:
        curves: columns ``variant``, ``epoch``, ``val_dice`` and, for one panel
            per task, ``task`` (without it, one panel).
    """
    missing = {"variant", "epoch", "val_dice"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves lacks column(s) {sorted(missing)}")
    if curves.empty:
        raise ValueError("curves is empty")
    frame = curves if "task" in curves.columns else curves.assign(task="val Dice")
    variants = list(pd.unique(frame["variant"]))
    colours = _variant_colours(variants)
    tasks = list(pd.unique(frame["task"]))
    columns = min(3, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    figure = Figure(figsize=(4.2 * columns + 2.0, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, task in zip(axes, tasks, strict=False):
        for variant, run in frame[frame["task"] == task].groupby("variant", sort=False):
            run = run.sort_values("epoch")
            axis.plot(run["epoch"], run["val_dice"], color=colours[variant], label=variant)
        axis.set_title(task)
        axis.set_xlabel("epoch")
        axis.set_ylabel("validation Dice")
        axis.grid(alpha=0.3)
    for axis in axes[len(tasks) :]:
        axis.set_visible(False)
    _variant_legend(figure, colours)
    return figure


def plot_val_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Save ``val_curves_figure(curves)`` as a PNG at ``path``."""
    val_curves_figure(curves).savefig(path, dpi=120)
    return Path(path)


SUPERVISION_PREFIX = "weak_label/"


def supervision_table(supervision: pd.DataFrame) -> pd.DataFrame:
    """How weak the training labels of each column group were, averaged over its runs.

    Args:
        supervision: one row per run: ``task`` (the group), ``weak_labels`` (bool:
            whether the run trained on weak labels) and ``weak_label/*`` columns
            (``experiments.tracking.RunRecorder``: ``labelled_fraction`` and the
            per-structure Dice of the weak labels on labelled voxels). Runs on full
            labels log none of these: their labels are their own truth, fraction and
            Dice 1. A weak run without them (logged before they existed) stays NaN.

    Returns:
        Index ``task``; columns ``labelled_fraction`` then ``dice_*`` in order of appearance.
    """
    columns = [c for c in supervision.columns if str(c).startswith(SUPERVISION_PREFIX)]
    missing = {"task", "weak_labels"} - set(supervision.columns)
    if missing:
        raise ValueError(f"supervision lacks column(s) {sorted(missing)}")
    rows = supervision.copy()
    rows.loc[~rows["weak_labels"].astype(bool), columns] = 1.0
    table = rows.groupby("task", sort=False)[columns].mean()
    table = table.rename(columns=lambda c: str(c).removeprefix(SUPERVISION_PREFIX))
    first = ["labelled_fraction"] if "labelled_fraction" in table.columns else []
    return table[first + [c for c in table.columns if c not in first]]


def complexity_table(complexity: pd.DataFrame) -> pd.DataFrame:
    """Parameters and multiply-adds per forward pass of each variant's network.

    Args:
        complexity: columns ``variant``, ``parameters`` and ``macs`` (one training
            patch), one row per run; runs of one variant agree, the first is kept.

    Returns:
        Index ``variant``; columns ``parameters`` and ``macs`` (integers).
    """
    missing = {"variant", "parameters", "macs"} - set(complexity.columns)
    if missing:
        raise ValueError(f"complexity lacks column(s) {sorted(missing)}")
    table = complexity.dropna(subset=["parameters", "macs"]).drop_duplicates("variant")
    return table.set_index("variant")[["parameters", "macs"]].astype("int64")


def _count(value: float) -> str:
    """``1234567`` -> ``1.23 M``: counts as people read them in a table."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def dice_vs_labelled_figure(
    results: pd.DataFrame, supervision: pd.DataFrame, groups: Sequence[str]
) -> Figure:
    """Test Dice against the labelled fraction of the training labels, a line per variant.

    One panel for the mean over structures, then one per structure; points are
    the column groups in ``groups`` (e.g. full and sparse label conditions) at
    their labelled fraction, with the std over cases as error bars.
    """
    data = _validated(results)
    fractions = supervision_table(supervision)["labelled_fraction"]
    unknown = [g for g in groups if g not in fractions.index]
    if unknown:
        raise ValueError(f"groups {unknown} have no supervision rows; have {list(fractions.index)}")
    dice = data[(data["metric"] == "dice") & data["task"].isin(groups)]
    if dice.empty:
        raise ValueError(f"results has no Dice values for groups {list(groups)}")
    per_case_mean = (
        dice.groupby(["variant", "task", "subject"], sort=False)["value"].mean().reset_index()
    )
    panels = [("mean over structures", per_case_mean)]
    panels += [(c, dice[dice["class"] == c]) for c in pd.unique(dice["class"])]
    variants = list(pd.unique(dice["variant"]))
    colours = _variant_colours(variants)
    figure = Figure(figsize=(3.4 * len(panels) + 1.8, 3.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, frame) in zip(axes, panels, strict=True):
        stats = frame.groupby(["variant", "task"], sort=False)["value"].agg(["mean", "std"])
        for variant in variants:
            rows = stats.loc[variant].reindex(list(groups)).dropna(subset=["mean"])
            x = fractions.loc[rows.index].to_numpy()
            order = np.argsort(x)
            axis.errorbar(
                x[order],
                rows["mean"].to_numpy()[order],
                yerr=rows["std"].fillna(0).to_numpy()[order],
                color=colours[variant],
                marker="o",
                capsize=2,
                label=variant,
            )
        axis.set_xscale("log", base=2)
        axis.set_xlabel("labelled fraction of training slices")
        axis.set_ylabel("test Dice")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    _variant_legend(figure, colours)
    return figure


# ------------------------------------------------------------------ write
def stability_summary(stability: pd.DataFrame) -> pd.DataFrame:
    """Stability metrics per variant (and task), averaged over repeated runs (seeds).

    Args:
        stability: a ``variant`` column, optionally ``task``, and ``stability/*`` columns.

    Returns:
        Columns ``[task,] variant`` and the metrics without the ``stability/``
        prefix, in order of first appearance.
    """
    metrics = [c for c in stability.columns if str(c).startswith(STABILITY_PREFIX)]
    if "variant" not in stability.columns or not metrics:
        raise ValueError("stability needs a 'variant' column and 'stability/*' columns")
    keys = ["task", "variant"] if "task" in stability.columns else ["variant"]
    table = stability.groupby(keys, sort=False)[metrics].mean().reset_index()
    table = _appearance_sorted(table, keys)
    return table.rename(columns=lambda c: str(c).removeprefix(STABILITY_PREFIX))


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
    decimals: int = 3,
    alpha: float = 0.05,
    lower_is_better: Iterable[str] = LOWER_IS_BETTER,
) -> dict[str, Path]:
    """Write every table as Markdown, CSV and LaTeX, and the figures as PNG.

    Files under ``out_dir`` (created), keyed in the returned dict by name:

    - ``summary.{md,csv,tex}``: ``summary_table``; Markdown and LaTeX hold one
      table per metric (``summary_grid``), the CSV the tidy frame;
    - ``ranking.{md,csv,tex}``: ``rank_scores``, one table per task group, and
      ``significance.csv``: the per class and metric scores behind them;
    - ``stability.{md,csv,tex}`` when ``stability`` is given (``stability_summary``);
    - ``supervision.{md,csv,tex}`` when ``supervision`` is given
      (``supervision_table``), ``complexity.{md,csv,tex}`` when ``complexity``
      is given (``complexity_table``);
    - ``dice_boxplot.png`` (when there are Dice values), ``val_curves.png``
      when ``curves`` is given, and ``dice_vs_labelled.png`` when ``sparsity``
      names the column groups to plot against their labelled fraction
      (``dice_vs_labelled_figure``, needs ``supervision``);
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

    scores = significance_scores(results, alpha=alpha, lower_is_better=lower)
    ranking = _ranked(scores)
    ranking_md = [
        f"## Ranking\n\nPairwise two-sided Wilcoxon signed-rank tests on per-case values "
        f"(p < {alpha}); significance score: the number of variants significantly worse in "
        "one class and metric; rank score: its mean over classes and metrics.\n"
    ]
    ranking_tex = []
    for group, table in ranking.groupby("group", sort=False):
        cells = table.drop(columns="group").set_index(["rank", "variant"])
        cells.columns = [c.replace("_", " ") for c in cells.columns]
        ranking_md.append(f"### {group}\n\n{format_markdown(cells, decimals=decimals)}")
        latex_cells = cells.assign(
            **{"rank score": [f"{s:.{decimals}f}" for s in cells["rank score"]]}
        )
        ranking_tex.append(
            format_latex(
                latex_cells,
                caption=f"{title}: rank score, {group} tasks (pairwise Wilcoxon, p < {alpha}).",
                label=f"tab:ranking-{group}",
            )
        )
    write("ranking.md", "\n".join(ranking_md))
    ranking.to_csv(out_dir / "ranking.csv", index=False)
    scores.to_csv(out_dir / "significance.csv", index=False)
    paths["ranking.csv"] = out_dir / "ranking.csv"
    paths["significance.csv"] = out_dir / "significance.csv"
    write("ranking.tex", "\n".join(ranking_tex))

    sections = ["\n".join(summary_md), "\n".join(ranking_md)]
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
        cells = table.map(_count).rename(columns={"macs": "multiply-adds"})
        markdown = (
            "## Network size\n\nParameters, and multiply-adds of one forward pass of a "
            f"training patch.\n\n{format_markdown(cells)}"
        )
        latex = format_latex(cells, caption=f"{title}: network size.", label="tab:complexity")
        sections.append(write_table("complexity", table.reset_index(), markdown, latex))

    if (summary["metric"] == "dice").any():
        paths["dice_boxplot.png"] = plot_dice_boxplot(results, out_dir / "dice_boxplot.png")
    if sparsity:
        if supervision is None:
            raise ValueError("sparsity needs supervision: the labelled fraction of each group")
        figure = dice_vs_labelled_figure(results, supervision, sparsity)
        paths["dice_vs_labelled.png"] = out_dir / "dice_vs_labelled.png"
        figure.savefig(paths["dice_vs_labelled.png"], dpi=120)
    if curves is not None:
        paths["val_curves.png"] = plot_val_curves(curves, out_dir / "val_curves.png")
    write("report.md", f"# {title}\n\n" + "\n".join(sections))
    return paths
