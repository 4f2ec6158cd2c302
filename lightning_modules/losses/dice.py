"""``DiceLoss`` and ``DiceCELoss`` under any loss-study weighting."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lightning_modules.losses.cross_entropy import CrossEntropyLoss
from lightning_modules.losses.loss_batch import check_number, prepare
from lightning_modules.losses.weightings import LossWeighting, NoWeighting

DiceForm = Literal["global", "mean_class"]


class DiceLoss(nn.Module):
    """Weighted soft Dice loss (Milletari et al., 3DV 2016), pooled over the batch.

    With class weights ``w_c`` and voxel weights ``v_ic`` (from ``weighting``;
    all 1 unweighted) times the mask ``m_i``, ``I_c = sum_i m_i v_ic g_ic p_ic`` and
    ``D_c = sum_i m_i v_ic (g_ic + p_ic)`` summed over the batch and space:

    - ``form="global"``: ``1 - (2 sum_c w_c I_c + s) / (sum_c w_c D_c + s)``; with
      ``w_c = 1 / (sum_i g_ic)^2`` this is the generalised Dice loss (Sudre et al.,
      DLMIA 2017).
    - ``form="mean_class"``: ``1 - sum_c w_c Dice_c / sum_c w_c`` with
      ``Dice_c = (2 I_c + s) / (D_c + s)``: the class weights weigh the mean,
      since inside one class's ratio they would cancel.

    Voxel weights sit inside both sums, so a perfect prediction still gives 0;
    they are detached (constants of the step): a weight that depends on the
    prediction, as the focal one does, then only says which voxels matter and
    cannot itself be optimised. For the focal weighting, ``v_ic = (1 -
    p_{i,y_i})^gamma`` for every class ``c`` of voxel ``i``: hard voxels count more
    in every class's overlap and size, easy ones fade, as in the focal loss of Lin
    et al. 2017. ``s`` (``smooth``) keeps the ratio finite when a class is absent.

    Shapes: logits ``(B, C, H, W[, D])``, target ``(B, H, W[, D])`` integer labels,
    mask ``(B, H, W[, D])``, distance ``(B, C, H, W[, D])`` (for ``dtm``/``dpt``).

    Args:
        form: ``global`` or ``mean_class``.
        include_background: whether class 0 takes part.
        smooth: added to numerator and denominator, ``>= 0``.
        weighting: a ``LossWeighting``; ``None`` for the unweighted loss.

    Example:
        >>> import torch
        >>> from lightning_modules.losses import InverseFrequencyWeighting
        >>> target = torch.tensor([[[0, 1], [2, 2]]])  # (B, H, W); classes of 1, 1, 2 voxels
        >>> loss = DiceLoss(weighting=InverseFrequencyWeighting())  # generalised Dice
        >>> round(loss(torch.zeros(1, 3, 2, 2), target).item(), 4)  # p = 1/3 everywhere
        0.697
        >>> perfect = 20 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
        >>> round(loss(perfect, target).item(), 4)
        0.0
    """

    def __init__(
        self,
        *,
        form: DiceForm = "global",
        include_background: bool = True,
        smooth: float = 1e-5,
        weighting: LossWeighting | None = None,
    ) -> None:
        super().__init__()
        if form not in ("global", "mean_class"):
            raise ValueError(f"form must be 'global' or 'mean_class', got {form!r}")
        self.form = form
        self.include_background = include_background
        self.smooth = check_number("smooth", smooth)
        self.weighting = weighting if weighting is not None else NoWeighting()

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = prepare(logits, target, mask, distance)
        if not self.include_background:
            batch = batch.without_background()
        weights = self.weighting(batch, "dice")
        voxels = batch.mask if weights.voxels is None else batch.mask * weights.voxels.detach()
        reduce_dims = (0, *batch.spatial_dims)
        intersection = (voxels * batch.one_hot * batch.probabilities).sum(dim=reduce_dims)
        denominator = (voxels * (batch.one_hot + batch.probabilities)).sum(dim=reduce_dims)
        class_weights = weights.classes
        if self.form == "global":
            if class_weights is not None:
                intersection = class_weights * intersection
                denominator = class_weights * denominator
            dice = (2 * intersection.sum() + self.smooth) / (denominator.sum() + self.smooth)
            return 1 - dice
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        if class_weights is None:
            return 1 - dice.mean()
        return 1 - (class_weights * dice).sum() / class_weights.sum()


class DiceCELoss(nn.Module):
    """``dice_weight * Dice + ce_weight * cross-entropy``, a common strong baseline.

    A weighting applies to both terms, each in its own way (e.g. ``inverse``:
    ``1 / n_c^2`` for the Dice term, ``N / n_c`` for the cross-entropy term).

    Args:
        dice_weight: factor of the Dice term, ``>= 0``.
        ce_weight: factor of the cross-entropy term, ``>= 0``.
        form: the Dice form, ``global`` or ``mean_class``.
        include_background: whether class 0 takes part in the Dice term.
        smooth: the Dice smoothing term, ``>= 0``.
        weighting: a ``LossWeighting`` shared by both terms; ``None`` for none.
    """

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        form: DiceForm = "global",
        include_background: bool = True,
        smooth: float = 1e-5,
        weighting: LossWeighting | None = None,
    ) -> None:
        super().__init__()
        self.dice_weight = check_number("dice_weight", dice_weight)
        self.ce_weight = check_number("ce_weight", ce_weight)
        self.dice = DiceLoss(
            form=form, include_background=include_background, smooth=smooth, weighting=weighting
        )
        self.cross_entropy = CrossEntropyLoss(weighting=weighting)

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dice = self.dice(logits, target, mask, distance)
        cross_entropy = self.cross_entropy(logits, target, mask, distance)
        return self.dice_weight * dice + self.ce_weight * cross_entropy
