"""Per-case segmentation metrics: Dice, HD95 and ASSD in millimetres.

Surface distances come from MONAI, with the voxel spacing of each case, so the
numbers are in mm whatever the resolution. Conventions for empty structures,
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
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from torch.nn import functional as F

METRICS: tuple[str, ...] = ("dice", "hd95", "assd", "precision", "recall")


def dice_per_class(prediction: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Hard Dice of each class ``1..num_classes-1`` for label maps of equal shape.

    Returns a ``(num_classes - 1,)`` tensor; a class absent from both maps scores 1.
    """
    overlap, predicted, actual = _voxel_counts(prediction, truth, num_classes)
    total = predicted + actual
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))


def _voxel_counts(
    prediction: torch.Tensor, truth: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True positives, predicted and actual voxels of each foreground class."""
    predicted = F.one_hot(prediction.long().flatten(), num_classes)[:, 1:].float()
    actual = F.one_hot(truth.long().flatten(), num_classes)[:, 1:].float()
    return (predicted * actual).sum(0), predicted.sum(0), actual.sum(0)


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
    dice = dice_per_class(prediction, truth, num_classes)
    overlap, predicted_count, actual_count = _voxel_counts(prediction, truth, num_classes)
    both_empty = (predicted_count + actual_count) == 0
    precision = _ratio(overlap, predicted_count, both_empty)
    recall = _ratio(overlap, actual_count, both_empty)
    predicted = _one_hot(prediction, num_classes)
    actual = _one_hot(truth, num_classes)
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():
        # MONAI warns about empty classes; they are resolved explicitly below.
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(
            predicted, actual, include_background=False, percentile=95, spacing=spacing
        )[0]
        assd = compute_average_surface_distance(
            predicted, actual, include_background=False, symmetric=True, spacing=spacing
        )[0]
    rows = []
    for index in range(1, num_classes):
        has_prediction = bool(predicted[0, index].any())
        has_truth = bool(actual[0, index].any())
        if has_prediction and has_truth:
            distances = (float(hd95[index - 1]), float(assd[index - 1]))
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


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(*spatial)`` indices -> ``(1, C, *spatial)`` one-hot, the layout MONAI expects."""
    return F.one_hot(labels.long(), num_classes).movedim(-1, 0).unsqueeze(0)
