"""Connected-component post-processing, as nnU-Net does it: keep each class's largest part.

A false-positive blob far from its structure barely moves Dice but sets HD95 to the
distance to the blob. Keeping only the largest connected component of a class removes
such blobs, and hurts a class whose truth has several parts; so, as in nnU-Net
(Isensee et al., Nature Methods 2021), it is chosen per class on the validation cases
(`choose_from_dice`) and applied to test and predicted cases. The components are
MONAI's ``KeepLargestConnectedComponent`` with its full connectivity (26 neighbours in
3D), each class on its own.

Per-case test rows keep the metrics before post-processing in ``<metric>_raw`` columns
(`with_raw_metrics`), so that its effect is visible next to the final numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from monai.transforms import KeepLargestConnectedComponent
from monai.utils import convert_to_tensor

from lightning_modules.metrics import case_metrics, dice_per_class

# Metrics kept from before post-processing; each as the column ``<metric>_raw``.
RAW_METRICS: tuple[str, ...] = ("dice", "hd95")
RAW_SUFFIX = "_raw"


def keep_largest_component(prediction: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """``prediction`` with only the largest connected component of each class in ``classes``.

    Each class is cleaned on its own; the voxels removed become background (0).
    Classes absent from ``prediction`` cost nothing.

    Args:
        prediction: class indices, shape ``(*spatial)``.
        classes: foreground class indices (> 0) to clean.

    Returns:
        A new tensor of the shape, dtype and device of ``prediction``.

    Example:
        >>> labels = torch.tensor([[1, 1, 0, 1], [2, 0, 0, 2]])
        >>> keep_largest_component(labels, [1]).tolist()
        [[1, 1, 0, 0], [2, 0, 0, 2]]
    """
    if any(c <= 0 for c in classes):
        raise ValueError(f"classes must be foreground indices (> 0), got {list(classes)}")
    present = [int(c) for c in classes if bool((prediction == c).any())]
    if not present:
        return prediction.clone()
    transform = KeepLargestConnectedComponent(
        applied_labels=present, is_onehot=False, independent=True
    )
    # MONAI writes into the tensor it is given, and labels components on the CPU.
    cleaned = transform(prediction.detach().cpu().clone().unsqueeze(0))
    cleaned = convert_to_tensor(cleaned, track_meta=False)[0]
    return cleaned.to(device=prediction.device, dtype=prediction.dtype)


def case_dice(
    prediction: torch.Tensor, truth: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice of each foreground class of one case, without and with keep-largest on every class.

    The classes are cleaned independently and a removed voxel becomes background, so
    each class's Dice after cleaning all of them at once is its Dice after cleaning it
    alone: one pass serves the choice of every class.

    Returns:
        Two ``(num_classes - 1,)`` tensors: raw and post-processed Dice.
    """
    cleaned = keep_largest_component(prediction, range(1, num_classes))
    return (
        dice_per_class(prediction, truth, num_classes),
        dice_per_class(cleaned, truth, num_classes),
    )


def choose_from_dice(raw: torch.Tensor, processed: torch.Tensor) -> tuple[int, ...]:
    """The classes to post-process, from per-case Dice ``(cases, num_classes - 1)``.

    nnU-Net's rule: keep-largest is applied to a class when its mean Dice over the
    validation cases with it is at least the mean Dice without it. Ties count as
    applied: a class that validation always predicted in one piece loses nothing and
    is protected from stray blobs on new cases.

    Returns:
        Class indices (1 is the first foreground class), ascending.
    """
    if raw.shape != processed.shape:
        raise ValueError(f"raw Dice {tuple(raw.shape)} and processed {tuple(processed.shape)}")
    if raw.numel() == 0:
        return ()
    keep = processed.mean(0) >= raw.mean(0)
    return tuple(int(i) + 1 for i in keep.nonzero().flatten())


def choose_classes(
    cases: Sequence[tuple[torch.Tensor, torch.Tensor]], num_classes: int
) -> tuple[int, ...]:
    """The classes to post-process, chosen on ``(prediction, truth)`` validation cases.

    See `choose_from_dice` for the rule.

    Example:
        >>> truth = torch.tensor([[1, 1, 0, 0, 0]])
        >>> blob = torch.tensor([[1, 1, 0, 0, 1]])  # a false positive apart: cleaning helps
        >>> choose_classes([(blob, truth)], num_classes=2)
        (1,)
    """
    if not cases:
        return ()
    raw, processed = zip(*(case_dice(p, t, num_classes) for p, t in cases), strict=True)
    return choose_from_dice(torch.stack(raw), torch.stack(processed))


def changed_classes(
    raw: torch.Tensor, processed: torch.Tensor, classes: Sequence[int]
) -> tuple[int, ...]:
    """Those of ``classes`` whose voxels post-processing changed between ``raw`` and ``processed``.

    A class with a single component comes out unchanged: its raw metrics are its final
    ones, and need not be measured again.

    Example:
        >>> raw = torch.tensor([[1, 1, 0, 1], [2, 2, 0, 0]])
        >>> changed_classes(raw, keep_largest_component(raw, [1, 2]), [1, 2])
        (1,)
    """
    return tuple(c for c in classes if not torch.equal(raw == c, processed == c))


def with_raw_metrics(
    rows: pd.DataFrame,
    raw_prediction: torch.Tensor,
    truth: torch.Tensor,
    *,
    classes: Sequence[int],
    class_names: Sequence[str],
    spacing: Sequence[float],
) -> pd.DataFrame:
    """``rows`` (`case_metrics` of the post-processed case) with ``<metric>_raw`` columns.

    Only ``classes``, the post-processed ones, are measured again on ``raw_prediction``;
    the other classes' raw values are their final ones.
    """
    rows = rows.copy()
    for metric in RAW_METRICS:
        rows[metric + RAW_SUFFIX] = rows[metric]
    if not classes:
        return rows
    # A class's metrics depend only on its own voxels: the others are left out of
    # both maps, so that their surface distances are not computed again.
    chosen = torch.tensor(list(classes), device=truth.device)
    raw = case_metrics(
        torch.where(torch.isin(raw_prediction, chosen), raw_prediction, 0),
        torch.where(torch.isin(truth, chosen), truth, 0),
        class_names=class_names,
        spacing=spacing,
    ).set_index("class")
    names = [class_names[c] for c in classes]
    selected = rows["class"].isin(names)
    for metric in RAW_METRICS:
        rows.loc[selected, metric + RAW_SUFFIX] = rows.loc[selected, "class"].map(raw[metric])
    return rows


def choice_text(names: Sequence[str]) -> str:
    """The run parameter of a choice: comma-separated class names, or ``none``.

    >>> choice_text(("cerebrum", "brainstem")), choice_text(())
    ('cerebrum,brainstem', 'none')
    """
    return ",".join(names) or "none"
