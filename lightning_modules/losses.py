"""Segmentation losses with one call signature, built by name from the config.

Every loss is called as ``loss(logits, target, mask=None, distance=None)``:

- ``logits``: raw network output, shape ``(B, C, *spatial)`` with ``C`` classes;
- ``target``: integer labels, shape ``(B, *spatial)``;
- ``mask``: optional, shape ``(B, *spatial)``; voxels where it is 0 are
  unlabelled and contribute nothing (the weak-label threads depend on it);
- ``distance``: optional precomputed distance maps for the distance-based
  weightings of the loss study.

This module starts with the unweighted bases (cross-entropy, Dice and their
sum); the loss-study thread adds the weighted family behind ``build_loss``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

DiceForm = Literal["global", "mean_class"]


def prepare(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes; return probabilities and one-hot truth zeroed where unlabelled, and the mask.

    Shapes broadcast against ``(B, C, *spatial)``; the mask comes back as
    ``(B, 1, *spatial)`` voxel weights (0 = unlabelled; fractions weigh voxels).
    Probabilities and truth are multiplied by the mask, and unlabelled voxels are
    removed with ``torch.where`` first, so neither non-finite logits nor
    placeholder label values (e.g. 255) there can reach the loss.
    """
    if logits.ndim < 3:
        raise ValueError(f"logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}; expected (B, *spatial) integer labels"
        )
    if mask is None:
        mask = torch.ones_like(target, dtype=logits.dtype)
    elif mask.shape != target.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} differs from target {tuple(target.shape)}"
        )
    mask = mask.to(logits.dtype)
    target = torch.where(mask > 0, target.long(), 0)
    mask = mask.unsqueeze(1)
    probabilities = torch.where(mask > 0, logits.softmax(dim=1) * mask, 0.0)
    one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    return probabilities, one_hot * mask, mask


class CrossEntropyLoss(nn.Module):
    """Cross-entropy averaged over labelled voxels: ``-(1/N) sum_i sum_c g_ic log p_ic``.

    ``N`` counts the voxels where ``mask`` is set; with an empty mask the loss
    is 0 and its gradient is 0, not NaN.
    """

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _, one_hot, mask = prepare(logits, target, mask)
        # Pick the true class's log-probability: a product with the one-hot
        # truth would turn a -inf logit of another class into NaN.
        true_class = one_hot.argmax(dim=1, keepdim=True)
        voxel_loss = -logits.log_softmax(dim=1).gather(1, true_class)
        voxel_loss = torch.where(mask > 0, voxel_loss * mask, 0.0)
        return voxel_loss.sum() / mask.sum().clamp_min(1e-8)


class DiceLoss(nn.Module):
    """Soft Dice loss (Milletari et al., 3DV 2016) over the whole batch.

    ``form="global"`` pools classes before the ratio,
    ``1 - 2 sum_c sum_i g_ic p_ic / sum_c sum_i (g_ic + p_ic)``;
    ``form="mean_class"`` averages the per-class Dice loss over classes.
    ``smooth`` keeps the ratio finite when a class is absent from the batch.

    Args:
        form: ``global`` or ``mean_class``.
        include_background: whether class 0 takes part.
        smooth: added to numerator and denominator.
    """

    def __init__(
        self,
        *,
        form: DiceForm = "global",
        include_background: bool = True,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        if form not in ("global", "mean_class"):
            raise ValueError(f"form must be 'global' or 'mean_class', got {form!r}")
        if smooth < 0:
            raise ValueError(f"smooth must be non-negative, got {smooth!r}")
        self.form = form
        self.include_background = include_background
        self.smooth = smooth

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        probabilities, one_hot, _ = prepare(logits, target, mask)
        if not self.include_background:
            probabilities, one_hot = probabilities[:, 1:], one_hot[:, 1:]
        reduce_dims = [0, *range(2, probabilities.ndim)]
        intersection = (one_hot * probabilities).sum(dim=reduce_dims)
        denominator = (one_hot + probabilities).sum(dim=reduce_dims)
        if self.form == "global":
            intersection, denominator = intersection.sum(), denominator.sum()
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        return 1 - dice.mean()


class DiceCELoss(nn.Module):
    """``dice_weight * Dice + ce_weight * cross-entropy``, a common strong baseline."""

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        form: DiceForm = "global",
        include_background: bool = True,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(form=form, include_background=include_background, smooth=smooth)
        self.cross_entropy = CrossEntropyLoss()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.dice_weight * self.dice(logits, target, mask) + self.ce_weight * (
            self.cross_entropy(logits, target, mask)
        )


LOSSES: dict[str, type[nn.Module]] = {
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "dice_ce": DiceCELoss,
}
WEIGHTINGS: tuple[str, ...] = ("none",)


def build_loss(base: str, weighting: str = "none", **options: object) -> nn.Module:
    """Build the loss ``base`` with ``weighting``; options go to its constructor.

    Raises:
        ValueError: naming the unknown base, weighting or option.
    """
    if base not in LOSSES:
        raise ValueError(f"unknown loss base {base!r}; known: {sorted(LOSSES)}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; known: {list(WEIGHTINGS)}")
    try:
        return LOSSES[base](**options)
    except TypeError as error:
        raise ValueError(f"bad options for loss {base!r} {options}: {error}") from error
