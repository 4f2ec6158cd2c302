"""Per-case segmentation metrics: Dice, HD95 and ASSD in millimetres.

Surface distances come from MONAI, with the voxel spacing of each case, so the
numbers are in mm whatever the resolution. Each class's distances are computed once
and give both HD95 and ASSD, as MONAI's ``compute_hausdorff_distance`` and
``compute_average_surface_distance`` reduce them (each of those computes them anew:
twice the distance transforms for the same numbers). Conventions for empty structures,
which MONAI leaves as NaN or inf, are made explicit here:

- truth and prediction both empty: Dice 1, HD95 and ASSD 0 (a correct "absent");
- exactly one of them empty: Dice 0, HD95 and ASSD NaN (undefined; tables
  show them as missing rather than as a misleading number);
- precision and recall: 1 when both are empty, otherwise 0 where the ratio is
  0/0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
import torch
from monai.metrics.utils import get_edge_surface_distance

METRICS: tuple[str, ...] = ("dice", "hd95", "assd", "precision", "recall")


def dice_per_class(prediction: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Hard Dice of each class ``1..num_classes-1`` for label maps of equal shape.

    Returns a ``(num_classes - 1,)`` tensor; a class absent from both maps scores 1.
    """
    return _dice(*_voxel_counts(prediction, truth, num_classes))


def _dice(overlap: torch.Tensor, predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """Dice of voxel counts per class; 1 for a class absent from both maps."""
    total = predicted + actual
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))


def _voxel_counts(
    prediction: torch.Tensor, truth: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True positives, predicted and actual voxels of each foreground class.

    Read off the confusion matrix, one ``bincount`` over the volume (a one-hot encoding
    of both maps would hold ``num_classes`` times the volume).
    """
    predicted, actual = prediction.long().flatten(), truth.long().flatten()
    for name, labels in (("prediction", predicted), ("truth", actual)):
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
            raise ValueError(f"{name} holds class indices outside 0..{num_classes - 1}")
    confusion = torch.bincount(actual * num_classes + predicted, minlength=num_classes**2)
    confusion = confusion.view(num_classes, num_classes).float()  # truth x prediction
    return confusion.diagonal()[1:], confusion.sum(0)[1:], confusion.sum(1)[1:]


def _ratio(
    numerator: torch.Tensor, denominator: torch.Tensor, both_empty: torch.Tensor
) -> torch.Tensor:
    """``numerator / denominator`` with 0/0 -> 1 where both maps are empty, else 0."""
    ratio = numerator / denominator.clamp_min(1)
    return torch.where(denominator > 0, ratio, both_empty.float())


def case_metrics(
    prediction: torch.Tensor,
    truth: torch.Tensor,
    *,
    class_names: Sequence[str],
    spacing: Sequence[float],
) -> pd.DataFrame:
    """Dice, HD95 (mm), ASSD (mm), precision and recall of every foreground class of one case.

    Args:
        prediction: class indices, shape ``(*spatial)``.
        truth: class indices, same shape.
        class_names: class index -> name, background first.
        spacing: voxel size in mm along each spatial axis.

    Returns:
        One row per foreground class with columns ``class`` and ``METRICS``.
    """
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and truth {tuple(truth.shape)}")
    num_classes = len(class_names)
    overlap, predicted_count, actual_count = _voxel_counts(prediction, truth, num_classes)
    dice = _dice(overlap, predicted_count, actual_count)
    both_empty = (predicted_count + actual_count) == 0
    precision = _ratio(overlap, predicted_count, both_empty)
    recall = _ratio(overlap, actual_count, both_empty)
    spacing = [float(s) for s in spacing]
    rows = []
    for index in range(1, num_classes):
        has_prediction = bool(predicted_count[index - 1] > 0)
        has_truth = bool(actual_count[index - 1] > 0)
        if has_prediction and has_truth:
            distances = surface_distances(prediction == index, truth == index, spacing)
        elif not has_prediction and not has_truth:
            distances = (0.0, 0.0)
        else:
            distances = (float("nan"), float("nan"))
        hd95_mm, assd_mm = distances
        rows.append(
            {
                "class": class_names[index],
                "dice": float(dice[index - 1]),
                "hd95": hd95_mm,
                "assd": assd_mm,
                "precision": float(precision[index - 1]),
                "recall": float(recall[index - 1]),
            }
        )
    return pd.DataFrame(rows, columns=["class", *METRICS])


def surface_distances(
    predicted: torch.Tensor, actual: torch.Tensor, spacing: Sequence[float]
) -> tuple[float, float]:
    """HD95 and ASSD (mm) of two non-empty binary maps ``(*spatial)``, as MONAI gives them.

    MONAI's symmetric surface distances (prediction to truth and back) reduced as its
    ``compute_hausdorff_distance(percentile=95)`` does (the larger of the two directed
    95th percentiles) and its ``compute_average_surface_distance(symmetric=True)`` (the
    mean over both), in float32 as those return them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's note on empty maps: callers rule them out
        _, directed, _ = get_edge_surface_distance(
            predicted.float(), actual.float(), spacing=list(spacing), symmetric=True
        )
    hd95 = torch.stack([torch.quantile(d, 0.95) for d in directed]).max()
    assd = torch.cat(directed).mean()
    return float(hd95.float()), float(assd.float())
