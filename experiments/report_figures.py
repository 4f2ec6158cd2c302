"""Figures of an ablation report: Dice box plot, validation curves, Dice vs labelled fraction.

Each ``*_figure`` returns a matplotlib ``Figure`` (no pyplot, so no global
state and no display needed); ``plot_*`` saves one as a PNG. A variant keeps
its colour across the panels of a figure, with one legend on the right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from experiments.per_case import validated_results
from experiments.table_format import mean_std_by
from experiments.training_tables import supervision_table


def _variant_colours(variants: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A colour per variant: tab10, or tab20 for more than ten variants."""
    palette = colormaps["tab20"].colors if len(variants) > 10 else colormaps["tab10"].colors
    return {v: palette[i % len(palette)] for i, v in enumerate(variants)}


def _variant_legend(figure: Figure, colours: dict[str, tuple[float, ...]]) -> None:
    """One legend entry per variant, outside the panels on the right."""
    handles = [Patch(color=colour, label=variant) for variant, colour in colours.items()]
    figure.legend(handles=handles, loc="outside right upper", frameon=False)


def dice_boxplot_figure(results: pd.DataFrame) -> Figure:
    """Box plot of per-case Dice: one panel per task, per class a box per variant."""
    data = validated_results(results)
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


def dice_vs_labelled_figure(
    results: pd.DataFrame, supervision: pd.DataFrame, groups: Sequence[str]
) -> Figure:
    """Test Dice against the labelled fraction of the training labels, a line per variant.

    One panel for the mean over structures, then one per structure; points are
    the column groups in ``groups`` (e.g. full and sparse label conditions) at
    their labelled fraction, with the std over cases as error bars.
    """
    data = validated_results(results)
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
        stats = mean_std_by(frame, ["variant", "task"]).set_index(["variant", "task"])
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
