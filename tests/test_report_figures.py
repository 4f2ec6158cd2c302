"""Report figures: panels, boxes, lines and error bars where the data puts them."""

from __future__ import annotations

import pytest

from experiments.report_figures import (
    dice_boxplot_figure,
    dice_vs_labelled_figure,
    plot_val_curves,
    val_curves_figure,
)
from tests.table_data import PNG_MAGIC


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
