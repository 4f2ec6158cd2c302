"""Figures logged with runs: what a reader would rather look at than read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# One colour per class index after background (tab10 is colour-blind friendlier
# than a rainbow and keeps class colours stable across figures).
CLASS_COLOURS = colormaps["tab10"].colors


def prediction_figure(
    *,
    subject: str,
    image: torch.Tensor,
    truth: torch.Tensor,
    prediction: torch.Tensor,
    class_names: Sequence[str],
) -> Figure:
    """Image, ground truth and prediction of the most informative axial slice.

    Args:
        subject: shown in the title.
        image: one channel ``(H, W, D)``.
        truth: class indices ``(H, W, D)``.
        prediction: class indices ``(H, W, D)``.
        class_names: class index -> name, background first.
    """
    truth_np, prediction_np = truth.numpy(), prediction.numpy()
    k = most_informative_slice(truth_np)

    # Arrays are (x, y, z) in RAS+; transpose and flip so anterior is up.
    def view(volume: np.ndarray) -> np.ndarray:
        return np.flipud(volume[:, :, k].T)

    colours = ListedColormap([(0, 0, 0, 0), *CLASS_COLOURS[: len(class_names) - 1]])
    # The object API needs no pyplot backend: safe in headless runs and workers.
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    axes = figure.subplots(1, 3)
    panels = (("image", None), ("ground truth", truth_np), ("prediction", prediction_np))
    for axis, (title, labels) in zip(axes, panels, strict=True):
        axis.imshow(view(image.numpy()), cmap="gray")
        if labels is not None:
            axis.imshow(
                view(labels),
                cmap=colours,
                vmin=0,
                vmax=len(class_names) - 1,
                alpha=0.6,
                interpolation="nearest",
            )
        axis.set_title(title)
        axis.axis("off")
    handles = [
        Patch(color=CLASS_COLOURS[i - 1], label=name) for i, name in enumerate(class_names) if i > 0
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(f"{subject}: axial slice {k}")
    return figure


def most_informative_slice(labels: np.ndarray) -> int:
    """The axial slice showing the most classes, then the most foreground."""
    slices = np.moveaxis(labels, -1, 0).reshape(labels.shape[-1], -1)
    classes_present = np.array([len(np.unique(s[s > 0])) for s in slices])
    foreground = (slices > 0).sum(axis=1)
    return int(np.lexsort((foreground, classes_present))[-1])


def training_curves_figure(curves: dict[str, list[tuple[int, float]]], title: str) -> Figure:
    """Train and validation curves of one run on a shared step axis.

    Args:
        curves: metric name -> ``(step, value)`` pairs, as MLflow logged them.
            Losses (names containing ``loss``) share the left panel, so that train
            and validation loss read against each other; every other metric gets a
            panel of its own.
        title: the run's name.
    """
    losses = {name: points for name, points in curves.items() if "loss" in name}
    scores = {name: points for name, points in curves.items() if name not in losses}
    panels = ([losses] if losses else []) + [{name: points} for name, points in scores.items()]
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, panel in zip(grid, panels, strict=True):
        for name, points in panel.items():
            steps, values = zip(*sorted(points), strict=True)
            axes.plot(steps, values, marker="o", markersize=3, label=name)
        axes.set_xlabel("training step")
        axes.set_title("loss" if panel is losses else next(iter(panel)))
        axes.grid(alpha=0.3)
        if len(panel) > 1:
            axes.legend(fontsize=8)
    figure.suptitle(title)
    return figure
