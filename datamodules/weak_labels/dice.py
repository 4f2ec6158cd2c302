"""How weak a weak label is: its Dice against the truth, by the project's one Dice rule.

Per-class Dice comes from `lightning_modules.metrics.dice_per_class`, the function that
scores predictions, so weak labels and predictions are measured alike: a class absent from
both maps scores 1, a class in only one of them 0 (MONAI's ``ignore_empty=False``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from datamodules.weak_labels._checks import integer
from lightning_modules.metrics import dice_per_class


def _classes(name: str, values: np.ndarray, num_classes: int) -> torch.Tensor:
    """``values`` as a tensor of class indices, or a ValueError if one is not a class."""
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must hold integer classes, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(
            f"{name} holds classes {values.min()}..{values.max()}, outside "
            f"0..{num_classes - 1} (num_classes={num_classes})"
        )
    return torch.from_numpy(values.astype(np.int64))


def label_dice(
    weak: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    num_classes: int,
    class_names: Mapping[int, str] | Sequence[str],
) -> dict[str, float]:
    """Per-class Dice of a weak label against the truth, on the labelled voxels.

    Without ``mask`` every voxel counts (unlabelled ones are background in a weak label, so a
    sparse label then scores low); with it only labelled ones do (a sparse label scores 1).

    Args:
        weak: the weak label, integer classes ``0..num_classes-1``.
        truth: the ground truth, same shape and classes.
        mask: labelled voxels (nonzero); None for all.
        num_classes: classes, background included (at least 2); Dice is reported for
            ``1..num_classes-1``.
        class_names: name per class index (a mapping, or a sequence background first);
            ``class_<i>`` for an index it lacks.

    Returns:
        ``dice_<name>`` per foreground class (1 where the class is absent from both on the
        labelled voxels, 0 where it is in only one), ``dice_mean`` (their plain mean) and
        ``labelled_fraction`` (NaN only for an empty volume).

    Raises:
        ValueError: for shapes that differ or classes outside ``0..num_classes-1``.

    Example:
        >>> truth = np.array([[[0, 1, 1, 2]]])
        >>> scores = label_dice(np.array([[[0, 1, 0, 0]]]), truth, num_classes=4,
        ...                     class_names={1: "a", 2: "b", 3: "c"})
        >>> round(scores["dice_a"], 4), scores["dice_b"], scores["dice_c"]
        (0.6667, 0.0, 1.0)
    """
    weak, truth = np.asarray(weak), np.asarray(truth)
    if weak.shape != truth.shape:
        raise ValueError(f"weak shape {weak.shape} differs from truth shape {truth.shape}")
    labelled = np.ones(truth.shape, bool) if mask is None else np.asarray(mask) > 0
    if labelled.shape != truth.shape:
        raise ValueError(f"mask shape {labelled.shape} differs from truth shape {truth.shape}")
    num_classes = integer("label_dice", "num_classes", num_classes, minimum=2)
    names = class_names if isinstance(class_names, Mapping) else dict(enumerate(class_names))
    dice = dice_per_class(
        _classes("weak", weak[labelled], num_classes),
        _classes("truth", truth[labelled], num_classes),
        num_classes,
    ).tolist()
    scores = {
        f"dice_{names.get(cls, f'class_{cls}')}": float(value)
        for cls, value in enumerate(dice, start=1)
    }
    scores["dice_mean"] = float(np.mean(dice))
    scores["labelled_fraction"] = float(labelled.mean()) if labelled.size else math.nan
    return scores
