"""Segmentation losses with one call signature, built by name from the config.

The loss study (Sugino et al., Healthcare 9(8):938, 2021) crosses two bases,
cross-entropy ``ce`` and Dice ``dice``, with six weightings, ``none``, ``inverse``,
``median``, ``focal``, ``dtm`` and ``dpt``: ``build_loss(base, weighting, **options)``
builds any of the 12 (and ``dice_ce``, their sum). Every loss is called as
``loss(logits, target, mask=None, distance=None)``:

- ``logits``: raw network output, shape ``(B, C, *spatial)`` with ``C`` classes;
- ``target``: integer labels, shape ``(B, *spatial)``;
- ``mask``: optional, shape ``(B, *spatial)``; voxels where it is 0 are
  unlabelled and contribute nothing (the weak-label threads depend on it);
  fractions weigh voxels;
- ``distance``: per-class signed distance maps of the ground truth, shape
  ``(B, C, *spatial)``, in voxels, negative inside, 0 on the boundary, positive
  outside, precomputed once per subject; required by ``dtm`` and ``dpt``,
  ignored (but shape-checked) by the others.

Layout: ``loss_batch.py`` (the shared ``prepare``), ``weightings.py`` (one small
class per weighting, producing class or voxel weights), ``cross_entropy.py`` and
``dice.py`` (the bases, which combine any weighting the same way).

Example:
    >>> import torch
    >>> target = torch.tensor([[[0, 1], [2, 2]]])  # (B, H, W), 3 classes
    >>> logits = torch.zeros(1, 3, 2, 2)  # a uniform softmax: p = 1/3 everywhere
    >>> round(build_loss("ce")(logits, target).item(), 4)  # log 3
    1.0986
    >>> loss = build_loss("dice", "focal", gamma=2.0, form="global")
    >>> round(loss(logits, target).item(), 4)  # 1 - 2 (4/3) / 8; equal voxel weights cancel
    0.6667
    >>> loss(logits, target, mask=torch.zeros(1, 2, 2)).item()  # nothing labelled
    0.0
"""

from __future__ import annotations

import inspect

from torch import nn

from lightning_modules.losses.cross_entropy import CrossEntropyLoss
from lightning_modules.losses.dice import DiceCELoss, DiceForm, DiceLoss
from lightning_modules.losses.loss_batch import LossBatch, prepare
from lightning_modules.losses.weightings import (
    WEIGHTINGS,
    DistancePenaltyWeighting,
    DistanceTransformWeighting,
    FocalWeighting,
    InverseFrequencyWeighting,
    LossWeighting,
    MedianFrequencyWeighting,
    NoWeighting,
    Weights,
    distance_penalty,
)

__all__ = [
    "LOSSES",
    "WEIGHTINGS",
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceForm",
    "DiceLoss",
    "DistancePenaltyWeighting",
    "DistanceTransformWeighting",
    "FocalWeighting",
    "InverseFrequencyWeighting",
    "LossBatch",
    "LossWeighting",
    "MedianFrequencyWeighting",
    "NoWeighting",
    "Weights",
    "build_loss",
    "distance_penalty",
    "prepare",
]

LOSSES: dict[str, type[nn.Module]] = {
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "dice_ce": DiceCELoss,
}


def _option_names(weighting: type[LossWeighting]) -> set[str]:
    """The keyword options a weighting's constructor takes."""
    parameters = inspect.signature(weighting.__init__).parameters.values()
    return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_loss(base: str, weighting: str = "none", **options: object) -> nn.Module:
    """Build the loss ``base`` with ``weighting``; each option goes where it is declared.

    Options of the weighting's constructor (``class_frequencies`` for ``median``;
    ``gamma`` for ``focal``; ``sigma``, ``boundary_weight`` for ``dtm``) go to the
    weighting, the rest to the base's constructor (``form``,
    ``include_background``, ``smooth`` for ``dice``; also ``dice_weight``,
    ``ce_weight`` for ``dice_ce``; none for ``ce``).

    Raises:
        ValueError: naming the unknown base, weighting or option, or the bad value.
    """
    if base not in LOSSES:
        raise ValueError(f"unknown loss base {base!r}; known: {sorted(LOSSES)}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; known: {list(WEIGHTINGS)}")
    weighting_class = WEIGHTINGS[weighting]
    names = _option_names(weighting_class)
    weighting_options = {key: value for key, value in options.items() if key in names}
    base_options = {key: value for key, value in options.items() if key not in names}
    try:
        return LOSSES[base](weighting=weighting_class(**weighting_options), **base_options)
    except TypeError as error:
        raise ValueError(
            f"bad options for loss {base!r} with weighting {weighting!r} {options}: {error}"
        ) from error
